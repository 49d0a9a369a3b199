package mattermost_test

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/summoner-bot/summoner/chat/outbox"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

const wait = 30 * time.Second

// bot is an adapter and a router running in this process against the real
// server, with test-only commands.
type bot struct {
	a       *mattermost.Adapter
	rt      *commands.Router
	async   *asyncHandler
	skew    atomic.Int64 // added to the router's clock, to expire codes
	wiped   atomic.Int32
	holding atomic.Bool
	release chan struct{}
	stop    func()
	onReply func(m chat.Message, sending time.Time)
	// onHandle, if set, sees each message as it is handed over.
	onHandle func(m chat.Message)
	queue    *commands.Queue // with botSetup.queue
}

// botSetup is what a test may change before startBot starts the bot.
type botSetup struct {
	mm        mattermost.Options
	levelOf   func(chat.User) commands.Level // default: the operator account is operator
	onConnect func(ctx context.Context, a *mattermost.Adapter)
	// queue, when set, runs commands as the daemon does: through a
	// commands.Queue, with every reply going through a persistent outbox.
	queue *commands.QueueOptions
}

// asyncHandler stands in for commands.Queue: Handle starts the command and
// returns at once, as the adapter requires; stop waits for the commands.
// It counts how often each message was handed over.
type asyncHandler struct {
	h        chat.Handler
	queued   bool // h is a commands.Queue
	onHandle func(chat.Message)
	ctx      context.Context
	wg       sync.WaitGroup

	mu      sync.Mutex
	handled map[string]int
}

func (q *asyncHandler) Handle(ctx context.Context, m chat.Message) {
	q.mu.Lock()
	q.handled[m.ID]++
	q.mu.Unlock()
	if q.onHandle != nil {
		q.onHandle(m)
	}
	if q.queued {
		q.h.Handle(ctx, m) // the queue returns at once
		return
	}
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.h.Handle(q.ctx, m)
	}()
}

// handed tells how often the post was handed to this bot's handler.
func (b *bot) handed(postID string) int {
	b.async.mu.Lock()
	defer b.async.mu.Unlock()
	return b.async.handled[postID]
}

func startBot(t testing.TB, e *mmtest.Env, state string, opts ...func(*botSetup)) *bot {
	t.Helper()
	b := &bot{release: make(chan struct{})}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s := botSetup{
		mm: mattermost.Options{
			URL: e.URL, Token: e.BotToken, Team: e.Team, StateFile: state, Logger: logger,
			Backoff: mattermost.Backoff{Min: 200 * time.Millisecond, Max: 2 * time.Second},
			OnReply: func(m chat.Message, at time.Time) {
				if b.onReply != nil {
					b.onReply(m, at)
				}
			},
		},
		levelOf: func(u chat.User) commands.Level {
			if u.Username == e.Operator.Username {
				return commands.Operator
			}
			return commands.Everyone
		},
	}
	for _, f := range opts {
		f(&s)
	}
	if s.onConnect != nil {
		s.mm.OnConnect = func(ctx context.Context) { s.onConnect(ctx, b.a) }
	}
	a, err := mattermost.New(s.mm)
	if err != nil {
		t.Fatal(err)
	}
	b.a = a
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
	var poster chat.Poster = a
	var ob *outbox.Outbox
	if s.queue != nil {
		ob, err = outbox.Open(outbox.Options{
			Path: filepath.Join(t.TempDir(), "outbox.db"), Sender: a.OutboxSender(), Permanent: mattermost.Permanent,
			Logger: logger, MinBackoff: 50 * time.Millisecond, MaxBackoff: time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		ob.Start()
		poster = ob
	}
	b.rt, err = commands.NewRouter(commands.Options{
		Registry: reg, Poster: poster, Logger: logger,
		Now:     func() time.Time { return time.Now().Add(time.Duration(b.skew.Load())) },
		LevelOf: s.levelOf,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmdCtx, stopCommands := context.WithCancel(context.Background())
	b.async = &asyncHandler{h: b.rt, ctx: cmdCtx, handled: map[string]int{}, onHandle: func(m chat.Message) {
		if b.onHandle != nil {
			b.onHandle(m)
		}
	}}
	ctx, cancel := context.WithCancel(context.Background())
	queueDone := make(chan struct{})
	if s.queue != nil {
		qo := *s.queue
		qo.Journal, qo.Logger = ob, logger
		b.queue = commands.NewQueue(b.rt, qo)
		b.async.h, b.async.queued = b.queue, true
		go func() { _ = b.queue.Run(ctx); close(queueDone) }()
	} else {
		close(queueDone)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, b.async) }()
	var once sync.Once
	b.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("adapter stopped with %v", err)
			}
			// Let commands finish their replies, as the queue would.
			finished := make(chan struct{})
			go func() { b.async.wg.Wait(); close(finished) }()
			select {
			case <-finished:
			case <-time.After(wait):
				t.Errorf("commands still running %v after the bot stopped; cancelling them", wait)
			}
			stopCommands()
			<-finished
			<-queueDone
			if ob != nil {
				if err := ob.Close(wait); err != nil {
					t.Errorf("closing the outbox: %v", err)
				}
			}
		})
	}
	t.Cleanup(b.stop)
	waitFor(t, "the bot to connect", a.Connected)
	return b
}

