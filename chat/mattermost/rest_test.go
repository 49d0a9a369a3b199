package mattermost

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
)

// These use a stand-in HTTP server only to make the server fail on cue;
// the behaviour against the real server is in the integration tests.
func TestPostRetriesTransientFailures(t *testing.T) {
	tests := []struct {
		name     string
		failures int // answered with failStatus before succeeding
		status   int
		wantErr  bool
		wantHits int32
	}{
		{"succeeds at once", 0, 0, false, 1},
		{"retries 503", 2, http.StatusServiceUnavailable, false, 3},
		{"does not retry 400", 1, http.StatusBadRequest, true, 1},
		{"does not retry 403", 1, http.StatusForbidden, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			pending := map[string]bool{}
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := hits.Add(1)
				var p model.Post
				_ = json.NewDecoder(r.Body).Decode(&p)
				pending[p.PendingPostId] = true
				if int(n) <= tt.failures {
					w.WriteHeader(tt.status)
					_, _ = w.Write([]byte(`{"message":"nope"}`))
					return
				}
				p.Id = "created"
				_ = json.NewEncoder(w).Encode(&p)
			}))
			defer srv.Close()
			a, err := New(Options{URL: srv.URL, Token: "t0ken-t0ken"})
			if err != nil {
				t.Fatal(err)
			}
			ref, err := a.Reply(context.Background(), chat.Message{ID: "m1", Channel: chat.Channel{ID: "c1"}}, "hi")
			if (err != nil) != tt.wantErr {
				t.Fatalf("Reply error = %v, want error %v", err, tt.wantErr)
			}
			if hits.Load() != tt.wantHits {
				t.Fatalf("%d requests, want %d", hits.Load(), tt.wantHits)
			}
			if len(pending) != 1 {
				t.Fatalf("tries used %d pending post IDs, want one shared ID", len(pending))
			}
			if !tt.wantErr && ref.ID != "created" {
				t.Fatalf("ref = %+v", ref)
			}
		})
	}
}
