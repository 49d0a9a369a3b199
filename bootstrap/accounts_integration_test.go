package bootstrap

// The accounts step on a fresh, real Mattermost: the catalog's mattermost
// minion (the v6.7.2 server image and the PostgreSQL image that
// .ci/docker.sh pushes under the catalog's names) summoned through the
// minions engine with the local registry as the mirror. See
// internal/dockertest for when it skips. Run it holding the engine's lock:
//
//	flock -o /tmp/summoner-docker.lock go test -race -run AccountsOnRealMattermost ./bootstrap/

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/minions"
)

func TestAccountsOnRealMattermost(t *testing.T) {
	d := dockertest.Require(t)
	const minion = "mattermost"
	d.RemoveMinion(t, minion) // left by an earlier run
	t.Cleanup(func() { d.RemoveMinion(t, minion) })

	cat, err := minions.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	e := minions.NewEngine(minions.WithTimeouts(d.Client, minions.Timeouts{}), cat, minions.EngineOptions{
		Domain: "example.test", VSRoot: filepath.Join(dir, "volumes"), DBSRoot: filepath.Join(dir, "databases"),
		Mirror: minions.Mirror{Registry: d.Registry},
		State:  &minions.StateStore{Dir: filepath.Join(dir, "state")},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	port := acctFreePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	t0 := time.Now()
	res, err := e.Summon(ctx, minion, "", map[string]string{"HTTP_PORT": port}, nil)
	if err != nil {
		t.Fatalf("summoning mattermost: %v", err)
	}
	t.Logf("mattermost %s up in %s (engine: %s)", res.Version, time.Since(t0).Round(100*time.Millisecond), res.Took.Round(100*time.Millisecond))

	statePath := filepath.Join(dir, "bootstrap", "accounts.json")
	newStep := func(state string) *Accounts {
		return &Accounts{
			URL: "http://127.0.0.1:" + port, Team: "main", TeamDisplayName: "Main", OpsChannel: "ops", OpsDisplayName: "Ops",
			BotUsername: "summoner", CallbackURL: "http://127.0.0.1:8079/mattermost/slash", StatePath: state,
		}
	}
	a := newStep(statePath)
	if done, what, err := a.Done(ctx); done || err != nil {
		t.Fatalf("Done on a fresh server = %v, %q, %v", done, what, err)
	}

	// First run: everything is made, the password shown once.
	t1 := time.Now()
	lines := acctApply(t, ctx, a)
	t.Logf("first Apply in %s:\n%s", time.Since(t1).Round(time.Millisecond), strings.Join(acctRedact(lines, a), "\n"))
	st, err := a.load()
	if err != nil || st == nil || st.AdminPassword == "" {
		t.Fatalf("state after Apply: %+v, %v", st != nil, err)
	}
	if fi, err := os.Stat(statePath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("state file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	wantShown := fmt.Sprintf("admin account: admin / %s (shown once; also in %s, mode 0600)", st.AdminPassword, statePath)
	if n := acctCount(lines, st.AdminPassword); n != 1 || !acctHas(lines, wantShown) {
		t.Errorf("the password is shown %d times, want once as %q", n, "admin account: admin / … (shown once; …)")
	}
	for _, secret := range []string{st.BotToken, st.SlashToken} {
		if acctCount(lines, secret) != 0 {
			t.Error("a token is in the progress lines")
		}
	}
	if done, what, err := a.Done(ctx); !done || err != nil {
		t.Fatalf("Done after Apply = %v, %q, %v", done, what, err)
	}
	r, err := a.Result()
	if err != nil || r.BotToken == "" || r.SlashToken == "" || r.AdminUsername != "admin" || r.Team != "main" || r.OpsChannel != "ops" {
		t.Fatalf("Result = %v", err)
	}
	admin := acctLogin(t, a.URL, "admin", st.AdminPassword)
	acctBotWorks(t, admin, a.URL, r)

	// Second run: already done; a needless Apply changes nothing.
	b := newStep(statePath)
	t2 := time.Now()
	if done, what, err := b.Done(ctx); !done || err != nil {
		t.Fatalf("second Done = %v, %q, %v", done, what, err)
	}
	t.Logf("second Done in %s", time.Since(t2).Round(time.Millisecond))
	if again := acctApply(t, ctx, b); len(again) != 0 {
		t.Errorf("a second Apply did something:\n%s", strings.Join(acctRedact(again, b), "\n"))
	}
	if r2, _ := b.Result(); r2 != r {
		t.Error("a second Apply changed the tokens")
	}
	acctCounts(t, admin, r)
	acctClosed(t, admin, a.URL)

	// A team opened and a channel made public by hand: the team is made
	// invite-only again; the public channel is reported, not converted.
	team, _, err := admin.GetTeamByName("main", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.UpdateTeamPrivacy(team.Id, model.TeamOpen); err != nil {
		t.Fatal(err)
	}
	ops, _, err := admin.GetChannelByName("ops", team.Id, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.UpdateChannelPrivacy(ops.Id, model.ChannelTypeOpen); err != nil {
		t.Fatal(err)
	}
	opened := newStep(statePath)
	if done, what, err := opened.Done(ctx); done || err != nil || !strings.Contains(what, "team main is open to every account") {
		t.Fatalf("Done with an open team = %v, %q, %v", done, what, err)
	}
	lines = acctApply(t, ctx, opened)
	warning := "⚠ channel ops is public: everyone in team main can read the reports; make it private in Mattermost (channel menu > Convert to Private Channel), bootstrap does not convert it"
	if !acctHas(lines, "team main was open to every account on the server: made it invite-only (its members stay)") || !acctHas(lines, warning) {
		t.Errorf("Apply on an open team and a public channel said:\n%s", strings.Join(acctRedact(lines, opened), "\n"))
	}
	done, what, err := opened.Done(ctx)
	if !done || err != nil || !strings.Contains(what, warning) {
		t.Errorf("Done with a public ops channel = %v, %q, %v; want done, with the warning", done, what, err)
	}
	if ch, _, err := admin.GetChannel(ops.Id, ""); err != nil || ch.Type != model.ChannelTypeOpen {
		t.Errorf("the public channel was converted: %v", err)
	}
	acctClosed(t, admin, a.URL)

	// The bot's token revoked by the admin: not done, and a new one.
	toks, _, err := admin.GetUserAccessTokensForUser(r.BotUserID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		if _, err := admin.RevokeUserAccessToken(tok.Id); err != nil {
			t.Fatal(err)
		}
	}
	c := newStep(statePath)
	if done, what, err := c.Done(ctx); done || err != nil || !strings.Contains(what, "token") {
		t.Fatalf("Done after the token was revoked = %v, %q, %v", done, what, err)
	}
	lines = acctApply(t, ctx, c)
	if !acctHas(lines, "the stored token of @summoner no longer worked (revoked?): made a new one") {
		t.Errorf("Apply after the revoke said:\n%s", strings.Join(acctRedact(lines, c), "\n"))
	}
	if done, what, err := c.Done(ctx); !done || err != nil {
		t.Fatalf("Done after a new token = %v, %q, %v", done, what, err)
	}
	r3, err := c.Result()
	if err != nil || r3.BotToken == r.BotToken || r3.SlashToken != r.SlashToken || r3.BotUserID != r.BotUserID {
		t.Fatalf("after the revoke: a new bot token %v, the same slash command %v, the same bot %v (%v)",
			r3.BotToken != r.BotToken, r3.SlashToken == r.SlashToken, r3.BotUserID == r.BotUserID, err)
	}
	acctBotWorks(t, admin, a.URL, r3)
	acctCounts(t, admin, r3)

	// The state file lost while the admin exists: a clear failure, and no
	// second admin.
	lost := newStep(filepath.Join(dir, "elsewhere", "accounts.json"))
	if done, _, err := lost.Done(ctx); done || err != nil {
		t.Fatalf("Done without the state file = %v, %v", done, err)
	}
	err = lost.Apply(ctx, func(string, ...any) {})
	var se *StepError
	if !errors.As(err, &se) || !strings.Contains(se.Why, "already has accounts") || !strings.Contains(se.Next, `"admin_password"`) {
		t.Fatalf("Apply without the state file: %v", err)
	}
	t.Logf("without the state file:\n  ✗ accounts: %s\n    next: %s", se.Why, se.Next)
	acctCounts(t, admin, r3)
}

func acctApply(t *testing.T, ctx context.Context, a *Accounts) []string {
	t.Helper()
	var mu sync.Mutex
	var lines []string
	err := a.Apply(ctx, func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	})
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return lines
}

func acctLogin(t *testing.T, url, user, pw string) *model.Client4 {
	t.Helper()
	c := model.NewAPIv4Client(url)
	if _, _, err := c.Login(user, pw); err != nil {
		t.Fatalf("logging in as %s: %v", user, err)
	}
	return c
}

// botWorks: the token logs in as the bot, which is in the team and the ops
// channel, and /summon calls the callback with that slash token.
func acctBotWorks(t *testing.T, admin *model.Client4, url string, r AccountsResult) {
	t.Helper()
	bot := model.NewAPIv4Client(url)
	bot.SetToken(r.BotToken)
	me, _, err := bot.GetMe("")
	if err != nil || !me.IsBot || me.Username != "summoner" {
		t.Fatalf("the bot token: %v", err)
	}
	ch, _, err := bot.GetChannelByNameForTeamName("ops", "main", "")
	if err != nil {
		t.Fatalf("the bot cannot see ~ops: %v", err)
	}
	if _, _, err := bot.CreatePost(&model.Post{ChannelId: ch.Id, Message: "summoner here"}); err != nil {
		t.Errorf("the bot cannot post in ~ops: %v", err)
	}
	cfg, _, err := admin.GetConfig()
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.ServiceSettings
	if !*s.EnableBotAccountCreation || !*s.EnableUserAccessTokens || !*s.EnableIncomingWebhooks || !*s.EnableCommands ||
		!strings.Contains(*s.AllowedUntrustedInternalConnections, "127.0.0.1") {
		t.Errorf("settings not on: %+v", s)
	}
}

// counts: one admin (the only active human), one bot named summoner with
// one token, one /summon.
func acctCounts(t *testing.T, admin *model.Client4, r AccountsResult) {
	t.Helper()
	users, _, err := admin.GetUsers(0, 200, "")
	if err != nil {
		t.Fatal(err)
	}
	var humans, admins, bots []string
	for _, u := range users {
		switch {
		case u.DeleteAt != 0: // deactivated
		case u.IsBot:
			bots = append(bots, u.Username)
		case u.IsSystemAdmin():
			admins = append(admins, u.Username)
			humans = append(humans, u.Username)
		default:
			humans = append(humans, u.Username)
		}
	}
	if len(admins) != 1 || len(humans) != 1 || acctCount(bots, "summoner") != 1 {
		t.Errorf("users: humans %v, admins %v, bots %v; want one admin and one summoner bot", humans, admins, bots)
	}
	toks, _, err := admin.GetUserAccessTokensForUser(r.BotUserID, 0, 100)
	if err != nil || len(toks) != 1 {
		t.Errorf("the bot has %d tokens (%v), want 1", len(toks), err)
	}
	team, _, err := admin.GetTeamByName("main", "")
	if err != nil {
		t.Fatal(err)
	}
	cmds, _, err := admin.ListCommands(team.Id, true)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range cmds {
		if c.Trigger == "summon" {
			n++
			if c.URL != "http://127.0.0.1:8079/mattermost/slash" || c.Method != model.CommandMethodPost || c.Token != r.SlashToken {
				t.Errorf("/summon calls %s %s", c.Method, c.URL)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d /summon commands, want 1", n)
	}
}

// acctClosed: registration is closed (EnableOpenServer false, a
// stranger's sign-up refused) and the team is invite-only (an account
// that is not in it cannot join it by itself).
func acctClosed(t *testing.T, admin *model.Client4, url string) {
	t.Helper()
	cfg, _, err := admin.GetConfig()
	if err != nil {
		t.Fatal(err)
	}
	if v := cfg.TeamSettings.EnableOpenServer; v == nil || *v {
		t.Errorf("EnableOpenServer = %v, want false", v)
	}
	_, resp, err := model.NewAPIv4Client(url).CreateUser(&model.User{Username: "stranger", Email: "stranger@example.test", Password: "Stranger-pass-1"})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("a stranger's sign-up: %v, want 403", err)
	}
	team, _, err := admin.GetTeamByName("main", "")
	if err != nil {
		t.Fatal(err)
	}
	if team.Type != model.TeamInvite || team.AllowOpenInvite {
		t.Errorf("team main: type %q, open invite %v; want invite-only", team.Type, team.AllowOpenInvite)
	}
	name := "outsider" + model.NewId()[:6]
	u, _, err := admin.CreateUser(&model.User{Username: name, Email: name + "@example.test", Password: "Outsider-pass-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { // deactivated: acctCounts leaves it out
		if _, err := admin.DeleteUser(u.Id); err != nil {
			t.Logf("deactivating %s: %v", name, err)
		}
	}()
	oc := acctLogin(t, url, name, "Outsider-pass-1")
	if _, resp, err := oc.AddTeamMember(team.Id, u.Id); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("a non-member joining the team: %v, want 403", err)
	}
}

func acctFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func acctCount(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if s != "" && strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func acctHas(lines []string, s string) bool {
	for _, l := range lines {
		if l == s {
			return true
		}
	}
	return false
}

// redact hides the password in what a test logs.
func acctRedact(lines []string, a *Accounts) []string {
	st := a.st
	out := make([]string, len(lines))
	for i, l := range lines {
		if st != nil && st.AdminPassword != "" {
			l = strings.ReplaceAll(l, st.AdminPassword, "<password>")
		}
		out[i] = l
	}
	return out
}
