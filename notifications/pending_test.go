package notifications

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/golden"
)

// fullQueue hands commands over as the commands queue does, refusing
// those whose line is in refuse (every one when all is set).
type fullQueue struct {
	p      *recipePoster
	mu     sync.Mutex
	all    bool
	refuse map[string]bool
	keys   []string // keys of the commands handed over
	stop   func()   // when set, the hand-over cancels the caller's context and fails
}

func (q *fullQueue) Run(ctx context.Context, key string, a CommandAction) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("command without a deadline")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.all || q.refuse[a.Line] {
		return ErrQueueFull
	}
	if q.stop != nil {
		q.stop()
		return context.Canceled
	}
	q.keys = append(q.keys, key)
	q.p.mu.Lock()
	q.p.posts = append(q.p.posts, "run: "+a.Line)
	q.p.mu.Unlock()
	return nil
}

func (q *fullQueue) set(all bool) {
	q.mu.Lock()
	q.all = all
	q.mu.Unlock()
}

// runs records what OnRun and OnReplaced heard.
type runs struct {
	mu  sync.Mutex
	got []string
}

func (r *runs) ran(recipe string, ev Event, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var w *WaitingError
	var g *GaveUpError
	switch {
	case err == nil:
		r.got = append(r.got, recipe+" "+ev.ID+": done")
	case errors.As(err, &w):
		r.got = append(r.got, recipe+" "+ev.ID+": waiting: "+w.Command)
	case errors.As(err, &g):
		r.got = append(r.got, recipe+" "+ev.ID+": gave up: "+g.Error())
	default:
		r.got = append(r.got, recipe+" "+ev.ID+": failed: "+err.Error())
	}
}

func (r *runs) replaced(x Replaced) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, x.Recipe+" "+x.Old.ID+": replaced by "+x.By.ID+" ("+x.Command+")")
}

func (r *runs) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

type waitFixture struct {
	clock *fakeClock
	p     *recipePoster
	q     *fullQueue
	runs  *runs
	e     *Engine
}

// deployOnGreen announces, deploys, then says it is deployed.
var deployOnGreen = Recipe{Name: "deploy", Source: "gl", Statuses: []string{"success"}, Actions: []Action{
	recipePost("dev", "deploying {{.Ref}}"),
	{Command: &CommandAction{Line: "update shop", Level: "operator", Channel: "dev"}},
	recipePost("dev", "deployed {{.Ref}}"),
}}

func newWaitFixture(t *testing.T, store WaitingStore, recipes ...Recipe) *waitFixture {
	t.Helper()
	f := &waitFixture{clock: &fakeClock{t: time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)}, p: &recipePoster{}, runs: &runs{}}
	f.q = &fullQueue{p: f.p, refuse: map[string]bool{}}
	f.e = f.engine(t, store, recipes...)
	return f
}

