package commands

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
	"github.com/summoner-bot/summoner/minions"
)

// fakeEngine records calls; the engine itself is tested against Docker.
type fakeEngine struct {
	MinionEngine
	calls []string
}

func (f *fakeEngine) Summon(_ context.Context, name, version string, settings map[string]string, progress minions.Progress) (*minions.Result, error) {
	keys := strings.Join(sortedKeys(settings), ",")
	f.calls = append(f.calls, "summon "+name+" "+version+" "+keys)
	progress("Pulling…")
	a := minions.Address{Host: name + ".example.com", HostPort: "8084", HostIP: "127.0.0.1", Gateway: true}
	if name == "wekan" { // the gateway serves wekan, not the others
		a.HTTPS = "https://wekan.example.com"
	}
	return &minions.Result{Minion: name, Version: "1.0", URL: a.String(), Address: a, Took: 1500 * time.Millisecond}, nil
}

func (f *fakeEngine) Banish(_ context.Context, name string, purge bool) error {
	f.calls = append(f.calls, "banish "+name+map[bool]string{true: " purge"}[purge])
	return nil
}

func (f *fakeEngine) Logs(_ context.Context, name, service string, tail int) (string, error) {
	f.calls = append(f.calls, "logs "+name+" "+service)
	return "a\nb\n", nil
}

// Summoned: wekan has data here, ghost nothing.
func (f *fakeEngine) Summoned(_ context.Context, name string) (bool, error) {
	return name == "wekan", nil
}

// UpdateTarget: wekan runs 1.2; 1.4 is the newest 1.x and 2.0 is out.
func (f *fakeEngine) UpdateTarget(_ context.Context, name, version string) (*minions.UpdateTarget, error) {
	t := &minions.UpdateTarget{Minion: name, From: "1.2", To: version}
	if version == "" {
		t.To, t.Newest = "1.4", "2.0"
	}
	t.NewMajor = !strings.HasPrefix(t.To, "1.")
	return t, nil
}

func (f *fakeEngine) Update(_ context.Context, name, version string, _ minions.Progress) (*minions.Result, error) {
	f.calls = append(f.calls, "update "+name+" "+version)
	return &minions.Result{Minion: name, Version: version, Previous: "1.2", URL: "https://" + name + ".example.com", Address: minions.Address{HTTPS: "https://" + name + ".example.com", Host: name + ".example.com", HostPort: "8084", HostIP: "127.0.0.1", Gateway: true}, Took: 3 * time.Second}, nil
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

func TestMinionCommands(t *testing.T) {
	tests := []struct {
		text  string
		call  string
		reply string
		level Level // Admin when zero
	}{
		{"summon wekan", "summon wekan  ", "wekan 1.0 is up: https://wekan.example.com. Took 1.5s.", 0},
		{"summon ghost", "summon ghost  ", "ghost 1.0 is up: plain HTTP on 127.0.0.1:8084, from this server only; the gateway does not serve ghost.example.com over HTTPS yet. Took 1.5s.", 0},
		{"summon Wekan v7.61 admin_email=a@b.c SMTP=x", "summon wekan v7.61 ADMIN_EMAIL,SMTP", "is up", 0},
		{"summon", "", "Usage: `summon <minion> [version] [KEY=value…]`", 0},
		{"summon wekan 1 2", "", "I don't know what `2` is", 0},
		{"summon wekan =x", "", "has no setting name", 0},
		{"summon wekan --force", "", "This command takes no `--force` option.", 0},
		{"banish wekan", "banish wekan", "its data stays", 0},
		{"banish wekan --purge", "", "confirm", 0},
		{"banish", "", "Usage: `banish <minion> [--purge]`", 0},
		{"banish ghost --purge", "", "ghost has no containers and no data here: there is nothing to banish.", 0},
		{"banish wekan --purge", "", "`banish --purge` deletes data for good, so it needs admin rights, and you have operator rights.", Operator},
		{"banish wekan", "banish wekan", "its data stays", Operator},
		{"update wekan", "update wekan 1.4", "wekan now runs 1.4 (was 1.2): https://wekan.example.com. Took 3s.\nwekan 2.0 is out too, a new major version: `update wekan 2.0` moves there (after a confirmation).", 0},
		{"update wekan 1.3", "update wekan 1.3", "wekan now runs 1.3 (was 1.2)", 0},
		{"update wekan 2.0", "", "⚠️ This moves wekan from 1.2 to 2.0, a new major version. The app may migrate its data", 0},
		{"logs wekan --tail 0", "", "`--tail` takes a number", 0},
		{"logs wekan db --tail=10", "logs wekan db", "```\na\nb\n```", 0},
		{"logs wekan --tail", "", "`--tail` needs a value.", 0},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			fe := &fakeEngine{}
			reg, err := NewRegistry(MinionCommands(fe, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			rec := &chattest.Recorder{}
			level := tt.level
			if level == 0 {
				level = Admin
			}
			rt, err := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				LevelOf: func(chat.User) Level { return level }})
			if err != nil {
				t.Fatal(err)
			}
			rt.Execute(context.Background(), chat.Message{ID: "m", Text: tt.text, User: chat.User{ID: "u", Username: "alice"}, Channel: chat.Channel{ID: "c", Name: "ops"}})
			if got := strings.Join(fe.calls, ";"); got != tt.call {
				t.Errorf("engine calls %q, want %q", got, tt.call)
			}
			if !strings.Contains(rec.Last(), tt.reply) {
				t.Errorf("reply %q, want it to contain %q", rec.Last(), tt.reply)
			}
		})
	}
}

