package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
	"github.com/summoner-bot/summoner/internal/golden"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
)

// replyEngine answers summon, status, update and logs as the engine does,
// and fails with the engine's error types for the minions in fail.
type replyEngine struct {
	MinionEngine
	fail    map[string]error // by minion
	now     time.Time
	current string // the version update starts from
}

var (
	// unknownMinion is the engine's answer for a name not in the catalog
	// (minions/testdata has the engine's own text).
	unknownMinion = &minions.Error{Msg: `There is no minion called "nope". The catalog has: ghost, wekan.`}
	servedWekan   = minions.Address{HTTPS: "https://wekan.example.com", Host: "wekan.example.com", HostPort: "8084", HostIP: "127.0.0.1", Gateway: true}
)

func (f *replyEngine) err(name string) error {
	if name == "nope" {
		return unknownMinion
	}
	return f.fail[name]
}

func (f *replyEngine) Catalog() *minions.Catalog {
	cat, err := minions.LoadCatalog("")
	if err != nil {
		panic(err)
	}
	return cat
}

func (f *replyEngine) Summon(_ context.Context, name, version string, _ map[string]string, progress minions.Progress) (*minions.Result, error) {
	progress("Pulling " + name + "…")
	if err := f.err(name); err != nil {
		return nil, err
	}
	unchanged := version == f.current // asked for what runs: nothing to do
	if version == "" {
		version = "v7.62"
	}
	return &minions.Result{Minion: name, Version: version, URL: servedWekan.String(), Address: servedWekan,
		Unchanged: unchanged, Took: 83400 * time.Millisecond}, nil
}

func (f *replyEngine) Status(_ context.Context, name string) ([]minions.MinionStatus, error) {
	if err := f.err(name); err != nil {
		return nil, err
	}
	all := []minions.MinionStatus{
		{Name: "ghost", Version: "5.101", URL: "plain HTTP on port 2368 of this server", Address: minions.Address{Host: "ghost.example.com", HostPort: "2368"},
			Services: []minions.ServiceStatus{
				{Service: "db", Container: "mysql-ghost-example.com", State: "restarting", Image: "mysql:8.0.40"},
				{Service: "ghost", Container: "ghost-example.com", State: "running", Health: "unhealthy", Image: "ghost:5.101", Since: f.now.Add(-3 * time.Hour), CPUPercent: 97.25, MemBytes: 1200 << 20},
			}},
		{Name: "wekan", Version: "v7.61", URL: servedWekan.String(), Address: servedWekan,
			Services: []minions.ServiceStatus{
				{Service: "db", Container: "mongodb-wekan-example.com", State: "running", Health: "healthy", Image: "mongo:6.0.18", Since: f.now.Add(-50 * time.Hour), CPUPercent: 1.25, MemBytes: 300 << 20},
				{Service: "wekan", Container: "wekan-example.com", State: "running", Health: "healthy", Image: "wekanteam/wekan:v7.61", Since: f.now.Add(-50 * time.Hour), CPUPercent: 0.5, MemBytes: 412 << 20},
			}},
	}
	switch name {
	case "":
		return all, nil
	case "none":
		return nil, nil
	}
	for _, m := range all {
		if m.Name == name {
			return []minions.MinionStatus{m}, nil
		}
	}
	return nil, nil
}

func (f *replyEngine) UpdateTarget(_ context.Context, name, version string) (*minions.UpdateTarget, error) {
	if name == "nope" {
		return nil, unknownMinion
	}
	t := &minions.UpdateTarget{Minion: name, From: f.current, To: version}
	if version == "" {
		t.To, t.Newest = "v7.62", "v8.1"
	}
	t.NewMajor = !strings.HasPrefix(t.To, "v7.")
	return t, nil
}

func (f *replyEngine) Update(_ context.Context, name, version string, progress minions.Progress) (*minions.Result, error) {
	progress("Pulling " + name + " " + version + "…")
	res := &minions.Result{Minion: name, Version: version, Previous: f.current, URL: servedWekan.String(), Address: servedWekan, Took: 95 * time.Second}
	if err := f.fail[name]; err != nil {
		res.Version, res.RolledBack = f.current, true
		return res, err
	}
	if version == f.current {
		res.Unchanged = true
	}
	return res, nil
}

func (f *replyEngine) Logs(_ context.Context, name, service string, tail int) (string, error) {
	if err := f.err(name); err != nil {
		return "", err
	}
	switch name {
	case "quiet":
		return "\n", nil
	case "ghost":
		return "[2026-11-26 10:00:01] INFO Ghost booted in 1.2s\nrendered ```markdown``` in a log line\n[2026-11-26 10:00:02] WARN DB_PASSWORD=*** hidden\n", nil
	}
	return fmt.Sprintf("%s %s: the last %d lines\n", name, service, tail), nil
}

// dumpFirst is the safe updater: it names the dump it took before the
// update (maintenance.Service is tested on Docker).
type dumpFirst struct{ e MinionEngine }

func (d dumpFirst) Update(ctx context.Context, u maintenance.Updater, minion, version string, hasDB bool, progress minions.Progress) (*maintenance.UpdateResult, error) {
	res, err := u.Update(ctx, minion, version, progress)
	return &maintenance.UpdateResult{Result: res, Dump: minion + "/20261126T120000Z-dump"}, err
}

