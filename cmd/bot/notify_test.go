package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/notifications"
)

// fakeOnce records PostOnce calls and drops a key seen before, as the
// outbox does.
type fakeOnce struct {
	mu    sync.Mutex
	keys  map[string]bool
	posts []string
}

func (f *fakeOnce) PostOnce(_ context.Context, key string, to chat.Destination, text string) (chat.PostRef, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = map[string]bool{}
	}
	if f.keys[key] {
		return chat.PostRef{}, false, nil
	}
	f.keys[key] = true
	f.posts = append(f.posts, to.ChannelID+": "+text)
	return chat.PostRef{ID: key}, true, nil
}

func (f *fakeOnce) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.posts...)
}

// fakeTaker is the commands queue: it takes commands, or refuses them
// while full, and calls finished when told.
type fakeTaker struct {
	full     bool
	msgs     []chat.Message
	finished []func()
}

func (f *fakeTaker) Submit(_ context.Context, m chat.Message, finished func()) error {
	if f.full {
		return commands.ErrQueueFull
	}
	f.msgs = append(f.msgs, m)
	f.finished = append(f.finished, finished)
	return nil
}

type noReports struct{ err error }

func (n noReports) Publish(context.Context, maintenance.Report) error { return n.err }

func testNotifier(t *testing.T, recipes []notifications.Recipe) (*notifier, *fakeOnce, *fakeTaker) {
	t.Helper()
	cfg := config.Defaults()
	cfg.Chat.StateFile = filepath.Join(t.TempDir(), "chat.json")
	cfg.Chat.OpsChannel = "ops"
	cfg.Notifications.Recipes = recipes
	ob, q := &fakeOnce{}, &fakeTaker{}
	n, err := newNotifier(cfg, ob, q, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, ob, q
}

// Maintenance reports go through the recipes: a failed dump reaches a
// second channel, a good one does not, and the report is still published.
func TestMaintenanceReportsGoThroughRecipes(t *testing.T) {
	n, ob, _ := testNotifier(t, []notifications.Recipe{{Name: "backup-failures", Source: notifications.SourceMaintenance,
		Statuses: []string{"failed"}, Actions: []notifications.Action{{Post: &notifications.PostAction{Channel: "dev", Template: "{{.Type}}: {{.Title}}"}}}}})
	published := errors.New("posted to ops")
	pub := notifyReports{next: noReports{err: published}, n: n}
	started := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	bad := maintenance.Report{Job: "dump", Title: "the nightly dump", Started: started, Err: errors.New("nothing could be listed")}
	good := maintenance.Report{Job: "prune", Title: "the prune", Started: started}
	if err := pub.Publish(t.Context(), bad); err != published {
		t.Fatalf("Publish = %v, want the reporter's own result", err)
	}
	_ = pub.Publish(t.Context(), good)
	_ = pub.Publish(t.Context(), bad) // the same run reported twice is one event
	n.drain(t.Context())
	got := ob.got()
	if len(got) != 1 || !strings.HasPrefix(got[0], "~dev: dump: ") {
		t.Fatalf("posts %q, want the failed dump once in ~dev", got)
	}
}

// A recipe's command is handed to the queue as a message whose ID is the
// action's key (so the journal runs it once) from a user whose level is
// the action's, answering in the action's channel or the ops channel.
func TestRecipeCommandsRunAtTheirLevel(t *testing.T) {
	n, _, q := testNotifier(t, []notifications.Recipe{{Name: "green", Source: notifications.SourceMaintenance,
		Actions: []notifications.Action{{Command: &notifications.CommandAction{Line: "update shop", Level: "operator"}}}}})
	ev := notifications.Event{ID: "ev1", Source: notifications.SourceMaintenance, Kind: notifications.SourceMaintenance, Type: "dump"}
	if err := n.Emit(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	n.drain(t.Context())
	if len(q.msgs) != 1 {
		t.Fatalf("%d commands handed over, want 1", len(q.msgs))
	}
	m := q.msgs[0]
	if m.ID != "hook/ev1/green/1" || m.Text != "update shop" || m.Channel.ID != "~ops" {
		t.Errorf("message %+v", m)
	}
	levelOf := recipeLevels(func(chat.User) commands.Level { return commands.Everyone })
	if lvl := levelOf(m.User); lvl != commands.Operator {
		t.Errorf("the recipe's command runs as %v, want operator", lvl)
	}
	if lvl := levelOf(chat.User{ID: "abcdefghijklmnopqrstuvwxyz", Username: "recipe"}); lvl != commands.Everyone {
		t.Errorf("a chat user named recipe gets %v", lvl)
	}
	// Done: a second drain hands nothing over again.
	n.drain(t.Context())
	if len(q.msgs) != 1 {
		t.Errorf("the event was handled twice")
	}
}

// A recipe's command refused by the full queue waits: `hooks` shows it
// waiting (and the run a newer event superseded), then queued or running
// once the queue took it, and done only when it finished.
func TestRecipeCommandWaitsForAFullQueue(t *testing.T) {
	n, ob, q := testNotifier(t, []notifications.Recipe{{Name: "deploy", Source: notifications.SourceMaintenance,
		Actions: []notifications.Action{{Command: &notifications.CommandAction{Line: "update shop", Level: "operator"}}}}})
	clock := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	n.now = func() time.Time { return clock }
	view := hooksView{n: n}
	state := func() commands.HookRecipeInfo {
		t.Helper()
		for _, r := range view.Overview(t.Context()).Recipes {
			if r.Name == "deploy" {
				return r
			}
		}
		t.Fatal("no recipe deploy in hooks")
		return commands.HookRecipeInfo{}
	}
	q.full = true
	ev := notifications.Event{ID: "ev1", Source: notifications.SourceMaintenance, Kind: notifications.SourceMaintenance, Type: "dump", Status: "success"}
	if err := n.Emit(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	n.drain(t.Context())
	r := state()
	if r.LastState != commands.HookQueueFull || r.LastErr != "" || len(r.Waiting) != 1 || r.Waiting[0].Command != "update shop" {
		t.Fatalf("while the queue is full: %+v", r)
	}
	if got := r.Waiting[0].GiveUp.Sub(r.Waiting[0].Since); got != time.Hour {
		t.Errorf("given up after %v, want an hour", got)
	}
	if posts := ob.got(); len(posts) != 0 {
		t.Errorf("posted %q while waiting", posts)
	}

	// A newer event supersedes the waiting run: the same command, the same minion.
	clock = clock.Add(time.Minute)
	ev2 := ev
	ev2.ID, ev2.Title = "ev2", "the second dump"
	if err := n.Emit(t.Context(), ev2); err != nil {
		t.Fatal(err)
	}
	n.drain(t.Context())
	r = state()
	if len(r.Waiting) != 1 || r.Replaced == nil || r.Replaced.By != "the second dump" || r.Replaced.Command != "update shop" {
		t.Fatalf("after a newer event: %+v (superseded %+v)", r, r.Replaced)
	}

	q.full = false
	clock = clock.Add(time.Minute)
	n.engine.Retry(t.Context())
	if len(q.msgs) != 1 || q.msgs[0].ID != "hook/ev2/deploy/1" {
		t.Fatalf("handed over %+v", q.msgs)
	}
	if r := state(); r.LastState != commands.HookHandedOver || len(r.Waiting) != 0 {
		t.Fatalf("once queued: %+v", r)
	}
	q.finished[0]()
	if r := state(); r.LastState != commands.HookDone || r.LastErr != "" {
		t.Fatalf("once finished: %+v", r)
	}
}