func (f *waitFixture) engine(t *testing.T, store WaitingStore, recipes ...Recipe) *Engine {
	t.Helper()
	e, err := NewEngine(recipes, EngineOptions{Poster: f.p, Commander: f.q, Logger: recipeQuiet(),
		Waiting: store, Now: f.clock.Now, OpsChannel: "ops", OnRun: f.runs.ran, OnReplaced: f.runs.replaced})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func green(id, ref string) Event {
	return Event{ID: id, Source: "gl", Kind: "gitlab", Type: "pipeline", Project: "shop/web", Ref: ref, Status: "success"}
}

func wantList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// A refused command keeps its run waiting at that action, tried again
// with a doubling backoff capped at RetryMax, and the run resumes there
// once the queue takes it: the later post comes after the command.
func TestWaitingRefusalKeepsTheRun(t *testing.T) {
	f := newWaitFixture(t, nil, deployOnGreen)
	f.q.set(true)
	if err := f.e.Handle(t.Context(), green("ev1", "main")); err != nil {
		t.Fatalf("Handle = %v, want no error for a refused command", err)
	}
	wantList(t, "posts", f.p.got(), []string{"dev: deploying main"})
	wantList(t, "runs", f.runs.list(), []string{"deploy ev1: waiting: update shop"})
	w := f.e.Waiting()
	if len(w) != 1 || w[0].Action != 1 || w[0].Tries != 1 || w[0].Event.ID != "ev1" {
		t.Fatalf("waiting %+v, want ev1 at action 2 after one try", w)
	}

	// Backoff: each try is due 1s, 2s, 4s … 30s, 30s after the one before.
	var gaps []time.Duration
	last := f.clock.Now()
	for range 7 {
		next := f.e.Retry(t.Context())
		if got := f.e.Retry(t.Context()); !got.Equal(next) {
			t.Fatalf("a retry before the run was due tried it (next %v, then %v)", next, got)
		}
		f.clock.Advance(next.Sub(f.clock.Now()))
		gaps = append(gaps, next.Sub(last))
		last = next
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(gaps, want) {
		t.Fatalf("gaps between tries %v, want %v", gaps, want)
	}
	wantList(t, "posts while full", f.p.got(), []string{"dev: deploying main"})

	f.q.set(false)
	if next := f.e.Retry(t.Context()); !next.IsZero() {
		t.Fatalf("Retry says a run is still due at %v", next)
	}
	wantList(t, "posts", f.p.got(), []string{"dev: deploying main", "run: update shop", "dev: deployed main"})
	wantList(t, "keys", f.q.keys, []string{"hook/ev1/deploy/2"})
	wantList(t, "runs", f.runs.list(), []string{"deploy ev1: waiting: update shop", "deploy ev1: done"})
	if w := f.e.Waiting(); len(w) != 0 {
		t.Fatalf("still waiting: %+v", w)
	}
}

// Within a recipe nothing overtakes a waiting run: a newer event's run of
// the same recipe, whose command is for the same minion, replaces it and
// goes in its place. The older deploy never runs after the newer one, and
// the older run's last post never comes.
func TestWaitingRunsKeepTheirRecipesOrder(t *testing.T) {
	f := newWaitFixture(t, nil, deployOnGreen)
	f.q.set(true)
	ctx := t.Context()
	_ = f.e.Handle(ctx, green("ev1", "v1"))
	f.clock.Advance(5 * time.Minute)
	_ = f.e.Handle(ctx, green("ev2", "v2"))
	wantList(t, "runs", f.runs.list(), []string{
		"deploy ev1: waiting: update shop",
		"deploy ev1: replaced by ev2 (update shop)",
		"deploy ev2: waiting: update shop",
	})
	if w := f.e.Waiting(); len(w) != 1 || w[0].Event.ID != "ev2" || w[0].Action != 1 {
		t.Fatalf("waiting %+v, want only ev2's run, at its command", w)
	}

	f.q.set(false)
	f.clock.Advance(time.Minute)
	f.e.Retry(ctx)
	_ = f.e.Handle(ctx, green("ev3", "v3")) // nothing waits now: it runs at once
	wantList(t, "posts", f.p.got(), []string{
		"dev: deploying v1", "dev: deploying v2", "run: update shop", "dev: deployed v2",
		"dev: deploying v3", "run: update shop", "dev: deployed v3",
	})
	wantList(t, "keys", f.q.keys, []string{"hook/ev2/deploy/2", "hook/ev3/deploy/2"})
}

// A recipe with a run waiting holds back only itself: on the same events
// the other recipes post and hand their commands over.
func TestWaitingDoesNotBlockOtherRecipes(t *testing.T) {
	relay := Recipe{Name: "relay", Source: "gl", Actions: []Action{recipePost("ci", "CI {{.Ref}}")}}
	backup := Recipe{Name: "backup", Source: "gl", Actions: []Action{{Command: &CommandAction{Line: "backup db", Level: "operator", Channel: "ops"}}}}
	f := newWaitFixture(t, nil, deployOnGreen, relay, backup)
	f.q.refuse["update shop"] = true
	ctx := t.Context()
	for _, ev := range []Event{green("ev1", "v1"), green("ev2", "v2")} {
		if err := f.e.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute)
		f.e.Retry(ctx)
	}
	wantList(t, "posts", f.p.got(), []string{
		"dev: deploying v1", "ci: CI v1", "run: backup db",
		"dev: deploying v2", "ci: CI v2", "run: backup db",
	})
	if w := f.e.Waiting(); len(w) != 1 || w[0].Recipe != "deploy" || w[0].Event.ID != "ev2" {
		t.Fatalf("waiting %+v, want deploy's run for ev2 only", w)
	}
}

// After an hour without a place in the queue the run is dropped, the ops
// channel is told, and OnRun hears a GaveUpError; nothing ran.
func TestWaitingGivesUpAfterAnHour(t *testing.T) {
	f := newWaitFixture(t, nil, deployOnGreen)
	f.q.set(true)
	ctx := t.Context()
	_ = f.e.Handle(ctx, green("ev1", "main"))
	start := f.clock.Now()
	for {
		next := f.e.Retry(ctx)
		if next.IsZero() {
			break
		}
		if f.clock.Now().Sub(start) > 2*time.Hour {
			t.Fatal("still waiting after two hours")
		}
		f.clock.Advance(next.Sub(f.clock.Now()))
	}
	if waited := f.clock.Now().Sub(start); waited < time.Hour || waited > time.Hour+30*time.Second {
		t.Errorf("gave up after %v, want an hour (and at most one backoff more)", waited)
	}
	posts := f.p.got()
	if len(posts) != 2 || !strings.HasPrefix(posts[1], "ops: ") {
		t.Fatalf("posts %q, want the announcement and the report in ops", posts)
	}
	golden.AssertText(t, "waiting_gave_up", strings.TrimPrefix(posts[1], "ops: "))
	got := f.runs.list()
	if len(got) != 2 || !strings.HasPrefix(got[1], "deploy ev1: gave up: `update shop` waited 1h0m") {
		t.Fatalf("runs %q, want waiting then gave up", got)
	}
	if len(f.q.keys) != 0 {
		t.Fatalf("commands handed over: %q", f.q.keys)
	}
}

// Waiting runs live in the event store: after a restart of the store and
// the engine, the run resumes where it waited and runs once. An event
// handled again after a crash adds no second run.
func TestWaitingSurvivesARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	st, err := OpenStore(path, recipeQuiet())
	if err != nil {
		t.Fatal(err)
	}
	f := newWaitFixture(t, st, deployOnGreen)
	f.q.set(true)
	ctx := t.Context()
	ev := green("ev1", "main")
	ev.Payload = []byte(`{"object_attributes":{"id":31}}`)
	_ = f.e.Handle(ctx, ev)
	_ = f.e.Handle(ctx, ev) // handled again: the crash came before Done
	if w := f.e.Waiting(); len(w) != 1 {
		t.Fatalf("%d runs waiting, want 1", len(w))
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st, err = OpenStore(path, recipeQuiet())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f.e = f.engine(t, st, deployOnGreen)
	f.q.set(false)
	f.clock.Advance(time.Minute)
	if next := f.e.Retry(ctx); !next.IsZero() {
		t.Fatalf("a run still waits until %v", next)
	}
	wantList(t, "posts", f.p.got(), []string{"dev: deploying main", "run: update shop", "dev: deployed main"})
	wantList(t, "keys", f.q.keys, []string{"hook/ev1/deploy/2"})
	if left, err := st.ListWaiting(); err != nil || len(left) != 0 {
		t.Fatalf("the store still holds %+v, %v", left, err)
	}
}

// A run of a recipe removed from the config is dropped at start, not
// kept forever.
func TestWaitingOfARemovedRecipeIsDropped(t *testing.T) {
	store := &MemoryWaiting{}
	w := Waiting{Recipe: "gone", Event: green("ev1", "main"), Action: 0}
	if err := store.PutWaiting(&w); err != nil {
		t.Fatal(err)
	}
	f := newWaitFixture(t, store, deployOnGreen)
	f.e.Retry(t.Context())
	if left, _ := store.ListWaiting(); len(left) != 0 {
		t.Fatalf("kept %+v", left)
	}
}

// A run tried while the bot stops is kept, not reported as failed.
func TestWaitingSurvivesAStopMidTry(t *testing.T) {
	f := newWaitFixture(t, nil, deployOnGreen)
	f.q.set(true)
	_ = f.e.Handle(t.Context(), green("ev1", "main"))
	ctx, cancel := context.WithCancel(t.Context())
	f.q.set(false)
	f.q.mu.Lock()
	f.q.stop = cancel // the queue's hand-over ends with the bot's stop
	f.q.mu.Unlock()
	f.clock.Advance(time.Minute)
	f.e.Retry(ctx)
	if w := f.e.Waiting(); len(w) != 1 {
		t.Fatalf("waiting %+v after a stop mid-try, want the run kept", w)
	}
	if got := f.runs.list(); len(got) != 1 {
		t.Fatalf("runs %q, want only the first wait", got)
	}
}
