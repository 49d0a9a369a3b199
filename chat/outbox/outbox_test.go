package outbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
)

// server is a fake chat server behind the narrow Sender interface: it can
// be down, and it can lose its answers after creating a post, which is
// what a crash or a server restart does to a real one.
type server struct {
	mu       sync.Mutex
	posts    []*fakePost
	down     bool
	loseNext int // creations whose answer is lost
	refuse   map[string]bool
	sends    int
}

type fakePost struct {
	ID, Channel, Thread, ReplyTo, Key, Text string
	Edits                                   int
	Props                                   map[string]any
}

var errDown = errors.New("connection refused")

func (s *server) Send(ctx context.Context, m Msg) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sends++
	if s.down {
		return "", errDown
	}
	if s.refuse[m.Channel] {
		return "", errRefused
	}
	p := &fakePost{ID: fmt.Sprintf("p%d", len(s.posts)+1), Channel: m.Channel, Thread: m.ThreadID, ReplyTo: m.ReplyTo, Key: m.Key, Text: m.Text, Props: m.Props}
	s.posts = append(s.posts, p)
	if s.loseNext > 0 {
		s.loseNext--
		return "", errors.New("EOF") // created, but the answer never came
	}
	return p.ID, nil
}

var errRefused = errors.New("403 not a member")

func (s *server) Edit(ctx context.Context, channel, postID, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	for _, p := range s.posts {
		if p.ID == postID {
			p.Text = text
			p.Edits++
			return nil
		}
	}
	return errors.New("404 no such post")
}

func (s *server) Find(ctx context.Context, channel, key string, since time.Time) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", false, errDown
	}
	for _, p := range s.posts {
		if p.Key == key {
			return p.ID, true, nil
		}
	}
	return "", false, nil
}

func (s *server) setDown(v bool) {
	s.mu.Lock()
	s.down = v
	s.mu.Unlock()
}

func (s *server) first(channel string) fakePost {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.posts {
		if p.Channel == channel {
			return *p
		}
	}
	return fakePost{}
}

func (s *server) texts(channel string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.posts {
		if p.Channel == channel {
			out = append(out, p.Text)
		}
	}
	return out
}

