package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/mmtest"
)

// slashCommand creates a team slash command calling the bot at callback,
// with a trigger of its own so runs never meet an earlier one's, and
// returns the trigger and the token Mattermost gave it.
func slashCommand(t *testing.T, e *mmtest.Env, callback string) (trigger, token string) {
	t.Helper()
	admin := e.Client(t, e.Admin)
	team, _, err := admin.GetTeamByName(e.Team, "")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	cmd, _, err := admin.CreateCommand(&model.Command{TeamId: team.Id, Trigger: "summon-" + hex.EncodeToString(b),
		Method: model.CommandMethodPost, URL: callback + "/mattermost/slash", DisplayName: "Summoner", Description: "test"})
	if err != nil {
		t.Fatalf("creating the slash command: %v", err)
	}
	t.Cleanup(func() { _, _ = admin.DeleteCommand(cmd.Id) })
	return cmd.Trigger, cmd.Token
}

// interactEnv is a bot whose callbacks Mattermost reaches on addr.
func interactEnv(t *testing.T, e *mmtest.Env, addr, token string) []string {
	env := []string{
		"SUMMONER_CHAT_URL=" + e.URL, "SUMMONER_CHAT_TOKEN=" + e.BotToken, "SUMMONER_CHAT_TEAM=" + e.Team,
		"SUMMONER_HTTP_LISTEN=" + addr, "SUMMONER_CHAT_CALLBACK_URL=http://" + addr, "SUMMONER_CHAT_SLASH_TOKEN=" + token,
		"SUMMONER_PERMISSIONS_OPERATORS=" + e.Operator.Username, "SUMMONER_PERMISSIONS_ADMINS=" + e.Admin.Username,
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		env = append(env, "DOCKER_HOST="+h)
	}
	return env
}