func TestRenderStatus(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	got := renderStatus([]minions.MinionStatus{{
		Name: "wekan", Version: "v7.61", URL: "https://wekan.example.com", Address: minions.Address{HTTPS: "https://wekan.example.com", Host: "wekan.example.com", HostPort: "8084", HostIP: "127.0.0.1", Gateway: true},
		Services: []minions.ServiceStatus{
			{Service: "db", Container: "mongodb-wekan-example.com", State: "running", Health: "healthy", Image: "mongo:6.0.18", Since: now.Add(-26 * time.Hour), CPUPercent: 1.25, MemBytes: 300 << 20},
			{Service: "wekan", Container: "wekan-example.com", State: "exited", Image: "wekanteam/wekan:v7.61"},
		},
	}}, now)
	for _, w := range []string{
		"**wekan** v7.61 · https://wekan.example.com\n",
		"| db | mongodb-wekan-example.com | running | healthy | mongo:6.0.18 | 26h0m | 1.2% | 300 MiB |",
		"| wekan | wekan-example.com | exited | - | wekanteam/wekan:v7.61 | - | 0.0% | - |",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("status lacks %q:\n%s", w, got)
		}
	}
	if renderStatus(nil, now) != "No minion is summoned. `catalog` lists what I can summon." {
		t.Error("empty status")
	}
}

// The summon reply and status say the same about where a minion is.
func TestWhereSummonAndStatusAgree(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		a    minions.Address
		want string
	}{
		{"served", minions.Address{HTTPS: "https://testmin.example.com", Host: "testmin.example.com", HostPort: "18181", HostIP: "127.0.0.1", Gateway: true},
			"https://testmin.example.com"},
		{"gateway without a certificate", minions.Address{Host: "testmin.example.com", HostPort: "18181", HostIP: "127.0.0.1", Gateway: true},
			"plain HTTP on 127.0.0.1:18181, from this server only; the gateway does not serve testmin.example.com over HTTPS yet"},
		{"no gateway", minions.Address{Host: "testmin.example.com", HostPort: "18181"},
			"plain HTTP on port 18181 of this server"},
		{"no gateway, loopback", minions.Address{Host: "testmin.example.com", HostPort: "18181", HostIP: "127.0.0.1"},
			"plain HTTP on 127.0.0.1:18181, from this server only"},
		{"no port", minions.Address{Host: "testmin.example.com", Gateway: true},
			"no web port published on this server; the gateway does not serve testmin.example.com over HTTPS yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.a.String() != tt.want {
				t.Errorf("address says %q, want %q", tt.a.String(), tt.want)
			}
			reply := renderSummoned(&minions.Result{Minion: "testmin", Version: "1.0", URL: tt.a.String(), Address: tt.a, Took: time.Second})
			if want := "testmin 1.0 is up: " + tt.want + ". Took 1s."; reply != want {
				t.Errorf("summon reply %q, want %q", reply, want)
			}
			status := renderStatus([]minions.MinionStatus{{Name: "testmin", Version: "1.0", URL: tt.a.String(), Address: tt.a}}, now)
			if want := "**testmin** 1.0 · " + tt.want + "\n"; !strings.HasPrefix(status, want) {
				t.Errorf("status %q, want it to start with %q", status, want)
			}
		})
	}
}
