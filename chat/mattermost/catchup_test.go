package mattermost

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
)

// fakePosts serves GET /channels/{id}/posts the way Mattermost v6.7.2 does
// for the queries catch-up makes (store/sqlstore/post_store.go): newest
// first, deleted posts left out, per_page capped at 200, and "before=<id>"
// meaning created strictly before that post's millisecond. Ties keep the
// order posts were made in, as an index scan would.
type fakePosts struct {
	mu    sync.Mutex
	posts []*model.Post // in creation order
	calls int
}

func (f *fakePosts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v4/users/"):
		_ = json.NewEncoder(w).Encode(&model.User{Id: strings.TrimPrefix(r.URL.Path, "/api/v4/users/"), Username: "someone"})
		return
	case !strings.HasSuffix(r.URL.Path, "/posts"):
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Has("since") {
		http.Error(w, "catch-up must not use since", http.StatusTeapot)
		return
	}
	perPage, err := strconv.Atoi(r.URL.Query().Get("per_page"))
	if err != nil || perPage > 200 {
		perPage = 200
	}
	limit := int64(1) << 62
	if b := r.URL.Query().Get("before"); b != "" {
		i := slices.IndexFunc(f.posts, func(p *model.Post) bool { return p.Id == b })
		if i < 0 {
			http.Error(w, "no such post", http.StatusBadRequest)
			return
		}
		limit = f.posts[i].CreateAt
	}
	var page []*model.Post
	for i := len(f.posts) - 1; i >= 0; i-- {
		p := f.posts[i]
		if p.DeleteAt == 0 && p.CreateAt < limit {
			page = append(page, p)
		}
	}
	slices.SortStableFunc(page, func(a, b *model.Post) int { return int(b.CreateAt - a.CreateAt) })
	if len(page) > perPage {
		page = page[:perPage]
	}
	list := model.NewPostList()
	for _, p := range page {
		list.AddPost(p)
		list.AddOrder(p.Id)
	}
	_ = json.NewEncoder(w).Encode(list)
}

func (f *fakePosts) add(p *model.Post) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.posts = append(f.posts, p)
}

