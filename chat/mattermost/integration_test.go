package mattermost_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/mattermost"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

const wait = 30 * time.Second

// bot is an adapter and a router running in this process against the real
// server, with test-only commands.
type bot struct {
	a       *mattermost.Adapter
	rt      *commands.Router
	skew    atomic.Int64 // added to the router's clock, to expire codes
	wiped   atomic.Int32
	holding atomic.Bool
	release chan struct{}
	stop    func()
	onReply func(m chat.Message, sending time.Time)
}

func startBot(t testing.TB, e *mmtest.Env, state string, opts ...func(*mattermost.Options)) *bot {
	t.Helper()
	b := &bot{release: make(chan struct{})}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o := mattermost.Options{
		URL: e.URL, Token: e.BotToken, Team: e.Team, StateFile: state, Logger: logger,
		Backoff: mattermost.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second},
		OnReply: func(m chat.Message, at time.Time) {
			if b.onReply != nil {
				b.onReply(m, at)
			}
		},
	}
	for _, f := range opts {
		f(&o)
	}
	a, err := mattermost.New(o)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := commands.NewRegistry(
		commands.Definition{Name: "deploy", Summary: "test-only operator command", Level: commands.Operator, Mutating: true,
			Run: func(context.Context, *commands.Request) (string, error) { return "deployed", nil }},
		commands.Definition{Name: "wipe", Summary: "test-only destructive command", Level: commands.Operator, Mutating: true,
			Confirm: func(context.Context, *commands.Request) (string, error) { return "This wipes the test data.", nil },
			Run: func(context.Context, *commands.Request) (string, error) {
				b.wiped.Add(1)
				return "wiped", nil
			}},
		commands.Definition{Name: "long", Summary: "a reply longer than one post",
			Run: func(context.Context, *commands.Request) (string, error) {
				return strings.Repeat("0123456789 abcdefghij klmnopqrstuvwxyz\n", 1000), nil // 39,000 runes
			}},
		commands.Definition{Name: "huge", Summary: "a reply too long for posts",
			Run: func(context.Context, *commands.Request) (string, error) {
				return strings.Repeat("line of output from a very chatty command\n", 5000), nil // 210,000 runes
			}},
		commands.Definition{Name: "hold", Summary: "waits until the test releases it",
			Run: func(ctx context.Context, r *commands.Request) (string, error) {
				b.holding.Store(true)
				select {
				case <-b.release:
				case <-ctx.Done():
				}
				return "released", nil
			}},
		commands.Definition{Name: "work", Summary: "shows progress",
			Run: func(ctx context.Context, r *commands.Request) (string, error) {
				r.Progress(ctx, "step 1 of 2")
				return "work finished", nil
			}},
	)
	if err != nil {
		t.Fatal(err)
	}
	b.rt, err = commands.NewRouter(commands.Options{
		Registry: reg, Poster: a, Logger: logger,
		Now: func() time.Time { return time.Now().Add(time.Duration(b.skew.Load())) },
		LevelOf: func(u chat.User) commands.Level {
			if u.Username == e.Operator.Username {
				return commands.Operator
			}
			return commands.Everyone
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, b.rt) }()
	b.a = a
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("adapter stopped with %v", err)
			}
		})
	}
	t.Cleanup(b.stop)
	waitFor(t, "the bot to connect", a.Connected)
	return b
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestAnswersInThreadAndDirectMessages(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member := e.Client(t, e.Member)

	t.Run("help in a channel, in its thread", func(t *testing.T) {
		p := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" help")
		r := mmtest.WaitReply(t, member, p, wait)
		if r.RootId != p.Id || r.ChannelId != ch.Id {
			t.Fatalf("reply root %q channel %q, want thread %q in %q", r.RootId, r.ChannelId, p.Id, ch.Id)
		}
		for _, w := range []string{"Commands", "`help [command]`", "`whoami`", "`deploy`: test-only operator command (operator)"} {
			if !strings.Contains(r.Message, w) {
				t.Errorf("help lacks %q:\n%s", w, r.Message)
			}
		}
	})
	t.Run("typo", func(t *testing.T) {
		p := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" hlep")
		if r := mmtest.WaitReply(t, member, p, wait); !strings.Contains(r.Message, "Did you mean `help`?") {
			t.Fatalf("reply %q", r.Message)
		}
	})
	t.Run("a reply inside a thread stays in that thread", func(t *testing.T) {
		root := mmtest.Post(t, member, ch.Id, "", "a discussion")
		p := mmtest.Post(t, member, ch.Id, root.Id, "@"+e.BotUsername+" ping")
		if r := mmtest.WaitReply(t, member, p, wait); r.RootId != root.Id || r.Message != "pong" {
			t.Fatalf("reply %q in thread %q, want pong in %q", r.Message, r.RootId, root.Id)
		}
	})
	t.Run("direct message without mention", func(t *testing.T) {
		dm, _, err := member.CreateDirectChannel(e.UserID(t, member, e.Member.Username), e.UserID(t, member, e.BotUsername))
		if err != nil {
			t.Fatal(err)
		}
		p := mmtest.Post(t, member, dm.Id, "", "whoami")
		if r := mmtest.WaitReply(t, member, p, wait); !strings.Contains(r.Message, "You are @"+e.Member.Username) {
			t.Fatalf("reply %q", r.Message)
		}
	})
	t.Run("other bots and plain talk are ignored", func(t *testing.T) {
		other := e.BotClient(e.OtherBotToken)
		fromBot := mmtest.Post(t, other, ch.Id, "", "@"+e.BotUsername+" ping")
		talk := mmtest.Post(t, member, ch.Id, "", "ping, anyone?")
		// The bot reads posts in order: once it answers the next one, it
		// has already decided about these two.
		sync := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" ping")
		mmtest.WaitReply(t, member, sync, wait)
		if rs := mmtest.Replies(t, member, fromBot); len(rs) != 0 {
			t.Fatalf("answered another bot: %q", rs[0].Message)
		}
		if rs := mmtest.Replies(t, member, talk); len(rs) != 0 {
			t.Fatalf("answered a post not addressed to it: %q", rs[0].Message)
		}
	})
}

