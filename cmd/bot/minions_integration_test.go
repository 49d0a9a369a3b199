package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

const minion = "testmin"

// minionEnv gives a test the real Mattermost and Docker, with no test
// minion left from an earlier run, and a folder for the bot's data.
func minionEnv(t *testing.T) (*mmtest.Env, *dockertest.Env, string) {
	t.Helper()
	e := mmtest.FromEnv(t)
	d := dockertest.Require(t)
	d.RemoveMinion(t, minion)
	t.Cleanup(func() { d.RemoveMinion(t, minion) })
	return e, d, t.TempDir()
}

// minionDaemonEnv is the environment of a bot that summons the test
// minions through the local registry, keeping everything under dir.
func minionDaemonEnv(t *testing.T, e *mmtest.Env, d *dockertest.Env, dir, domain string) []string {
	t.Helper()
	minionsDir, err := filepath.Abs("../../minions/testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"SUMMONER_CHAT_URL=" + e.URL, "SUMMONER_CHAT_TOKEN=" + e.BotToken, "SUMMONER_CHAT_TEAM=" + e.Team,
		"SUMMONER_CHAT_STATE_FILE=" + filepath.Join(dir, "chat.json"), "SUMMONER_DOMAIN=" + domain,
		"SUMMONER_VSROOT=" + filepath.Join(dir, "volumes"), "SUMMONER_DBSROOT=" + filepath.Join(dir, "databases"),
		"SUMMONER_DOCKER_MINIONS_DIR=" + minionsDir, "SUMMONER_DOCKER_REGISTRY_MIRROR=" + d.Registry,
		"SUMMONER_DOCKER_STATE_DIR=" + filepath.Join(dir, "state"),
	}
}