func open(t *testing.T, path string, s *server) *Outbox {
	t.Helper()
	ob, err := Open(Options{
		Path: path, Sender: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Permanent: func(err error) bool { return errors.Is(err, errRefused) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ob.Start()
	return ob
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func drained(ob *Outbox) func() bool { return func() bool { return ob.Pending() == 0 } }

var ctx = context.Background()

func TestDeliversInOrderPerChannelWithEditsCoalesced(t *testing.T) {
	s := &server{}
	s.setDown(true) // everything queues up first
	ob := open(t, filepath.Join(t.TempDir(), "out.db"), s)
	defer ob.Close(time.Second)

	m := chat.Message{ID: "cmd1", Channel: chat.Channel{ID: "c1"}, ThreadID: "cmd1"}
	progress, err := ob.Reply(ctx, m, "step 1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 50; i++ {
		if err := ob.Update(ctx, progress, fmt.Sprintf("step %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if _, err := ob.Post(ctx, chat.Destination{ChannelID: "c1"}, fmt.Sprintf("report %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ob.Post(ctx, chat.Destination{ChannelID: "c2"}, "elsewhere"); err != nil {
		t.Fatal(err)
	}
	s.setDown(false)
	waitUntil(t, "delivery", drained(ob))

	got := strings.Join(s.texts("c1"), "|")
	if want := "step 50|report 0|report 1|report 2|report 3|report 4"; got != want {
		t.Fatalf("channel c1 got %q, want %q", got, want)
	}
	if got := s.texts("c2"); len(got) != 1 || got[0] != "elsewhere" {
		t.Fatalf("channel c2 got %q", got)
	}
	// The post was being sent (and failing) while the edits came: they
	// fold into one edit.
	if p := s.first("c1"); p.ReplyTo != "cmd1" || p.Thread != "cmd1" || p.Edits > 1 {
		t.Fatalf("the reply %+v: want it tagged and threaded, with the 49 edits coalesced", p)
	}
}

func TestEditsOfADeliveredPostGoOutAsOneEdit(t *testing.T) {
	s := &server{}
	ob := open(t, filepath.Join(t.TempDir(), "out.db"), s)
	defer ob.Close(time.Second)
	ref, _ := ob.Post(ctx, chat.Destination{ChannelID: "c1"}, "working")
	waitUntil(t, "the post", drained(ob))
	s.setDown(true)
	for i := range 20 {
		_ = ob.Update(ctx, ref, fmt.Sprintf("progress %d", i))
	}
	_ = ob.Update(ctx, ref, "done")
	s.setDown(false)
	waitUntil(t, "the edit", drained(ob))
	if p := s.first("c1"); len(s.texts("c1")) != 1 || p.Text != "done" || p.Edits > 2 {
		t.Fatalf("post %+v; want one post reading done after at most 2 edits", p)
	}
}

func TestALostAnswerIsNotSentTwice(t *testing.T) {
	s := &server{loseNext: 1}
	ob := open(t, filepath.Join(t.TempDir(), "out.db"), s)
	defer ob.Close(time.Second)
	ref, _ := ob.Post(ctx, chat.Destination{ChannelID: "c1"}, "hello")
	waitUntil(t, "delivery", drained(ob))
	if n := len(s.texts("c1")); n != 1 {
		t.Fatalf("%d posts, want exactly 1", n)
	}
	// The post's ID was learnt from Find, so edits reach it.
	_ = ob.Update(ctx, ref, "hello, edited")
	waitUntil(t, "the edit", drained(ob))
	if got := s.texts("c1"); len(got) != 1 || got[0] != "hello, edited" {
		t.Fatalf("after the edit: %q", got)
	}
}

func TestSurvivesRestartWhileTheServerIsDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.db")
	s := &server{}
	s.setDown(true)
	ob := open(t, path, s)
	m := chat.Message{ID: "cmd1", Channel: chat.Channel{ID: "c1"}}
	ref, _ := ob.Reply(ctx, m, "final answer")
	_, _ = ob.Post(ctx, chat.Destination{ChannelID: "c1", ThreadID: ref.ID}, "in its thread")
	if err := ob.Close(50 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// A try may have landed just before the stop (its answer lost).
	s.mu.Lock()
	s.down = false
	s.posts = append(s.posts, &fakePost{ID: "p-early", Channel: "c1", Key: ob.inst + "-1", Text: "final answer", ReplyTo: "cmd1"})
	s.mu.Unlock()

	ob = open(t, path, s)
	defer ob.Close(time.Second)
	waitUntil(t, "delivery after the restart", drained(ob))
	got := s.texts("c1")
	if strings.Join(got, "|") != "final answer|in its thread" {
		t.Fatalf("posts %q, want the answer once, then its thread reply", got)
	}
	s.mu.Lock()
	thread := s.posts[1].Thread
	s.mu.Unlock()
	if thread != "p-early" {
		t.Fatalf("the thread reply went to %q, want the answer's post", thread)
	}
}

func TestARefusedPostIsDroppedAndTheRestGoOut(t *testing.T) {
	s := &server{refuse: map[string]bool{"gone": true}}
	ob := open(t, filepath.Join(t.TempDir(), "out.db"), s)
	defer ob.Close(time.Second)
	bad, _ := ob.Post(ctx, chat.Destination{ChannelID: "gone"}, "lost cause")
	_ = ob.Update(ctx, bad, "still a lost cause")
	_, _ = ob.Post(ctx, chat.Destination{ChannelID: "gone"}, "another")
	_, _ = ob.Post(ctx, chat.Destination{ChannelID: "ok"}, "fine")
	waitUntil(t, "the queue to empty", drained(ob))
	if got := s.texts("ok"); len(got) != 1 {
		t.Fatalf("the good channel got %q", got)
	}
	s.mu.Lock()
	sends := s.sends
	s.mu.Unlock()
	if sends > 3 {
		t.Fatalf("%d sends: a refused post was retried", sends)
	}
}

func TestJournal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.db")
	s := &server{}
	ob := open(t, path, s)
	a := chat.Message{ID: "a", Text: "summon wekan", Channel: chat.Channel{ID: "c1"}, At: time.Now()}
	b := chat.Message{ID: "b", Text: "status", Channel: chat.Channel{ID: "c1"}, At: time.Now()}
	for _, m := range []chat.Message{a, b} {
		if fresh, err := ob.Begin(m, false); !fresh || err != nil {
			t.Fatalf("Begin(%s) = %v, %v", m.ID, fresh, err)
		}
	}
	if fresh, _ := ob.Begin(a, false); fresh {
		t.Fatal("a command accepted twice")
	}
	_ = ob.Started("a")
	ref, _ := ob.Reply(ctx, a, "pulling…")
	_ = ob.Update(ctx, ref, "starting…")
	_ = ob.Finish("b")
	waitUntil(t, "delivery", drained(ob))
	_ = ob.Close(time.Second)

	ob = open(t, path, s)
	defer ob.Close(time.Second)
	es, err := ob.Unfinished()
	if err != nil || len(es) != 1 {
		t.Fatalf("unfinished %+v, %v; want a alone", es, err)
	}
	e := es[0]
	if e.Message.Text != "summon wekan" || !e.Started || e.Reply != ref.ID {
		t.Fatalf("entry %+v", e)
	}
	if text, ok := ob.LastText(e.Reply); !ok || text != "starting…" {
		t.Fatalf("last text %q, %v", text, ok)
	}
	if fresh, _ := ob.Begin(b, false); fresh {
		t.Fatal("a finished command accepted again after a restart")
	}
}