// say posts text addressed to the bot as c and returns the post.
func say(t testing.TB, e *mmtest.Env, c *model.Client4, channelID, text string) *model.Post {
	t.Helper()
	return mmtest.Post(t, c, channelID, "", "@"+e.BotUsername+" "+text)
}

// settle proves the bot has dealt with everything posted in the channel so
// far: it hands posts over in order, so once a later command is answered,
// the earlier ones were handed over (or ignored) already.
func settle(t testing.TB, e *mmtest.Env, c *model.Client4, channelID string) {
	t.Helper()
	mmtest.WaitReply(t, c, say(t, e, c, channelID, "ping"), wait)
}

// answeredOnce checks the post was handed over once to b and has exactly
// want replies (more than one when a long answer is split).
func answeredOnce(t testing.TB, b *bot, c *model.Client4, p *model.Post, want int) {
	t.Helper()
	if n := b.handed(p.Id); n != 1 {
		t.Errorf("%q was handed to the handler %d times, want once", p.Message, n)
	}
	if rs := mmtest.Replies(t, c, p); len(rs) != want {
		t.Errorf("%q got %d replies, want %d", p.Message, len(rs), want)
	}
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestAnswersInThreadAndDirectMessages(t *testing.T) {
	e := mmtest.FromEnv(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member := e.Client(t, e.Member)

	// Each case has its own channel, so none depends on what another left.
	t.Run("help in a channel, in its thread", func(t *testing.T) {
		ch := e.NewChannel(t)
		p := say(t, e, member, ch.Id, "help")
		r := mmtest.WaitReply(t, member, p, wait)
		if r.RootId != p.Id || r.ChannelId != ch.Id {
			t.Fatalf("reply root %q channel %q, want thread %q in %q", r.RootId, r.ChannelId, p.Id, ch.Id)
		}
		for _, w := range []string{"Commands", "`help [command]`", "`whoami`", "`deploy`: test-only operator command (operator)"} {
			if !strings.Contains(r.Message, w) {
				t.Errorf("help lacks %q:\n%s", w, r.Message)
			}
		}
		settle(t, e, member, ch.Id)
		answeredOnce(t, b, member, p, 1)
	})
	t.Run("typo", func(t *testing.T) {
		ch := e.NewChannel(t)
		p := say(t, e, member, ch.Id, "hlep")
		if r := mmtest.WaitReply(t, member, p, wait); !strings.Contains(r.Message, "Did you mean `help`?") {
			t.Fatalf("reply %q", r.Message)
		}
		settle(t, e, member, ch.Id)
		answeredOnce(t, b, member, p, 1)
	})
	t.Run("a reply inside a thread stays in that thread", func(t *testing.T) {
		ch := e.NewChannel(t)
		root := mmtest.Post(t, member, ch.Id, "", "a discussion")
		p := mmtest.Post(t, member, ch.Id, root.Id, "@"+e.BotUsername+" ping")
		if r := mmtest.WaitReply(t, member, p, wait); r.RootId != root.Id || r.Message != "pong" {
			t.Fatalf("reply %q in thread %q, want pong in %q", r.Message, r.RootId, root.Id)
		}
		settle(t, e, member, ch.Id)
		answeredOnce(t, b, member, p, 1)
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
		settle(t, e, member, dm.Id)
		answeredOnce(t, b, member, p, 1)
	})
	t.Run("other bots and plain talk are ignored", func(t *testing.T) {
		ch := e.NewChannel(t)
		other := e.BotClient(e.OtherBotToken)
		fromBot := say(t, e, other, ch.Id, "ping")
		talk := mmtest.Post(t, member, ch.Id, "", "ping, anyone?")
		settle(t, e, member, ch.Id)
		for _, p := range []*model.Post{fromBot, talk} {
			if rs := mmtest.Replies(t, member, p); len(rs) != 0 || b.handed(p.Id) != 0 {
				t.Errorf("%q was handed over %d times and got %d replies, want none", p.Message, b.handed(p.Id), len(rs))
			}
		}
	})
	t.Run("only a mention at the start addresses the bot", func(t *testing.T) {
		ch := e.NewChannel(t)
		aside := mmtest.Post(t, member, ch.Id, "", "please don't @"+e.BotUsername+" ping")
		forms := []string{"@%s ping", "@%s: ping", "@%s, ping", "  @%s   ping"}
		var asked []*model.Post
		for _, f := range forms {
			asked = append(asked, mmtest.Post(t, member, ch.Id, "", fmt.Sprintf(f, e.BotUsername)))
		}
		for _, p := range asked {
			if r := mmtest.WaitReply(t, member, p, wait); r.Message != "pong" {
				t.Errorf("%q: reply %q, want pong", p.Message, r.Message)
			}
		}
		// The bot answered later posts, so it has judged the aside already.
		if rs := mmtest.Replies(t, member, aside); len(rs) != 0 || b.handed(aside.Id) != 0 {
			t.Fatalf("a mention inside a sentence was taken as a command: handed over %d times, replies %d", b.handed(aside.Id), len(rs))
		}
		for _, p := range asked {
			answeredOnce(t, b, member, p, 1)
		}
	})
}

func TestPermissionsAndConfirmation(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member, operator := e.Client(t, e.Member), e.Client(t, e.Operator)
	ask := func(c *model.Client4, text string) string {
		t.Helper()
		p := say(t, e, c, ch.Id, text)
		r := mmtest.WaitReply(t, c, p, wait).Message
		answeredOnce(t, b, c, p, 1)
		return r
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

	if r := ask(member, "deploy"); !strings.Contains(r, "`deploy` needs operator rights, and you have everyone rights") {
		t.Fatalf("member deploy: %q", r)
	}
	if r := ask(operator, "deploy"); r != "deployed" {
		t.Fatalf("operator deploy: %q", r)
	}

	c := code(ask(operator, "wipe"))
	if r := ask(member, "confirm "+c); !strings.Contains(r, "belongs to @"+e.Operator.Username) {
		t.Fatalf("member used the operator's code: %q", r)
	}
	if r := ask(operator, "confirm "+c); r != "wiped" {
		t.Fatalf("operator confirm: %q", r)
	}
	if r := ask(operator, "confirm "+c); !strings.Contains(r, "No command is waiting") {
		t.Fatalf("second confirm: %q", r)
	}
	if n := b.wiped.Load(); n != 1 {
		t.Fatalf("wipe ran %d times, want 1", n)
	}

	c = code(ask(operator, "wipe"))
	b.skew.Store(int64(5*time.Minute + time.Second))
	if r := ask(operator, "confirm "+c); !strings.Contains(r, "expired") {
		t.Fatalf("late confirm: %q", r)
	}
	if n := b.wiped.Load(); n != 1 {
		t.Fatalf("wipe ran %d times after an expired code, want 1", n)
	}
}

func TestLongRepliesAndProgress(t *testing.T) {
	e := mmtest.FromEnv(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member := e.Client(t, e.Member)

	t.Run("split over posts", func(t *testing.T) {
		ch := e.NewChannel(t)
		p := say(t, e, member, ch.Id, "long")
		mmtest.WaitReply(t, member, p, wait)
		var rs []*model.Post
		waitFor(t, "three parts", func() bool { rs = mmtest.Replies(t, member, p); return len(rs) >= 3 })
		var all strings.Builder
		for _, r := range rs {
			all.WriteString(r.Message + "\n")
		}
		if got := strings.Count(all.String(), "0123456789 abcdefghij klmnopqrstuvwxyz\n"); got != 1000 {
			t.Fatalf("%d of 1000 lines arrived", got)
		}
		settle(t, e, member, ch.Id)
		answeredOnce(t, b, member, p, 3)
	})
	t.Run("attached as a file", func(t *testing.T) {
		ch := e.NewChannel(t)
		p := say(t, e, member, ch.Id, "huge")
		r := mmtest.WaitReply(t, member, p, wait)
		if !strings.Contains(r.Message, "attached as reply.txt") || len(r.FileIds) != 1 {
			t.Fatalf("reply %q with %d files", r.Message, len(r.FileIds))
		}
		// The server saves the post, then attaches the file to it: until
		// then the file is the bot's alone.
		var data []byte
		waitFor(t, "the attachment to be readable", func() bool {
			var err error
			data, _, err = member.GetFile(r.FileIds[0])
			return err == nil
		})
		if len(data) != 5000*len("line of output from a very chatty command\n") {
			t.Fatalf("attachment has %d bytes", len(data))
		}
		settle(t, e, member, ch.Id)
		answeredOnce(t, b, member, p, 1)
	})
	t.Run("progress edited in place", func(t *testing.T) {
		ch := e.NewChannel(t)
		p := say(t, e, member, ch.Id, "work")
		r := mmtest.WaitReply(t, member, p, wait)
		final := mmtest.WaitEdited(t, member, r.Id, wait, func(s string) bool { return s == "work finished" })
		if final.EditAt == 0 {
			t.Fatal("the progress post was not edited")
		}
		settle(t, e, member, ch.Id)
		answeredOnce(t, b, member, p, 1) // one message, edited in place
	})
}

func TestReconnectsAfterServerRestart(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	var connects atomic.Int32
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"), func(s *botSetup) {
		s.onConnect = func(context.Context, *mattermost.Adapter) { connects.Add(1) }
	})
	if la := b.a.LastActivity(); time.Since(la) > wait {
		t.Fatalf("last activity %v while connected", la)
	}
	before := b.a.Sessions()
	restarted := time.Now()
	e.Restart(t)
	// The restart closes the websocket; wait until the bot noticed and is
	// back, without the test telling it anything.
	waitFor(t, "the bot to reconnect", func() bool { return b.a.Sessions() > before && b.a.Connected() })
	member := e.Client(t, e.Member)
	p := say(t, e, member, ch.Id, "ping")
	if r := mmtest.WaitReply(t, member, p, wait); r.Message != "pong" {
		t.Fatalf("reply %q", r.Message)
	}
	answeredOnce(t, b, member, p, 1)
	if n, s := connects.Load(), b.a.Sessions(); int64(n) != s || n < 2 {
		t.Errorf("OnConnect ran %d times for %d sessions, want once per session", n, s)
	}
	if la := b.a.LastActivity(); !la.After(restarted) {
		t.Errorf("last activity %v, not since the server came back (restart began %v)", la, restarted)
	}
}

// away makes a channel the bot has seen, then stops the bot: what is
// posted next is missed. It returns the channel, the bot's state file, the
// member's client and the member's command the bot answered before it went.
func away(t *testing.T, e *mmtest.Env) (*model.Channel, string, *model.Client4, *model.Post) {
	t.Helper()
	ch := e.NewChannel(t)
	state := filepath.Join(t.TempDir(), "state.json")
	member := e.Client(t, e.Member)
	b := startBot(t, e, state)
	before := say(t, e, member, ch.Id, "ping")
	mmtest.WaitReply(t, member, before, wait) // the bot has read the channel
	b.stop()
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("no state file after stopping: %v", err)
	}
	return ch, state, member, before
}

// answeredOnceOverRestarts starts the bot twice from state: the first start
// answers the missed whoami cmd, the second hands nothing over again, and
// cmd and each of answered have exactly one reply at the end.
func answeredOnceOverRestarts(t *testing.T, e *mmtest.Env, ch *model.Channel, state string, member *model.Client4, cmd *model.Post, answered ...*model.Post) {
	t.Helper()
	for run := range 2 {
		b := startBot(t, e, state)
		r := mmtest.WaitReply(t, member, cmd, wait)
		if !strings.Contains(r.Message, "You are @"+e.Member.Username) {
			t.Fatalf("reply %q", r.Message)
		}
		settle(t, e, member, ch.Id)
		b.stop()
		if n, want := b.handed(cmd.Id), 1-run; n != want {
			t.Fatalf("start %d handed the missed command over %d times, want %d", run+1, n, want)
		}
		for _, p := range answered {
			if n := b.handed(p.Id); n != 0 {
				t.Fatalf("start %d handed %q, answered before, over again", run+1, p.Message)
			}
		}
	}
	for _, p := range append(answered, cmd) {
		if rs := mmtest.Replies(t, member, p); len(rs) != 1 {
			t.Fatalf("%q got %d replies, want exactly 1", p.Message, len(rs))
		}
	}
}

func TestMissedCommandsAnsweredOnceAfterRestart(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch, state, member, before := away(t, e)
	missed := say(t, e, member, ch.Id, "whoami")
	answeredOnceOverRestarts(t, e, ch, state, member, missed, before)
}

func TestTooOldMissedCommandIsNotRun(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch, state, member, _ := away(t, e)
	old := say(t, e, member, ch.Id, "ping")
	// Any missed command is older than a millisecond when the bot is back:
	// no need to wait for one to age.
	b := startBot(t, e, state, func(s *botSetup) { s.mm.MaxAge = time.Millisecond })
	r := mmtest.WaitReply(t, member, old, wait)
	if !strings.Contains(r.Message, "I was offline") || strings.Contains(r.Message, "pong") {
		t.Fatalf("reply %q, want the offline note instead of running it", r.Message)
	}
	mmtest.WaitReply(t, member, say(t, e, member, ch.Id, "ping"), wait) // a note or a pong: either proves it got this far
	if n := b.handed(old.Id); n != 0 {
		t.Fatalf("the too-old command was handed over %d times", n)
	}
	if rs := mmtest.Replies(t, member, old); len(rs) != 1 {
		t.Fatalf("%d replies to the too-old command, want the one note", len(rs))
	}
}

func TestPostToChannelByName(t *testing.T) {
	e := mmtest.FromEnv(t)
	b := startBot(t, e, "")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ref, err := b.a.PostToChannel(ctx, e.OpsChannel, "report: all good")
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := e.Client(t, e.Member).GetPost(ref.ID, "")
	if err != nil || p.Message != "report: all good" {
		t.Fatalf("post %v, %v", p, err)
	}
	if _, err := b.a.PostToChannel(ctx, "no-such-channel", "x"); err == nil || !strings.Contains(err.Error(), "not found, or the bot is not a member") {
		t.Fatalf("posting to a missing channel: %v", err)
	}
}

func TestWrongTokenIsUnauthorized(t *testing.T) {
	e := mmtest.FromEnv(t)
	const token = "wrongwrongwrongwrongwrong1"
	a, err := mattermost.New(mattermost.Options{URL: e.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err = a.Login(ctx)
	if !errors.Is(err, mattermost.ErrUnauthorized) {
		t.Fatalf("Login = %v, want ErrUnauthorized", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("the error shows the token: %v", err)
	}
}

func TestReplyOutlivesServerRestart(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"))
	member := e.Client(t, e.Member)
	p := say(t, e, member, ch.Id, "hold")
	waitFor(t, "the command to start", b.holding.Load)
	// Stop the server while the command runs, and finish the command
	// while it is down: the reply must still arrive, once.
	restarted := e.StartRestart(t)
	e.WaitDown(t, time.Minute)
	close(b.release)
	restarted()
	member = e.Client(t, e.Member)
	if r := mmtest.WaitReply(t, member, p, wait); r.Message != "released" {
		t.Fatalf("reply %q", r.Message)
	}
	waitFor(t, "the bot to reconnect", b.a.Connected)
	settle(t, e, member, ch.Id)
	answeredOnce(t, b, member, p, 1)
}