// TestMinionFromChat drives a two-container test minion from the real
// Mattermost through the real bot binary and the real Docker engine.
func TestMinionFromChat(t *testing.T) {
	e, d, dir := minionEnv(t)
	ch := e.NewChannel(t)
	op := e.Client(t, e.Operator)
	vsroot, dbsroot := filepath.Join(dir, "volumes"), filepath.Join(dir, "databases")
	addr, port := freePort(t), freePort(t)
	_, hostPort, _ := strings.Cut(port, ":")
	startDaemon(t, append(minionDaemonEnv(t, e, d, dir, "chat.summoner.test"),
		"SUMMONER_HTTP_LISTEN="+addr, "SUMMONER_PERMISSIONS_OPERATORS="+e.Operator.Username,
		"SUMMONER_PERMISSIONS_ADMINS="+e.Admin.Username))
	waitHealthy(t, addr)

	// say posts a command and returns the bot's final answer: long commands
	// first post progress, then edit that post into the result.
	say := func(c *model.Client4, text string, done func(string) bool) string {
		t.Helper()
		p := mmtest.Post(t, c, ch.Id, "", "@"+e.BotUsername+" "+text)
		r := mmtest.WaitReply(t, c, p, 30*time.Second)
		return mmtest.WaitEdited(t, c, r.Id, 120*time.Second, done).Message
	}
	final := func(words ...string) func(string) bool {
		return func(s string) bool {
			for _, w := range words {
				if strings.Contains(s, w) {
					return true
				}
			}
			return false
		}
	}
	psql := func(sql string) string {
		t.Helper()
		for _, c := range d.Containers(t, minion) {
			if c.Labels["summoner.role"] == "db" {
				out, code := d.Exec(t, c.ID, nil, "psql", "-U", "app", "-d", "appdb", "-h", "127.0.0.1", "-tAc", sql)
				if code != 0 {
					t.Fatalf("psql: %s", out)
				}
				return strings.TrimSpace(out)
			}
		}
		t.Fatal("no database container")
		return ""
	}

	// Mistakes get one clear reply and leave nothing behind.
	for _, tc := range []struct{ cmd, want string }{
		{"summon wekann", `There is no minion called "wekann"`},
		{"summon testmin 9.9 HTTP_PORT=" + hostPort, "does not exist in the registry"},
	} {
		if r := say(op, tc.cmd, final(tc.want, "wrong")); !strings.Contains(r, tc.want) {
			t.Fatalf("%s: %q", tc.cmd, r)
		}
		if n := len(d.Containers(t, minion)); n != 0 {
			t.Fatalf("%s left %d containers", tc.cmd, n)
		}
	}

	r := say(op, "summon testmin HTTP_PORT="+hostPort, final("is up", "went wrong", "failed", "cannot"))
	if !strings.Contains(r, "testmin 1.0 is up: plain HTTP on 127.0.0.1:"+hostPort+", from this server only. Took ") {
		t.Fatalf("summon reply: %q", r)
	}

	r = say(op, "status testmin", final("testmin"))
	if strings.Count(r, "| running | healthy |") != 2 {
		t.Fatalf("status does not show both containers running and healthy:\n%s", r)
	}
	r = say(op, "logs testmin", final("```", "No log"))
	if !strings.Contains(r, "testapp 1.0 starting") {
		t.Fatalf("logs: %q", r)
	}

	psql("CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept across banish')")
	r = say(op, "banish testmin", final("banished", "gone", "wrong"))
	if !strings.Contains(r, "its data stays") || len(d.Containers(t, minion)) != 0 {
		t.Fatalf("banish: %q, %d containers left", r, len(d.Containers(t, minion)))
	}
	say(op, "summon testmin", final("is up", "wrong", "failed"))
	if got := psql("SELECT body FROM notes"); got != "kept across banish" {
		t.Fatalf("after summoning again the row is %q", got)
	}

	// Deleting data is for admins only.
	if r := say(op, "banish testmin --purge", final("admin rights")); !strings.Contains(r, "needs admin rights") {
		t.Fatalf("an operator's purge: %q", r)
	}
	admin := e.Client(t, e.Admin)
	r = say(admin, "banish testmin --purge", final("confirm"))
	i := strings.Index(r, "`confirm ")
	if i < 0 {
		t.Fatalf("purge did not ask for confirmation: %q", r)
	}
	if len(d.Containers(t, minion)) != 2 {
		t.Fatal("purge acted before confirmation")
	}
	code := r[i+len("`confirm "):]
	code = code[:strings.Index(code, "`")]
	r = say(admin, "confirm "+code, final("gone", "wrong"))
	if !strings.Contains(r, "testmin is gone, with its data") {
		t.Fatalf("confirmed purge: %q", r)
	}
	for _, p := range []string{filepath.Join(vsroot, minion), filepath.Join(dbsroot, minion)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s survived the purge: %v", p, err)
		}
	}
}

// TestApplicationsSummonedAtStart: the minions listed in
// summoner.applications come up with the bot, and #ops hears about it.
func TestApplicationsSummonedAtStart(t *testing.T) {
	e, d, dir := minionEnv(t)
	ops := e.NewChannel(t)
	started := time.Now()
	startDaemon(t, append(minionDaemonEnv(t, e, d, dir, "apps.summoner.test"),
		"SUMMONER_CHAT_OPS_CHANNEL="+ops.Name, "SUMMONER_HTTP_LISTEN=", "SUMMONER_APPLICATIONS="+minion))
	member := e.Client(t, e.Member)
	deadline := time.Now().Add(90 * time.Second)
	for {
		list, _, err := member.GetPostsSince(ops.Id, started.UnixMilli()-1000, false)
		if err != nil {
			t.Fatal(err)
		}
		var msgs []string
		for _, p := range list.Posts {
			msgs = append(msgs, p.Message)
			if strings.Contains(p.Message, "Summoned testmin 1.0 at start-up: plain HTTP on 127.0.0.1:18181, from this server only") {
				if n := len(d.Containers(t, minion)); n != 2 {
					t.Fatalf("%d containers after the start-up summon, want 2", n)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no start-up summon report in ~%s; posts: %q", ops.Name, msgs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