func testAdapter(t *testing.T, srv http.Handler, state string) *Adapter {
	t.Helper()
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	a, err := New(Options{URL: hs.URL, Token: "t0ken-t0ken", StateFile: state, MaxAge: time.Hour,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.me.Store(&model.User{Id: "bot", Username: "summoner"})
	return a
}

func TestWalkBackVisitsEveryPostOnce(t *testing.T) {
	const base = int64(1_700_000_000_000)
	tests := []struct {
		name  string
		posts int
		perMs int // posts sharing each millisecond
		since int64
	}{
		{"fewer than a page", 50, 1, 0},
		{"exactly a page", 200, 1, 0},
		{"many pages", 1500, 1, 0},
		{"ties across page boundaries", 1500, 7, 0},
		{"ties of a page's size", 1000, 199, 0},
		{"stops at since", 1500, 3, base + 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakePosts{}
			for i := range tt.posts {
				f.add(&model.Post{Id: fmt.Sprintf("p%05d", i), ChannelId: "c", CreateAt: base + int64(i/tt.perMs)})
			}
			f.add(&model.Post{Id: "gone", ChannelId: "c", CreateAt: base + int64(tt.posts), DeleteAt: 1})
			a := testAdapter(t, f, "")
			got := map[string]int{}
			err := a.walkBack(context.Background(), "c", tt.since, func(p *model.Post) { got[p.Id]++ })
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			for _, p := range f.posts {
				if p.DeleteAt != 0 || p.CreateAt <= tt.since {
					if got[p.Id] != 0 {
						t.Errorf("visited %s (created %d, deleted %d), outside the window", p.Id, p.CreateAt, p.DeleteAt)
					}
					continue
				}
				want++
				if got[p.Id] != 1 {
					t.Errorf("visited %s %d times, want once", p.Id, got[p.Id])
				}
			}
			if len(got) != want {
				t.Errorf("visited %d posts, want %d", len(got), want)
			}
			// Pages overlap only at the millisecond they end in; a walk
			// that re-read the channel from the top would take far more.
			if maxCalls := want/max(1, 200-tt.perMs) + 2; f.calls > maxCalls {
				t.Errorf("%d requests for %d posts, want at most %d", f.calls, want, maxCalls)
			}
		})
	}
}

// cursorCheck is a handler that, for each command, checks the channel's
// cursor has not moved past it yet, and records the order.
type cursorCheck struct {
	t   *testing.T
	a   *Adapter
	got []string
}

func (c *cursorCheck) Handle(_ context.Context, m chat.Message) {
	if cur, _ := c.a.state.cursor(m.Channel.ID); cur >= m.At.UnixMilli() {
		c.t.Errorf("the cursor (%d) passed command %s (%d) before the handler returned", cur, m.ID, m.At.UnixMilli())
	}
	c.got = append(c.got, m.ID+":"+m.Text)
}

func TestCatchUpHandsOverMissedCommandsInOrder(t *testing.T) {
	now := time.Now()
	base := now.Add(-30 * time.Minute).UnixMilli()
	f := &fakePosts{}
	for i := range 1500 {
		p := &model.Post{Id: fmt.Sprintf("p%05d", i), ChannelId: "c", UserId: "u1", CreateAt: base + int64(i), Message: "chatter"}
		switch i {
		case 100:
			p.Message = "@summoner first"
		case 750:
			p.Message = "@summoner second"
		case 751:
			p.Message = "please don't @summoner third" // not a command
		case 900:
			p.Message = "@summoner answered"
		case 901:
			p.UserId, p.Message = "bot", "done"
			p.SetProps(model.StringInterface{replyProp: "p00900"})
		case 1200:
			p.Message = "@summoner from a bot"
			p.SetProps(model.StringInterface{"from_bot": "true"})
		case 1400:
			p.Message = "@summoner last"
		}
		f.add(p)
	}
	state := filepath.Join(t.TempDir(), "state.json")
	a := testAdapter(t, f, state)
	h := &cursorCheck{t: t, a: a}
	ch := chat.Channel{ID: "c", Name: "town"}
	n, err := a.catchUpChannel(context.Background(), context.Background(), h, a.me.Load(), ch, base-1, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p00100:first", "p00750:second", "p01400:last"}
	if !slices.Equal(h.got, want) || n != len(want) {
		t.Fatalf("handed over %v (n=%d), want %v", h.got, n, want)
	}
	if err := a.state.flush(); err != nil {
		t.Fatal(err)
	}
	back, err := loadCursors(state)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := back.cursor("c"); cur != base+1499 {
		t.Fatalf("saved cursor %d, want the newest post %d", cur, base+1499)
	}

	// A second catch-up from the saved cursor hands over nothing again.
	h.got = nil
	if _, err := a.catchUpChannel(context.Background(), context.Background(), h, a.me.Load(), ch, base+1499, now); err != nil {
		t.Fatal(err)
	}
	if len(h.got) != 0 {
		t.Fatalf("handed over again: %v", h.got)
	}
}

func TestCatchUpStopsAtShutdownBehindTheCursor(t *testing.T) {
	now := time.Now()
	base := now.Add(-time.Minute).UnixMilli()
	f := &fakePosts{}
	for i, text := range []string{"@summoner one", "@summoner two", "@summoner three"} {
		f.add(&model.Post{Id: fmt.Sprintf("p%d", i), ChannelId: "c", UserId: "u1", CreateAt: base + int64(i), Message: text})
	}
	a := testAdapter(t, f, "")
	hctx, stop := context.WithCancel(context.Background())
	var got []string
	h := chat.HandlerFunc(func(_ context.Context, m chat.Message) {
		got = append(got, m.Text)
		stop() // shutdown begins while the first command is handed over
	})
	if _, err := a.catchUpChannel(context.Background(), hctx, h, a.me.Load(), chat.Channel{ID: "c"}, base-1, now); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []string{"one"}) {
		t.Fatalf("handed over %v, want only the first", got)
	}
	if cur, _ := a.state.cursor("c"); cur != base {
		t.Fatalf("cursor %d, want %d: just past the command handed over, before the others", cur, base)
	}
}