func TestPermissionsAndConfirmation(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member, operator := e.Client(t, e.Member), e.Client(t, e.Operator)
	say := func(c *model.Client4, text string) string {
		t.Helper()
		p := mmtest.Post(t, c, ch.Id, "", "@"+e.BotUsername+" "+text)
		return mmtest.WaitReply(t, c, p, wait).Message
	}
	code := func(reply string) string {
		t.Helper()
		i := strings.Index(reply, "`confirm ")
		if i < 0 {
			t.Fatalf("no code in %q", reply)
		}
		c := reply[i+len("`confirm "):]
		return c[:strings.Index(c, "`")]
	}

	if r := say(member, "deploy"); !strings.Contains(r, "`deploy` needs operator rights, and you have everyone rights") {
		t.Fatalf("member deploy: %q", r)
	}
	if r := say(operator, "deploy"); r != "deployed" {
		t.Fatalf("operator deploy: %q", r)
	}

	c := code(say(operator, "wipe"))
	if r := say(member, "confirm "+c); !strings.Contains(r, "belongs to @"+e.Operator.Username) {
		t.Fatalf("member used the operator's code: %q", r)
	}
	if r := say(operator, "confirm "+c); r != "wiped" {
		t.Fatalf("operator confirm: %q", r)
	}
	if r := say(operator, "confirm "+c); !strings.Contains(r, "No command is waiting") {
		t.Fatalf("second confirm: %q", r)
	}
	if n := b.wiped.Load(); n != 1 {
		t.Fatalf("wipe ran %d times, want 1", n)
	}

	c = code(say(operator, "wipe"))
	b.skew.Store(int64(5*time.Minute + time.Second))
	if r := say(operator, "confirm "+c); !strings.Contains(r, "expired") {
		t.Fatalf("late confirm: %q", r)
	}
	if n := b.wiped.Load(); n != 1 {
		t.Fatalf("wipe ran %d times after an expired code, want 1", n)
	}
}

func TestLongRepliesAndProgress(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member := e.Client(t, e.Member)

	t.Run("split over posts", func(t *testing.T) {
		p := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" long")
		mmtest.WaitReply(t, member, p, wait)
		var rs []*model.Post
		waitFor(t, "three parts", func() bool { rs = mmtest.Replies(t, member, p); return len(rs) == 3 })
		var all strings.Builder
		for _, r := range rs {
			all.WriteString(r.Message + "\n")
		}
		if got := strings.Count(all.String(), "0123456789 abcdefghij klmnopqrstuvwxyz\n"); got != 1000 {
			t.Fatalf("%d of 1000 lines arrived", got)
		}
	})
	t.Run("attached as a file", func(t *testing.T) {
		p := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" huge")
		r := mmtest.WaitReply(t, member, p, wait)
		if !strings.Contains(r.Message, "attached as reply.txt") || len(r.FileIds) != 1 {
			t.Fatalf("reply %q with %d files", r.Message, len(r.FileIds))
		}
		data, _, err := member.GetFile(r.FileIds[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 5000*len("line of output from a very chatty command\n") {
			t.Fatalf("attachment has %d bytes", len(data))
		}
	})
	t.Run("progress edited in place", func(t *testing.T) {
		p := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" work")
		r := mmtest.WaitReply(t, member, p, wait)
		final := mmtest.WaitEdited(t, member, r.Id, wait, func(s string) bool { return s == "work finished" })
		if final.EditAt == 0 {
			t.Fatal("the progress post was not edited")
		}
		if rs := mmtest.Replies(t, member, p); len(rs) != 1 {
			t.Fatalf("%d replies, want one message edited in place", len(rs))
		}
	})
}

