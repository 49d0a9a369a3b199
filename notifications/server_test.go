package notifications

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// sampleFor is a valid payload and the headers naming its event, per kind.
var sampleFor = map[string]struct {
	file   string
	header map[string]string
}{
	KindGitLab:    {"gitlab_pipeline.json", map[string]string{"X-Gitlab-Event": "Pipeline Hook"}},
	KindGitHub:    {"github_workflow_run_success.json", map[string]string{"X-GitHub-Event": "workflow_run"}},
	KindGitea:     {"gitea_push.json", map[string]string{"X-Gitea-Event": "push"}},
	KindNextcloud: {"nextcloud_node_created.json", nil},
	KindGeneric:   {"generic_deploy.json", nil},
	KindSlack:     {"slack_message.json", nil},
}

type testServer struct {
	srv  *Server
	ts   *httptest.Server
	logs *bytes.Buffer
	mu   sync.Mutex
	got  []Event
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	var sources []Source
	for _, k := range allKinds {
		sources = append(sources, Source{Name: "src-" + k, Kind: k, Secret: testSecret})
	}
	st := openTestStore(t, filepath.Join(t.TempDir(), "events.db"))
	x := &testServer{logs: &bytes.Buffer{}}
	var logMu sync.Mutex
	srv, err := NewServer(ServerOptions{
		Sources: sources, Store: st,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&logMu, x.logs}, nil)),
		Now:    func() time.Time { return testNow },
		OnEvent: func(ev Event) {
			x.mu.Lock()
			x.got = append(x.got, ev)
			x.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x.srv = srv
	x.ts = httptest.NewServer(srv)
	t.Cleanup(x.ts.Close)
	return x
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (x *testServer) post(t *testing.T, method, path string, h http.Header, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, x.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := x.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	x := newTestServer(t)
	big := bytes.Repeat([]byte("a"), 10<<20)
	for _, kind := range allKinds {
		sample := sampleFor[kind]
		body := readSample(t, sample.file)
		path := "/hooks/src-" + kind
		request := func(secret string, body []byte, at time.Time) (http.Header, string) {
			h, ps := goodHeaders(kind, secret, body, at)
			for k, v := range sample.header {
				h.Set(k, v)
			}
			p := path
			if ps != "" {
				p += "/" + ps
			}
			return h, p
		}
		for _, tc := range []struct {
			name     string
			secret   string
			body     []byte
			at       time.Time
			mutate   func(h http.Header) // after signing
			method   string
			want     int
			wantBody string
		}{
			{name: "good", want: http.StatusAccepted},
			{name: "replay", want: http.StatusOK, wantBody: `{"duplicate":true}`},
			{name: "wrong secret", secret: "wrong-wrong-wrong-wrong", want: http.StatusUnauthorized},
			{name: "missing header", mutate: func(h http.Header) { h.Del(sigHeader[kind]) }, want: http.StatusUnauthorized},
			{name: "too big", body: big, want: http.StatusRequestEntityTooLarge},
			{name: "unparsable", body: []byte(`{"half":`), want: http.StatusBadRequest},
			{name: "GET", method: http.MethodGet, want: http.StatusMethodNotAllowed},
			{name: "stale timestamp", at: testNow.Add(-10 * time.Minute), want: http.StatusUnauthorized},
		} {
			if !tc.at.IsZero() && kind != KindGeneric {
				continue // only the generic kind signs a time: nothing to check
			}
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				if tc.secret == "" {
					tc.secret = testSecret
				}
				if tc.body == nil {
					tc.body = body
				}
				if tc.at.IsZero() {
					tc.at = testNow
				}
				if tc.method == "" {
					tc.method = http.MethodPost
				}
				if tc.name == "replay" && (kind == KindSlack || kind == KindNextcloud) {
					// Neither names a delivery or a time: a repeat is a
					// second event (a second "disk full" alert).
					tc.want, tc.wantBody = http.StatusAccepted, `{"accepted":true}`
				}
				h, p := request(tc.secret, tc.body, tc.at)
				if kind == KindSlack && tc.name == "missing header" {
					p = path // the secret is the missing path element
				}
				if tc.mutate != nil {
					tc.mutate(h)
				}
				code, got := x.post(t, tc.method, p, h, tc.body)
				if code != tc.want {
					t.Fatalf("status = %d (%s), want %d", code, strings.TrimSpace(got), tc.want)
				}
				if tc.wantBody != "" && strings.TrimSpace(got) != tc.wantBody {
					t.Fatalf("body = %q, want %q", got, tc.wantBody)
				}
			})
		}
	}

	// Each kind's good request, and only it (and slack's and nextcloud's
	// repeat), reached the consumer and the store.
	var sources []string
	for _, kind := range allKinds {
		sources = append(sources, "src-"+kind)
		if kind == KindSlack || kind == KindNextcloud {
			sources = append(sources, "src-"+kind)
		}
	}
	var got []string
	for _, ev := range x.got {
		got = append(got, ev.Source)
	}
	if !slices.Equal(got, sources) {
		t.Fatalf("consumer got events from %q, want %q", got, sources)
	}
	pending, err := x.srv.store.Pending()
	if err != nil || len(pending) != len(sources) {
		t.Fatalf("store holds %d events (%v), want %d", len(pending), err, len(sources))
	}
	for i, ev := range x.got {
		if pending[i].ID != ev.ID {
			t.Errorf("event %d: consumer %s/%s, store %s", i, ev.Source, ev.ID, pending[i].ID)
		}
	}
	if logs := x.logs.String(); strings.Contains(logs, testSecret) || !strings.Contains(logs, "refusing a webhook") {
		t.Fatalf("logs reveal the secret or say nothing:\n%s", logs)
	}
}