// botPost waits for a post of the bot in the channel whose text has want.
func botPost(t *testing.T, e *mmtest.Env, c *model.Client4, channelID string, since time.Time, want string) *model.Post {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	botID := e.UserID(t, c, e.BotUsername)
	for {
		list, _, err := c.GetPostsSince(channelID, since.UnixMilli(), false)
		if err == nil {
			for _, p := range list.Posts {
				if p.UserId == botID && strings.Contains(p.Message, want) {
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bot never posted %q", want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSlashCommandThroughMattermost: `/summon status`, typed by a member
// through the real server's slash command, gets its answer; a command
// with a wrong token gets nothing run.
func TestSlashCommandThroughMattermost(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	addr := freePort(t)
	trigger, token := slashCommand(t, e, "http://"+addr)
	d := startDaemon(t, append(interactEnv(t, e, addr, token), "SUMMONER_CHAT_STATE_FILE="+filepath.Join(t.TempDir(), "state.json"),
		"SUMMONER_DOCKER_STATE_DIR="+t.TempDir()))
	waitHealthy(t, addr)

	member := e.Client(t, e.Member)
	since := time.Now()
	resp, _, err := member.ExecuteCommand(ch.Id, "/"+trigger+" help status")
	if err != nil {
		t.Fatalf("executing /%s: %v", trigger, err)
	}
	if !strings.Contains(resp.Text, "`status [minion]`") {
		t.Fatalf("/%s help status answered %+v", trigger, resp)
	}
	resp, _, err = member.ExecuteCommand(ch.Id, "/"+trigger+" status")
	if err != nil {
		t.Fatalf("executing /%s status: %v", trigger, err)
	}
	answer := resp.Text
	if strings.HasPrefix(answer, "⏳") { // slow: the answer follows in the channel
		answer = botPost(t, e, member, ch.Id, since, "minion").Message
	}
	if !strings.Contains(answer, "minion") {
		t.Fatalf("/%s status answered %q", trigger, answer)
	}
	// Rights are the caller's: a member may not restart anything.
	resp, _, err = member.ExecuteCommand(ch.Id, "/"+trigger+" restart testmin")
	if err != nil || !strings.Contains(resp.Text, "needs operator rights") {
		t.Fatalf("a member's restart: %+v %v", resp, err)
	}

	// A command whose token the bot does not know is refused.
	admin := e.Client(t, e.Admin)
	team, _, _ := admin.GetTeamByName(e.Team, "")
	bad, _, err := admin.CreateCommand(&model.Command{TeamId: team.Id, Trigger: trigger + "-bad",
		Method: model.CommandMethodPost, URL: "http://" + addr + "/mattermost/slash", DisplayName: "bad"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.DeleteCommand(bad.Id) })
	if _, _, err := member.ExecuteCommand(ch.Id, "/"+bad.Trigger+" status"); err == nil {
		t.Fatal("a slash command with another token was answered")
	}
	// Set up as the README says: the start-up check finds nothing missing.
	waitLog(t, d, "Mattermost set-up not checked")
	if out := d.stderr.String(); strings.Contains(out, "set-up incomplete") || strings.Contains(out, token) {
		t.Fatalf("start-up check complained, or the token leaked:\n%s", out)
	}
}

// waitLog waits for a line of the daemon's log.
func waitLog(t *testing.T, d *daemon, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(d.stderr.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", want, d.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConfirmButtonThroughMattermost: a purge asks for confirmation with
// buttons; another user's press runs nothing and leaves the buttons; the
// owner's press, through the real server, completes the purge.
func TestConfirmButtonThroughMattermost(t *testing.T) {
	e, d, dir := minionEnv(t)
	ch := e.NewChannel(t)
	addr, port := freePort(t), freePort(t)
	_, hostPort, _ := strings.Cut(port, ":")
	bot := startDaemon(t, append(minionDaemonEnv(t, e, d, dir, "buttons.summoner.test"), interactEnv(t, e, addr, "")...))
	waitHealthy(t, addr)
	// No slash token: the start-up check says so. The bot's token may not
	// list slash commands, so that one is a note to check by hand.
	waitLog(t, bot, "make sure one calls http://"+addr+"/mattermost/slash")
	waitLog(t, bot, "is not set, so I refuse every `/summon` request")

	admin, member := e.Client(t, e.Admin), e.Client(t, e.Member)
	say := func(text string, done func(string) bool) *model.Post {
		t.Helper()
		p := mmtest.Post(t, admin, ch.Id, "", "@"+e.BotUsername+" "+text)
		r := mmtest.WaitReply(t, admin, p, 30*time.Second)
		return mmtest.WaitEdited(t, admin, r.Id, 120*time.Second, done)
	}
	has := func(words ...string) func(string) bool {
		return func(s string) bool {
			for _, w := range words {
				if strings.Contains(s, w) {
					return true
				}
			}
			return false
		}
	}
	if r := say("summon testmin HTTP_PORT="+hostPort, has("is up", "wrong", "failed", "cannot")); !strings.Contains(r.Message, "is up") {
		t.Fatalf("summon: %q", r.Message)
	}
	ask := say("banish testmin --purge", has("confirm", "wrong"))
	att := ask.Attachments()
	if !strings.Contains(ask.Message, "`confirm ") || len(att) != 1 || len(att[0].Actions) != 2 {
		t.Fatalf("no confirmation buttons: %q %+v", ask.Message, att)
	}
	var confirmID string
	for _, a := range att[0].Actions {
		if a.Name == "Confirm" {
			confirmID = a.Id
		}
	}

	since := time.Now()
	if _, err := member.DoPostAction(ask.Id, confirmID); err != nil {
		t.Fatalf("the member's press: %v", err)
	}
	time.Sleep(2 * time.Second)
	if n := len(d.Containers(t, minion)); n != 2 {
		t.Fatalf("another user's press acted: %d containers left", n)
	}
	if p, _, _ := admin.GetPost(ask.Id, ""); len(p.Attachments()) != 1 || len(p.Attachments()[0].Actions) != 2 {
		t.Fatalf("another user's press changed the buttons: %+v", p)
	}

	if _, err := admin.DoPostAction(ask.Id, confirmID); err != nil {
		t.Fatalf("the owner's press: %v", err)
	}
	done := botPost(t, e, admin, ch.Id, since, "testmin is gone")
	if !strings.Contains(done.Message, "testmin is gone, with its data") {
		t.Fatalf("purge: %q", done.Message)
	}
	p, _, err := admin.GetPost(ask.Id, "")
	if err != nil || !strings.Contains(p.Message, "✅ Confirmed by @"+e.Admin.Username) || len(p.Attachments()) != 0 || strings.Contains(p.Message, "`confirm ") {
		t.Fatalf("the question after confirmation: %+v %v", p, err)
	}
	for _, dir := range []string{filepath.Join(dir, "volumes", minion), filepath.Join(dir, "databases", minion)} {
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("%s survived the purge: %v", dir, err)
		}
	}
}