func TestReconnectsAfterServerRestart(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	before := b.a.Sessions()
	e.Restart(t)
	// The restart closes the websocket; wait until the bot noticed and is
	// back, without the test telling it anything.
	waitFor(t, "the bot to reconnect", func() bool { return b.a.Sessions() > before && b.a.Connected() })
	member := e.Client(t, e.Member)
	p := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" ping")
	if r := mmtest.WaitReply(t, member, p, wait); r.Message != "pong" {
		t.Fatalf("reply %q", r.Message)
	}
	if rs := mmtest.Replies(t, member, p); len(rs) != 1 {
		t.Fatalf("%d replies after reconnecting, want 1", len(rs))
	}
}

func TestMissedCommandsAnsweredOnceAfterRestart(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	state := filepath.Join(t.TempDir(), "state.json")
	member := e.Client(t, e.Member)

	b := startBot(t, e, state)
	first := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" ping")
	mmtest.WaitReply(t, member, first, wait)
	b.stop()
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after stopping: %v", err)
	}

	missed := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" whoami")
	for range 2 { // two restarts: the second must not answer again
		b = startBot(t, e, state)
		r := mmtest.WaitReply(t, member, missed, wait)
		if !strings.Contains(r.Message, "You are @"+e.Member.Username) {
			t.Fatalf("reply %q", r.Message)
		}
		sync := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" ping")
		mmtest.WaitReply(t, member, sync, wait)
		b.stop()
	}
	if rs := mmtest.Replies(t, member, missed); len(rs) != 1 {
		t.Fatalf("the missed command got %d replies, want exactly 1", len(rs))
	}
	if rs := mmtest.Replies(t, member, first); len(rs) != 1 {
		t.Fatalf("the first command got %d replies, want exactly 1", len(rs))
	}
}

func TestTooOldMissedCommandIsNotRun(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	state := filepath.Join(t.TempDir(), "state.json")
	member := e.Client(t, e.Member)
	b := startBot(t, e, state)
	b.stop()
	old := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" ping")
	time.Sleep(1500 * time.Millisecond) // older than the 1 s limit below
	startBot(t, e, state, func(o *mattermost.Options) { o.MaxAge = time.Second })
	r := mmtest.WaitReply(t, member, old, wait)
	if !strings.Contains(r.Message, "I was offline") || strings.Contains(r.Message, "pong") {
		t.Fatalf("reply %q, want the offline note instead of running it", r.Message)
	}
}

func TestPostToChannelByName(t *testing.T) {
	e := mmtest.FromEnv(t)
	b := startBot(t, e, "")
	ref, err := b.a.PostToChannel(context.Background(), e.OpsChannel, "report: all good")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := e.Client(t, e.Member).GetPost(ref.ID, "")
	if err != nil || p.Message != "report: all good" {
		t.Fatalf("post %v, %v", p, err)
	}
	if _, err := b.a.PostToChannel(context.Background(), "no-such-channel", "x"); err == nil || !strings.Contains(err.Error(), "not found, or the bot is not a member") {
		t.Fatalf("posting to a missing channel: %v", err)
	}
}

func TestWrongTokenIsUnauthorized(t *testing.T) {
	e := mmtest.FromEnv(t)
	a, err := mattermost.New(mattermost.Options{URL: e.URL, Token: "wrongwrongwrongwrongwrong1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Login(context.Background()); !errors.Is(err, mattermost.ErrUnauthorized) {
		t.Fatalf("Login = %v, want ErrUnauthorized", err)
	}
}

func TestReplyOutlivesServerRestart(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member := e.Client(t, e.Member)
	p := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" hold")
	waitFor(t, "the command to start", b.holding.Load)
	// Stop the server while the command runs, and finish the command
	// while it is down: the reply must still arrive, once.
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Restart(t)
	}()
	time.Sleep(100 * time.Millisecond)
	close(b.release)
	<-done
	member = e.Client(t, e.Member)
	if r := mmtest.WaitReply(t, member, p, wait); r.Message != "released" {
		t.Fatalf("reply %q", r.Message)
	}
	time.Sleep(time.Second) // room for a duplicate to show up, if there were one
	if rs := mmtest.Replies(t, member, p); len(rs) != 1 {
		t.Fatalf("%d replies, want 1", len(rs))
	}
}
