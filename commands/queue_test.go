package commands

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
	"github.com/summoner-bot/summoner/chat/outbox"
)

// server records what the outbox delivers: the queue tests read replies
// there, as a user would see them.
type server struct {
	mu    sync.Mutex
	posts []*served
}

type served struct {
	id      string
	replyTo string
	text    string
}

func (s *server) Send(_ context.Context, m outbox.Msg) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &served{id: fmt.Sprint("p", len(s.posts)+1), replyTo: m.ReplyTo, text: m.Text}
	s.posts = append(s.posts, p)
	return p.id, nil
}

func (s *server) Edit(_ context.Context, _, id, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.posts {
		if p.id == id {
			p.text = text
			return nil
		}
	}
	return errors.New("no such post")
}

func (s *server) Find(context.Context, string, string, time.Time) (string, bool, error) {
	return "", false, nil
}

// replies are the texts of the posts answering id, oldest first.
func (s *server) replies(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.posts {
		if p.replyTo == id {
			out = append(out, p.text)
		}
	}
	return out
}

func journal(t *testing.T, path string, s *server) *outbox.Outbox {
	t.Helper()
	ob, err := outbox.Open(outbox.Options{Path: path, Sender: s, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ob.Start()
	return ob
}

type queueFixture struct {
	srv     *server
	q       *Queue
	release chan struct{}
	unstick chan struct{} // lets "stuck" return, once the test is over
	mu      sync.Mutex
	ran     map[string]int
	stop    func()
}

func newQueue(t *testing.T, ob *outbox.Outbox, srv *server, o QueueOptions) *queueFixture {
	t.Helper()
	f := &queueFixture{srv: srv, release: make(chan struct{}), unstick: make(chan struct{}), ran: map[string]int{}}
	t.Cleanup(func() { close(f.unstick) })
	count := func(r *Request) {
		f.mu.Lock()
		f.ran[r.Message.ID]++
		f.mu.Unlock()
	}
	reg, err := NewRegistry(
		Definition{Name: "hold", Summary: "blocks until released", Timeout: time.Minute,
			Run: func(ctx context.Context, r *Request) (string, error) {
				count(r)
				r.Progress(ctx, "holding…")
				select {
				case <-f.release:
					return "released", nil
				case <-ctx.Done():
					return "", ctx.Err()
				}
			}},
		Definition{Name: "quick", Summary: "answers at once",
			Run: func(_ context.Context, r *Request) (string, error) { count(r); return "quick answer", nil }},
		Definition{Name: "stuck", Summary: "ignores its deadline", Timeout: 20 * time.Millisecond,
			Run: func(context.Context, *Request) (string, error) {
				// Blocks past the router's afterDeadline wait for as long as
				// the test lasts, rather than sleeping a little longer than
				// it: a loaded machine could let the sleep win the race.
				<-f.unstick
				return "too late", nil
			}},
		Definition{Name: "docker", Summary: "a Docker call that times out", Timeout: 20 * time.Millisecond,
			Run: func(ctx context.Context, _ *Request) (string, error) {
				<-ctx.Done()
				return "", userErr{"Docker did not answer while listing containers."}
			}},
	)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRouter(Options{Registry: reg, Poster: ob, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	o.Journal, o.Logger = ob, slog.New(slog.NewTextHandler(io.Discard, nil))
	f.q = NewQueue(rt, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = f.q.Run(ctx); close(done) }()
	var once sync.Once
	f.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(f.stop)
	return f
}

type userErr struct{ msg string }

func (e userErr) Error() string       { return e.msg }
func (e userErr) UserMessage() string { return e.msg }

func msg(id, text string) chat.Message {
	return chat.Message{ID: id, Text: text, User: alice, Channel: ops, ThreadID: id, At: time.Now(), Received: time.Now()}
}

// replyTo is the text of the first post answering id.
func (f *queueFixture) replyTo(id string) string {
	if rs := f.srv.replies(id); len(rs) > 0 {
		return rs[0]
	}
	return ""
}

func (f *queueFixture) waitReply(t *testing.T, id string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if r := f.replyTo(id); ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("no fitting reply to %s; replies %q", id, f.srv.replies(id))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func has(s string) func(string) bool { return func(r string) bool { return strings.Contains(r, s) } }

func TestQueueTellsAtOnceWhenBusy(t *testing.T) {
	srv := &server{}
	j := journal(t, filepath.Join(t.TempDir(), "j.db"), srv)
	defer j.Close(0)
	f := newQueue(t, j, srv, QueueOptions{Workers: 2, Size: 1})
	ctx := context.Background()
	f.q.Handle(ctx, msg("h1", "hold"))
	f.q.Handle(ctx, msg("h2", "hold"))
	f.waitReply(t, "h1", has("holding"))
	f.waitReply(t, "h2", has("holding"))

	// Handle returns at once even with every worker held.
	start := time.Now()
	f.q.Handle(ctx, msg("w", "quick"))
	f.q.Handle(ctx, msg("b", "quick"))
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Handle blocked for %v", d)
	}
	f.waitReply(t, "w", has("I'm busy: 2 commands are ahead of this one. It is queued"))
	f.waitReply(t, "b", has("I'm busy: 3 commands are ahead of this one (2 running, 1 waiting)"))
	if running, waiting := f.q.Depth(); running != 2 || waiting != 1 {
		t.Fatalf("depth %d running, %d waiting", running, waiting)
	}

	close(f.release)
	f.waitReply(t, "w", has("quick answer")) // the queued note became the answer
	f.waitReply(t, "h1", has("released"))
	f.mu.Lock()
	if f.ran["b"] != 0 || f.ran["w"] != 1 {
		t.Fatalf("runs %v: the refused command ran, or the queued one did not run once", f.ran)
	}
	f.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for es, _ := j.Unfinished(); len(es) != 0; es, _ = j.Unfinished() {
		if time.Now().After(deadline) {
			t.Fatalf("journal still holds %+v", es)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestQueueRunsACommandOnce(t *testing.T) {
	srv := &server{}
	j := journal(t, filepath.Join(t.TempDir(), "j.db"), srv)
	defer j.Close(0)
	f := newQueue(t, j, srv, QueueOptions{})
	for range 3 { // live, then through catch-up, then again
		f.q.Handle(context.Background(), msg("m1", "quick"))
	}
	f.waitReply(t, "m1", has("quick answer"))
	f.q.Handle(context.Background(), msg("sync", "quick"))
	f.waitReply(t, "sync", has("quick answer"))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ran["m1"] != 1 || len(f.srv.replies("m1")) != 1 {
		t.Fatalf("ran %d times with replies %q, want once", f.ran["m1"], f.srv.replies("m1"))
	}
}

func TestCommandsRunOutOfTimeClearly(t *testing.T) {
	srv := &server{}
	j := journal(t, filepath.Join(t.TempDir(), "j.db"), srv)
	defer j.Close(0)
	f := newQueue(t, j, srv, QueueOptions{})
	tests := []struct{ cmd, want string }{
		{"stuck", "⏱️ `stuck` ran out of time: it did not finish within"},
		{"docker", "⏱️ `docker` ran out of time: it did not finish within 20ms, so I stopped it. Docker did not answer while listing containers."},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			f.q.Handle(context.Background(), msg(tt.cmd, tt.cmd))
			if r := f.waitReply(t, tt.cmd, has("⏱️")); !strings.Contains(r, tt.want) {
				t.Fatalf("reply %q, want %q", r, tt.want)
			}
		})
	}
}

func TestQueueAnswersWhatARestartCutShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "j.db")
	srv := &server{}
	j := journal(t, path, srv)
	f := newQueue(t, j, srv, QueueOptions{Workers: 1, Size: 4, Grace: time.Millisecond})
	ctx := context.Background()
	f.q.Handle(ctx, msg("running", "hold"))
	f.waitReply(t, "running", has("holding"))
	f.q.Handle(ctx, msg("waiting", "quick"))
	old := msg("old", "quick")
	old.At = time.Now().Add(-time.Hour)
	if _, err := j.Begin(old, false); err != nil { // accepted an hour ago, never run
		t.Fatal(err)
	}
	// A crash: the journal is left as it was (a clean stop would have let
	// "running" finish).
	if err := j.Close(0); err != nil {
		t.Fatal(err)
	}
	f.stop() // its journal is gone: what it does now reaches no one

	f.waitReply(t, "waiting", has("queued"))
	j = journal(t, path, srv)
	defer j.Close(0)
	g := newQueue(t, j, srv, QueueOptions{Workers: 1})
	r := f.waitReply(t, "running", has("restarted while this was running"))
	if !strings.HasPrefix(r, "holding…") {
		t.Fatalf("the note %q does not keep what the progress message said", r)
	}
	f.waitReply(t, "waiting", has("quick answer"))
	f.waitReply(t, "old", has("too old to run now"))
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ran["running"] != 0 || g.ran["old"] != 0 || g.ran["waiting"] != 1 {
		t.Fatalf("after the restart: runs %v", g.ran)
	}
}

// Submit: a full queue refuses without a word in the channel and without
// journaling, so the same message, submitted again once a worker frees
// up, runs once; finished is called after its final answer.
func TestQueueSubmitRefusesWithoutLosingTheCommand(t *testing.T) {
	srv := &server{}
	j := journal(t, filepath.Join(t.TempDir(), "j.db"), srv)
	defer j.Close(0)
	f := newQueue(t, j, srv, QueueOptions{Workers: 1, Size: 1})
	ctx := t.Context()
	f.q.Handle(ctx, msg("h", "hold"))
	f.waitReply(t, "h", has("holding"))
	f.q.Handle(ctx, msg("w", "quick"))
	f.waitReply(t, "w", has("It is queued"))

	done := make(chan struct{})
	deploy := msg("hook/ev1/deploy/1", "quick")
	if err := f.q.Submit(ctx, deploy, func() { close(done) }); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit with the queue full = %v, want ErrQueueFull", err)
	}
	if rs := srv.replies(deploy.ID); len(rs) != 0 {
		t.Fatalf("a refused Submit posted %q", rs)
	}
	if es, _ := j.Unfinished(); len(es) != 2 {
		t.Fatalf("journal holds %d commands, want the 2 accepted ones", len(es))
	}

	close(f.release)
	f.waitReply(t, "w", has("quick answer"))
	if err := f.q.Submit(ctx, deploy, func() { close(done) }); err != nil {
		t.Fatalf("Submit once the queue has room = %v", err)
	}
	<-done
	if r := f.replyTo(deploy.ID); r != "quick answer" {
		t.Fatalf("the submitted command was answered %q", r)
	}
	// Submitted again (a restart between hand-over and bookkeeping): it
	// does not run twice.
	again := make(chan struct{})
	if err := f.q.Submit(ctx, deploy, func() { close(again) }); err != nil {
		t.Fatalf("Submit of a finished command = %v", err)
	}
	<-again // called at once: nothing more will run
	f.q.Handle(ctx, msg("sync", "quick"))
	f.waitReply(t, "sync", has("quick answer"))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ran[deploy.ID] != 1 {
		t.Fatalf("the submitted command ran %d times, want once", f.ran[deploy.ID])
	}
}
