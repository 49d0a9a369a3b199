package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/mmtest"
)

// TestMaintenanceFromChat: a dump from chat is stored and listed; a
// schedule set from chat fires, and when the database is down its failure
// report reaches the ops channel; the schedule is switched off again.
func TestMaintenanceFromChat(t *testing.T) {
	e, d, dir := minionEnv(t)
	ch := e.NewChannel(t)
	admin := e.Client(t, e.Admin)
	cfg := writeConfig(t, "backups:\n  destinations:\n    - name: disk\n      local: {path: "+filepath.Join(dir, "backups")+"}\n"+
		"maintenance:\n  dump: \"off\"\n  cold_backup: \"off\"\n  prune: \"off\"\n  digest: \"off\"\n")
	addr := freePort(t)
	_, port, _ := strings.Cut(freePort(t), ":")
	startDaemon(t, append(minionDaemonEnv(t, e, d, dir, "maint.summoner.test"),
		"SUMMONER_CONFIG="+cfg, "SUMMONER_HTTP_LISTEN="+addr, "SUMMONER_CHAT_OPS_CHANNEL="+ch.Name,
		"SUMMONER_PERMISSIONS_ADMINS="+e.Admin.Username))
	waitHealthy(t, addr)

	say := sayer(t, e, admin, ch.Id, 2*time.Minute)
	if r := say("summon testmin HTTP_PORT="+port, "is up", "wrong", "failed"); !strings.Contains(r, "is up") {
		t.Fatalf("summon: %q", r)
	}
	r := say("dump testmin", "Dumped", "failed", "wrong")
	if !strings.Contains(r, "Dumped testmin: testmin/") || !strings.Contains(r, "checked and stored on disk") {
		t.Fatalf("dump: %q", r)
	}
	id := strings.Fields(strings.TrimPrefix(r[strings.Index(r, "testmin/"):], ""))[0]
	if r := say("backups testmin", "testmin/", "No backups"); !strings.Contains(r, id) {
		t.Fatalf("backups does not list %s:\n%s", id, r)
	}

	// A big table makes a dump last long enough to kill the database while
	// it runs: the scheduled dump fails, loudly, and stores nothing.
	var dbID string
	for _, c := range d.Containers(t, minion) {
		if c.Labels["summoner.role"] == "db" {
			dbID = c.ID
		}
	}
	if out, code := d.Exec(t, dbID, nil, "psql", "-U", "app", "-d", "appdb", "-h", "127.0.0.1", "-tAc",
		"CREATE TABLE big AS SELECT i, md5(i::text) || md5((i + 1)::text) AS body FROM generate_series(1, 3000000) i"); code != 0 {
		t.Fatalf("filling the database: %s", out)
	}
	set := time.Now()
	if r := say("schedule set dump */2 * * * * *", "now runs", "rights", "not"); !strings.Contains(r, "The scheduled dump now runs at `*/2 * * * * *`") {
		t.Fatalf("schedule set: %q", r)
	}
	// The container's processes show in the host's /proc.
	waitFor(t, "a scheduled pg_dump to run", time.Minute, func() bool { return len(pidsOf("pg_dump")) > 0 })
	if err := d.Client.ContainerKill(context.Background(), dbID, "KILL"); err != nil {
		t.Fatal(err)
	}
	// Kept down, so no later run can store a dump either.
	_ = d.Client.ContainerStop(context.Background(), dbID, container.StopOptions{})
	report := waitPost(t, admin, ch.Id, set, func(p *model.Post) bool {
		return strings.Contains(p.Message, "⚠️") && strings.Contains(p.Message, "testmin") && !strings.Contains(p.Message, "not running")
	})
	t.Logf("ops report: %s", report.Message)
	if r := say("schedule off dump", "is off", "rights"); !strings.Contains(r, "The scheduled dump is off.") {
		t.Fatalf("schedule off: %q", r)
	}
	if r := say("schedule", "| job |"); !strings.Contains(r, "| dump | `off`") {
		t.Fatalf("schedule list: %q", r)
	}
	// Only the dump from chat is stored: the killed one left nothing.
	if r := say("backups testmin", "testmin/", "No backups"); strings.Count(r, "testmin/") != 1 || !strings.Contains(r, id) {
		t.Fatalf("backups after the killed dump:\n%s", r)
	}
}

// waitPost waits for a post in the channel since since that satisfies ok.
func waitPost(t *testing.T, c *model.Client4, channelID string, since time.Time, ok func(*model.Post) bool) *model.Post {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		list, _, err := c.GetPostsSince(channelID, since.UnixMilli()-1000, false)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range list.Posts {
			if ok(p) {
				return p
			}
		}
		if time.Now().After(deadline) {
			var msgs []string
			for _, p := range list.Posts {
				msgs = append(msgs, p.Message)
			}
			t.Fatalf("no such post within a minute; posts: %q", msgs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sayer posts commands to the bot as c in a channel; each call returns the
// bot's answer once its text holds one of done (long commands post
// progress first, then edit it into the result).
func sayer(t *testing.T, e *mmtest.Env, c *model.Client4, channelID string, timeout time.Duration) func(text string, done ...string) string {
	return func(text string, done ...string) string {
		t.Helper()
		p := mmtest.Post(t, c, channelID, "", "@"+e.BotUsername+" "+text)
		r := mmtest.WaitReply(t, c, p, 30*time.Second)
		return mmtest.WaitEdited(t, c, r.Id, timeout, func(s string) bool {
			for _, w := range done {
				if strings.Contains(s, w) {
					return true
				}
			}
			return false
		}).Message
	}
}