// confirmCode is the random code of a confirmation prompt.
var confirmCode = regexp.MustCompile("`confirm [0-9]{6}`")

// The replies of summon, status, update and logs, as the user reads them
// in chat: the final post, with the progress post edited into it.
func TestMinionReplies(t *testing.T) {
	rolledBack := &minions.UpdateError{Result: &minions.Result{Minion: "wekan", Version: "v7.61", Previous: "v7.61", RolledBack: true},
		Cause: &minions.Error{Msg: "wekan-example.com stopped right after starting (exit code 1). Its last log lines:\n```\nconfig error: MONGO_URL is not set\n```"}}
	rolledBackStopped := &minions.UpdateError{Result: rolledBack.Result, Cause: context.DeadlineExceeded, Stopped: true}
	tests := []struct {
		golden string
		text   string
		level  Level
		fail   map[string]error
		safe   bool // a backup destination: update dumps first
	}{
		{"summon_up", "summon wekan", Operator, nil, false},
		{"summon_version", "summon wekan v7.60 ADMIN_EMAIL=a@example.com", Operator, nil, false},
		{"summon_unchanged", "summon wekan v7.61", Operator, nil, false},
		{"summon_usage", "summon", Operator, nil, false},
		{"summon_stray_word", "summon wekan v7.61 extra", Operator, nil, false},
		{"summon_not_permitted", "summon wekan", Everyone, nil, false},
		{"summon_unknown_minion", "summon nope", Operator, nil, false},
		{"summon_rolled_back", "summon wekan SMTP=x", Operator, map[string]error{"wekan": &minions.ChangeError{Minion: "wekan", Restored: true,
			Cause: &minions.Error{Msg: "starting wekan-example.com failed: a port this minion publishes is already taken on this server (port 8084)"}}}, false},
		{"summon_rolled_back_stopped", "summon wekan SMTP=x", Operator, map[string]error{"wekan": &minions.ChangeError{Minion: "wekan", Restored: true, WasStopped: true,
			Cause: errors.New("creating wekan-example.com: no space left on device\nmore detail")}}, false},
		{"summon_down", "summon wekan SMTP=x", Operator, map[string]error{"wekan": &minions.ChangeError{Minion: "wekan",
			Cause:      &minions.Error{Msg: "wekan-example.com was not ready after 2m0s"},
			RestoreErr: &minions.Error{Msg: "I cannot reach Docker while starting wekan-example.com: is the Docker daemon running? (on the server: `systemctl start docker`)"}}}, false},
		{"summon_busy", "summon wekan", Operator, map[string]error{"wekan": &minions.Error{Msg: "A summon of wekan is already in progress; wait for it to finish.", Err: minions.ErrBusy}}, false},
		{"status_all", "status", Everyone, nil, false},
		{"status_one", "status Wekan", Everyone, nil, false},
		{"status_none", "status none", Everyone, nil, false},
		{"status_usage", "status wekan ghost", Everyone, nil, false},
		{"status_unknown_minion", "status nope", Everyone, nil, false},
		{"update_done", "update wekan", Operator, nil, false},
		{"update_done_after_dump", "update wekan v7.62", Operator, nil, true},
		{"update_newest_already", "update wekan v7.61", Operator, nil, false},
		{"update_new_major_confirm", "update wekan v8.1", Operator, nil, false},
		{"update_usage", "update", Operator, nil, false},
		{"update_not_permitted", "update wekan", Everyone, nil, false},
		{"update_unknown_minion", "update nope", Operator, nil, false},
		{"update_rolled_back", "update wekan v7.62", Operator, map[string]error{"wekan": rolledBack}, false},
		{"update_rolled_back_stopped", "update wekan v7.62", Operator, map[string]error{"wekan": rolledBackStopped}, false},
		{"logs_lines", "logs ghost", Operator, nil, false},
		{"logs_service_tail", "logs wekan db --tail 20", Operator, nil, false},
		{"logs_empty", "logs quiet", Operator, nil, false},
		{"logs_bad_tail", "logs wekan --tail 9000", Operator, nil, false},
		{"logs_usage", "logs", Operator, nil, false},
		{"logs_not_permitted", "logs wekan", Everyone, nil, false},
		{"logs_unknown_minion", "logs nope", Operator, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			e := &replyEngine{fail: tt.fail, now: time.Now(), current: "v7.61"}
			var safe SafeUpdater
			if tt.safe {
				safe = dumpFirst{e}
			}
			reg, err := NewRegistry(MinionCommands(e, safe)...)
			if err != nil {
				t.Fatal(err)
			}
			rec := &chattest.Recorder{}
			rt, err := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				LevelOf: func(chat.User) Level { return tt.level }})
			if err != nil {
				t.Fatal(err)
			}
			rt.Execute(context.Background(), chat.Message{ID: "m", Text: tt.text, User: olga, Channel: ops})
			if n := len(rec.Posts()); n != 1 {
				t.Errorf("%d posts, want one (progress is edited into the reply):\n%s", n, rec.Transcript())
			}
			golden.AssertText(t, "reply_"+tt.golden, confirmCode.ReplaceAllString(rec.Last(), "`confirm <code>`"))
		})
	}
}