func TestServerRouting(t *testing.T) {
	x := newTestServer(t)
	for _, tc := range []struct {
		name, path string
		want       int
	}{
		{"unknown source", "/hooks/nobody", http.StatusNotFound},
		{"outside /hooks", "/other", http.StatusNotFound},
		{"secret path on a non-slack source", "/hooks/src-gitlab/" + testSecret, http.StatusNotFound},
		{"slack with a wrong secret", "/hooks/src-slack/wrong", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := x.post(t, http.MethodPost, tc.path, nil, []byte(`{"text":"x"}`)); code != tc.want {
				t.Fatalf("status = %d (%s), want %d", code, body, tc.want)
			}
		})
	}
}

func TestNewServerRefusesBadSources(t *testing.T) {
	st := openTestStore(t, filepath.Join(t.TempDir(), "events.db"))
	_, err := NewServer(ServerOptions{Store: st, Sources: []Source{
		{Name: "a", Kind: KindGitHub, Secret: testSecret},
		{Name: "a", Kind: KindGitLab, Secret: testSecret},
		{Name: "b", Kind: "svn", Secret: testSecret},
	}})
	if err == nil || !strings.Contains(err.Error(), "source a: defined twice") || !strings.Contains(err.Error(), "source b") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error reveals the secret: %v", err)
	}
}

// A body without Content-Length (chunked) is cut at MaxBody too.
func TestServerTooBigChunked(t *testing.T) {
	x := newTestServer(t)
	body := io.MultiReader(strings.NewReader(`{"text":"`), io.LimitReader(neverEnding('a'), 10<<20))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, x.ts.URL+"/hooks/src-slack/"+testSecret, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := x.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status = %d, want 413", resp.StatusCode)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// A repeated event is not a replay: the same generic alert signed at four
// times is four events, a slack or nextcloud repeat is a second event;
// but the same signed request again, or a github, gitea or gitlab body
// resent under a new delivery id, is a replay.
func TestServerRepeats(t *testing.T) {
	x := newTestServer(t)
	send := func(kind string, body []byte, at time.Time, delivery string) int {
		t.Helper()
		h, ps := goodHeaders(kind, testSecret, body, at)
		for k, v := range sampleFor[kind].header {
			h.Set(k, v)
		}
		for _, k := range []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gitlab-Event-UUID"} {
			h.Set(k, delivery)
		}
		p := "/hooks/src-" + kind
		if ps != "" {
			p += "/" + ps
		}
		code, _ := x.post(t, http.MethodPost, p, h, body)
		return code
	}
	alert := []byte(`{"type":"alert","title":"disk full on db1"}`)
	for i := range 4 {
		if code := send(KindGeneric, alert, testNow.Add(-time.Duration(i)*time.Second), ""); code != http.StatusAccepted {
			t.Errorf("generic alert signed at -%ds: HTTP %d, want 202", i, code)
		}
	}
	if code := send(KindGeneric, alert, testNow, ""); code != http.StatusOK {
		t.Errorf("the same signed generic request again: HTTP %d, want 200 (duplicate)", code)
	}
	for _, kind := range []string{KindSlack, KindNextcloud} {
		body := readSample(t, sampleFor[kind].file)
		for i := range 2 {
			if code := send(kind, body, testNow, ""); code != http.StatusAccepted {
				t.Errorf("%s body, time %d: HTTP %d, want 202", kind, i+1, code)
			}
		}
	}
	for _, kind := range []string{KindGitHub, KindGitea, KindGitLab} {
		body := readSample(t, sampleFor[kind].file)
		if code := send(kind, body, testNow, "first-"+kind); code != http.StatusAccepted {
			t.Errorf("%s first delivery: HTTP %d, want 202", kind, code)
		}
		if code := send(kind, body, testNow, "second-"+kind); code != http.StatusOK {
			t.Errorf("%s body under a new delivery id: HTTP %d, want 200 (duplicate)", kind, code)
		}
	}
	if want := 4 + 2*2 + 3; len(x.got) != want {
		t.Fatalf("%d events reached the recipes, want %d", len(x.got), want)
	}
}
