package commands

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
)

func nop(context.Context, *Request) (string, error) { return "", nil }

var (
	alice = chat.User{ID: "u1", Username: "alice"} // admin
	olga  = chat.User{ID: "u2", Username: "olga"}  // operator
	mel   = chat.User{ID: "u3", Username: "mel"}   // everyone
	ops   = chat.Channel{ID: "c1", Name: "ops"}
	town  = chat.Channel{ID: "c2", Name: "town-square"}
)

type fixture struct {
	rt   *Router
	rec  *chattest.Recorder
	now  time.Time
	logs *bytes.Buffer
	ran  []string
}

func newFixture(t *testing.T, mutating ...string) *fixture {
	t.Helper()
	f := &fixture{rec: &chattest.Recorder{}, now: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), logs: &bytes.Buffer{}}
	reg, err := NewRegistry(
		Definition{Name: "restart", Args: "<minion>", Summary: "restart a minion", Level: Operator, Mutating: true,
			Run: func(_ context.Context, r *Request) (string, error) {
				f.ran = append(f.ran, "restart "+strings.Join(r.Args, " "))
				return "restarted " + strings.Join(r.Args, " "), nil
			}},
		Definition{Name: "purge", Args: "<minion>", Summary: "delete a minion's data", Level: Operator, Mutating: true,
			Confirm: func(_ context.Context, r *Request) (string, error) {
				if len(r.Args) != 1 {
					return "", Errorf("Usage: `purge <minion>`")
				}
				return "This deletes every file of " + r.Args[0] + ".", nil
			},
			Run: func(_ context.Context, r *Request) (string, error) {
				f.ran = append(f.ran, "purge "+r.Args[0])
				return "purged " + r.Args[0], nil
			}},
		Definition{Name: "boom", Summary: "fails inside", Run: func(context.Context, *Request) (string, error) {
			return "", errors.New("dial unix /var/run/docker.sock: secret detail")
		}},
		Definition{Name: "panic", Summary: "panics", Run: func(context.Context, *Request) (string, error) { panic("oops") }},
		Definition{Name: "slow", Summary: "shows progress", Run: func(ctx context.Context, r *Request) (string, error) {
			r.Progress(ctx, "step 1")
			r.Progress(ctx, "step 2 (skipped: too soon)")
			f.now = f.now.Add(2 * time.Second)
			r.Progress(ctx, "step 3")
			return "all done", nil
		}},
	)
	if err != nil {
		t.Fatal(err)
	}
	f.rt, err = NewRouter(Options{
		Registry: reg, Poster: f.rec, MutatingChannels: mutating, Version: "v1.2.3",
		Now:    func() time.Time { return f.now },
		Logger: slog.New(slog.NewTextHandler(f.logs, nil)),
		LevelOf: func(u chat.User) Level {
			return map[string]Level{"alice": Admin, "olga": Operator}[u.Username]
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) say(u chat.User, c chat.Channel, text string) (Outcome, string) {
	n := len(f.rec.Posts())
	out := f.rt.Execute(context.Background(), chat.Message{ID: "m-" + text, Text: text, User: u, Channel: c, ThreadID: "t1"})
	ps := f.rec.Posts()
	if len(ps) == n {
		return out, ""
	}
	return out, ps[len(ps)-1].Text
}

func TestRouterReplies(t *testing.T) {
	tests := []struct {
		name string
		user chat.User
		text string
		out  Outcome
		want []string // substrings of the reply
	}{
		{"help lists commands", mel, "help", OK, []string{"`help [command]`", "`restart <minion>`: restart a minion (operator)", "`ping`"}},
		{"help for one", mel, "help purge", OK, []string{"`purge <minion>`", "operators and admins", "asks for confirmation"}},
		{"help typo", mel, "help restrat", Failed, []string{"Did you mean `restart`?"}},
		{"typo", mel, "hlep", Unknown, []string{"I don't know `hlep`. Did you mean `help`?"}},
		{"unknown", mel, "frobnicate", Unknown, []string{"Type `help`"}},
		{"case insensitive", mel, "PING", OK, []string{"pong"}},
		{"empty", mel, "", OK, []string{"Type `help`"}},
		{"unclosed quote", mel, `restart "wekan`, Unknown, []string{"unclosed quote"}},
		{"whoami member", mel, "whoami", OK, []string{"@mel", "everyone"}},
		{"whoami admin", alice, "whoami", OK, []string{"admin"}},
		{"version", mel, "version", OK, []string{"Summoner v1.2.3"}},
		{"refused for member", mel, "restart wekan", Refused, []string{"`restart` needs operator rights", "you have everyone rights", "permissions.operators"}},
		{"operator may", olga, "restart wekan", OK, []string{"restarted wekan"}},
		{"admin may", alice, "restart wekan", OK, []string{"restarted wekan"}},
		{"internal error hides detail", mel, "boom", Internal, []string{"Something went wrong on my side (ref `"}},
		{"panic is internal", mel, "panic", Internal, []string{"Something went wrong"}},
		{"confirm needs code", olga, "confirm", Failed, []string{"Usage: `confirm <code>`"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			out, reply := f.say(tt.user, ops, tt.text)
			if out != tt.out {
				t.Errorf("outcome = %s, want %s (reply %q)", out, tt.out, reply)
			}
			for _, w := range tt.want {
				if !strings.Contains(reply, w) {
					t.Errorf("reply %q does not contain %q", reply, w)
				}
			}
			if strings.Contains(reply, "secret detail") {
				t.Errorf("internal detail leaked into chat: %q", reply)
			}
		})
	}
}

func TestInternalErrorIsLoggedWithRef(t *testing.T) {
	f := newFixture(t)
	_, reply := f.say(mel, ops, "boom")
	ref := reply[strings.Index(reply, "`")+1:]
	ref = ref[:strings.Index(ref, "`")]
	logs := f.logs.String()
	if !strings.Contains(logs, "ref="+ref) || !strings.Contains(logs, "secret detail") {
		t.Fatalf("log lacks the reference %s or the error:\n%s", ref, logs)
	}
}

func TestRepliesGoToTheThread(t *testing.T) {
	f := newFixture(t)
	f.say(mel, ops, "ping")
	p := f.rec.Posts()[0]
	if p.To.ThreadID != "t1" || p.To.ChannelID != ops.ID || p.ReplyTo != "m-ping" {
		t.Fatalf("reply went to %+v (reply to %q), want thread t1 in %s", p.To, p.ReplyTo, ops.ID)
	}
}

func TestMutatingChannels(t *testing.T) {
	f := newFixture(t, "ops", "direct")
	if out, reply := f.say(olga, town, "restart wekan"); out != Refused || !strings.Contains(reply, "only runs in ~ops, direct messages") {
		t.Fatalf("in town-square: %s %q", out, reply)
	}
	if out, _ := f.say(olga, ops, "restart wekan"); out != OK {
		t.Fatalf("in ops: %s", out)
	}
	if out, _ := f.say(olga, chat.Channel{ID: "d1", Direct: true}, "restart wekan"); out != OK {
		t.Fatalf("in a direct message: %s", out)
	}
	if out, _ := f.say(mel, town, "ping"); out != OK {
		t.Fatalf("read-only command in town-square: %s", out)
	}
}

func codeIn(t *testing.T, reply string) string {
	t.Helper()
	i := strings.Index(reply, "`confirm ")
	if i < 0 {
		t.Fatalf("no confirm code in %q", reply)
	}
	code := reply[i+len("`confirm "):]
	return code[:strings.Index(code, "`")]
}

func TestConfirmation(t *testing.T) {
	t.Run("confirmed by its owner runs once", func(t *testing.T) {
		f := newFixture(t)
		out, reply := f.say(olga, ops, "purge wekan")
		if out != Pending || !strings.Contains(reply, "This deletes every file of wekan.") || !strings.Contains(reply, "within 5 minutes") {
			t.Fatalf("purge: %s %q", out, reply)
		}
		if len(f.ran) != 0 {
			t.Fatalf("ran before confirmation: %v", f.ran)
		}
		code := codeIn(t, reply)
		if out, reply := f.say(olga, ops, "confirm "+code); out != OK || reply != "purged wekan" {
			t.Fatalf("confirm: %s %q", out, reply)
		}
		if out, reply := f.say(olga, ops, "confirm "+code); out != Failed || !strings.Contains(reply, "No command is waiting") {
			t.Fatalf("second confirm: %s %q", out, reply)
		}
		if len(f.ran) != 1 {
			t.Fatalf("ran %v, want once", f.ran)
		}
	})
	t.Run("another user cannot use the code", func(t *testing.T) {
		f := newFixture(t)
		_, reply := f.say(olga, ops, "purge wekan")
		code := codeIn(t, reply)
		if out, reply := f.say(alice, ops, "confirm "+code); out != Failed || !strings.Contains(reply, "belongs to @olga") {
			t.Fatalf("alice confirms olga's code: %s %q", out, reply)
		}
		if len(f.ran) != 0 {
			t.Fatalf("ran %v", f.ran)
		}
		if out, _ := f.say(olga, ops, "confirm "+code); out != OK {
			t.Fatalf("the owner's confirm after a stranger tried: %s", out)
		}
	})
	t.Run("expired", func(t *testing.T) {
		f := newFixture(t)
		_, reply := f.say(olga, ops, "purge wekan")
		code := codeIn(t, reply)
		f.now = f.now.Add(5*time.Minute + time.Second)
		if out, reply := f.say(olga, ops, "confirm "+code); out != Failed || !strings.Contains(reply, "expired") {
			t.Fatalf("late confirm: %s %q", out, reply)
		}
		if len(f.ran) != 0 {
			t.Fatalf("ran %v", f.ran)
		}
	})
	t.Run("bad arguments fail before a code is given", func(t *testing.T) {
		f := newFixture(t)
		if out, reply := f.say(olga, ops, "purge"); out != Failed || strings.Contains(reply, "confirm") {
			t.Fatalf("purge without args: %s %q", out, reply)
		}
	})
	t.Run("rights are checked again at confirmation", func(t *testing.T) {
		f := newFixture(t)
		_, reply := f.say(olga, ops, "purge wekan")
		code := codeIn(t, reply)
		f.rt.o.LevelOf = func(chat.User) Level { return Everyone }
		if out, _ := f.say(olga, ops, "confirm "+code); out != Refused {
			t.Fatalf("confirm after demotion: %s", out)
		}
	})
}

func TestProgressIsEditedInPlace(t *testing.T) {
	f := newFixture(t)
	f.say(mel, ops, "slow")
	ps := f.rec.Posts()
	if len(ps) != 1 {
		t.Fatalf("%d posts, want one edited in place: %+v", len(ps), ps)
	}
	if ps[0].Text != "all done" || ps[0].Edits != 2 {
		t.Fatalf("post %q with %d edits, want \"all done\" after 2 edits", ps[0].Text, ps[0].Edits)
	}
}

func TestAuditLine(t *testing.T) {
	f := newFixture(t)
	f.say(olga, ops, "restart wekan password=hunter2")
	logs := f.logs.String()
	for _, w := range []string{"msg=audit", "user=olga", "channel=ops", `command="restart wekan password=***"`, "result=ok", "duration_ms="} {
		if !strings.Contains(logs, w) {
			t.Errorf("audit log lacks %q:\n%s", w, logs)
		}
	}
	if strings.Contains(logs, "hunter2") {
		t.Errorf("audit log shows a value: %s", logs)
	}
}

// Found by FuzzRouter: a line that starts with KEY=value (a setting sent
// without its command) logged the value in clear as the command's name.
func TestAuditLineHidesAValueInTheCommandsPlace(t *testing.T) {
	f := newFixture(t)
	if out, _ := f.say(olga, ops, "DB_PASSWORD=hunter2 wekan"); out != Unknown {
		t.Fatalf("outcome %s, want unknown", out)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, `command="db_password=*** wekan"`) || strings.Contains(logs, "hunter2") {
		t.Errorf("audit log: %s", logs)
	}
}

func TestRegistryRefusesDuplicates(t *testing.T) {
	if _, err := NewRegistry(Definition{Name: "a", Run: nop}, Definition{Name: "a", Run: nop}); err == nil {
		t.Fatal("duplicate accepted")
	}
	reg, _ := NewRegistry(Definition{Name: "help", Run: nop})
	if _, err := NewRouter(Options{Registry: reg}); err == nil {
		t.Fatal("a command named like a built-in was accepted")
	}
}
