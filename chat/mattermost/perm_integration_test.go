package mattermost_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/mattermost"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

// Rights follow the account, not the name: an admin renamed by the system
// admin stays admin, across a second resolution and a restart of the bot;
// a new account that takes the freed name gets nothing; a deactivated
// account loses its rights.
func TestPermissionsFollowPeopleNotNames(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	admin, adminUser := e.NewUser(t, ch.Id, "")
	configured := admin.Username // the config keeps naming them so
	bindings := filepath.Join(t.TempDir(), "permissions.json")
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	newPerms := func() *commands.Permissions {
		t.Helper()
		p, err := commands.NewPermissions(commands.PermissionsOptions{Admins: []string{"@" + configured}, StateFile: bindings, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// start runs a bot whose permissions are resolved on every connect,
	// as cmd/bot wires them.
	start := func(p *commands.Permissions) *bot {
		t.Helper()
		return startBot(t, e, filepath.Join(t.TempDir(), "state.json"), func(s *botSetup) {
			s.levelOf = p.Level
			s.onConnect = func(ctx context.Context, a *mattermost.Adapter) {
				if err := p.Resolve(ctx, a); err != nil {
					t.Errorf("resolving permissions: %v", err)
				}
			}
		})
	}
	whoami := func(acct mmtest.Account) string {
		t.Helper()
		c := e.Client(t, acct)
		return mmtest.WaitReply(t, c, say(t, e, c, ch.Id, "whoami"), wait).Message
	}
	level := func(p *commands.Permissions, id string) commands.Level {
		return p.Level(chat.User{ID: id})
	}

	perms := newPerms()
	b := start(perms)
	if r := whoami(admin); !strings.Contains(r, "with admin rights") {
		t.Fatalf("the configured admin: %q", r)
	}

	renamed := configured + "-x"
	e.RenameUser(t, adminUser.Id, renamed)
	admin.Username = renamed
	if r := whoami(admin); !strings.Contains(r, "You are @"+renamed+", with admin rights") {
		t.Fatalf("the renamed admin: %q", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := perms.Resolve(ctx, b.a); err != nil { // as on a reconnect
		t.Fatal(err)
	}
	if l := level(perms, adminUser.Id); l != commands.Admin {
		t.Fatalf("the renamed admin has %v after resolving again", l)
	}

	// Someone takes the freed name; the bot restarts (new process, same
	// bindings file) and resolves afresh.
	squatter, squatterUser := e.NewUser(t, ch.Id, configured)
	b.stop()
	perms = newPerms()
	b = start(perms)
	if r := whoami(squatter); !strings.Contains(r, "with everyone rights") {
		t.Fatalf("the new owner of the admin's old name: %q", r)
	}
	if r := whoami(admin); !strings.Contains(r, "with admin rights") {
		t.Fatalf("the renamed admin after a restart: %q", r)
	}
	if l := level(perms, squatterUser.Id); l != commands.Everyone {
		t.Fatalf("the new owner of the name has %v", l)
	}

	e.DeactivateUser(t, adminUser.Id)
	if err := perms.Resolve(ctx, b.a); err != nil {
		t.Fatal(err)
	}
	if l := level(perms, adminUser.Id); l != commands.Everyone {
		t.Fatalf("a deactivated admin has %v", l)
	}
}

func TestUsersByNameAndID(t *testing.T) {
	e := mmtest.FromEnv(t)
	acct, u := e.NewUser(t, "", "")
	gone, goneUser := e.NewUser(t, "", "")
	e.DeactivateUser(t, goneUser.Id)
	a, err := mattermost.New(mattermost.Options{URL: e.URL, Token: e.BotToken})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	byName, err := a.UsersByName(ctx, []string{acct.Username, gone.Username, "no-such-user-here"})
	if err != nil {
		t.Fatal(err)
	}
	if byName[acct.Username] != u.Id || byName[gone.Username] != goneUser.Id || len(byName) != 2 {
		t.Fatalf("UsersByName = %v, want %s and %s (deactivated, but the name is theirs)", byName, u.Id, goneUser.Id)
	}
	byID, err := a.UsersByID(ctx, []string{u.Id, goneUser.Id, "0123456789abcdefghijklmnop"})
	if err != nil {
		t.Fatal(err)
	}
	if byID[u.Id] != acct.Username || len(byID) != 1 {
		t.Fatalf("UsersByID = %v, want only the active %s", byID, acct.Username)
	}
	if m, err := a.UsersByName(ctx, nil); err != nil || len(m) != 0 {
		t.Fatalf("UsersByName(nil) = %v, %v", m, err)
	}
}
