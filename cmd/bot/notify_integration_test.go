package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/internal/mmtest"
	"github.com/summoner-bot/summoner/minions"
)

const (
	glSecret    = "gitlab-token-for-the-tests-0001"
	ghSecret    = "github-hmac-key-for-the-tests-01"
	slackSecret = "slack-path-secret-for-tests-0001"
)

// hookBot is a running bot with webhook sources and recipes.
type hookBot struct {
	addr string
	env  []string
	d    *daemon
}

// startHookBot runs the real binary against the real Mattermost, with the
// recipes of recipesYAML (indented for "notifications:").
func startHookBot(t *testing.T, e *mmtest.Env, dir string, extra []string, recipesYAML string) *hookBot {
	t.Helper()
	cfg := writeConfig(t, "notifications:\n  sources:\n"+
		"    - {name: gl, kind: gitlab, secret: "+glSecret+"}\n"+
		"    - {name: gh, kind: github, secret: "+ghSecret+"}\n"+
		"    - {name: tool, kind: slack, secret: "+slackSecret+"}\n"+
		"    - {name: alerts, kind: generic, secret: "+genericSecret+"}\n"+
		"  recipes:\n"+recipesYAML)
	b := &hookBot{addr: freePort(t)}
	b.env = append([]string{
		"SUMMONER_CONFIG=" + cfg, "SUMMONER_HTTP_LISTEN=" + b.addr,
		"SUMMONER_CHAT_URL=" + e.URL, "SUMMONER_CHAT_TOKEN=" + e.BotToken, "SUMMONER_CHAT_TEAM=" + e.Team,
		"SUMMONER_CHAT_STATE_FILE=" + filepath.Join(dir, "chat.json"),
		"SUMMONER_DOCKER_STATE_DIR=" + filepath.Join(dir, "state"),
		"SUMMONER_VSROOT=" + filepath.Join(dir, "volumes"), "SUMMONER_DBSROOT=" + filepath.Join(dir, "databases"),
	}, extra...)
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		b.env = append(b.env, "DOCKER_HOST="+h)
	}
	b.d = startDaemon(t, b.env)
	return b
}

// send posts a webhook and returns the HTTP status.
func (b *hookBot) send(t *testing.T, path string, h http.Header, body []byte) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+b.addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("sending a webhook: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gitlab sends a GitLab event, as GitLab does.
func (b *hookBot) gitlab(t *testing.T, event string, body []byte, uuid string) int {
	return b.send(t, "/hooks/gl", http.Header{"X-Gitlab-Token": {glSecret}, "X-Gitlab-Event": {event}, "X-Gitlab-Event-Uuid": {uuid}}, body)
}

// github sends a GitHub event, signed with HMAC-SHA256 as GitHub does.
func (b *hookBot) github(t *testing.T, event string, body []byte, delivery string) int {
	mac := hmac.New(sha256.New, []byte(ghSecret))
	mac.Write(body)
	return b.send(t, "/hooks/gh", http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))},
		"X-Github-Event": {event}, "X-Github-Delivery": {delivery}}, body)
}

func (b *hookBot) slack(t *testing.T, text string) int {
	body, _ := json.Marshal(map[string]string{"text": text})
	return b.send(t, "/hooks/tool/"+slackSecret, http.Header{}, body)
}

// payload reads a documented payload and applies edits to it (a dotted
// path to a new value).
func payload(t *testing.T, name string, edits map[string]any) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("../../notifications/testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for path, v := range edits {
		keys := strings.Split(path, ".")
		cur := m
		for _, k := range keys[:len(keys)-1] {
			cur = cur[k].(map[string]any)
		}
		cur[keys[len(keys)-1]] = v
	}
	out, _ := json.Marshal(m)
	return out
}

// botPosts lists the bot's root posts in a channel, oldest first.
func botPosts(t *testing.T, c *model.Client4, e *mmtest.Env, channelID string) []string {
	t.Helper()
	botID := e.UserID(t, c, e.BotUsername)
	var all []*model.Post
	for page := 0; ; page++ {
		list, _, err := c.GetPostsForChannel(channelID, page, 200, "", false)
		if err != nil {
			t.Fatalf("reading channel posts: %v", err)
		}
		for _, id := range list.Order {
			all = append(all, list.Posts[id])
		}
		if len(list.Order) < 200 {
			break
		}
	}
	var out []string
	for i := len(all) - 1; i >= 0; i-- {
		if p := all[i]; p.UserId == botID && p.RootId == "" {
			out = append(out, p.Message)
		}
	}
	return out
}

// waitPost waits until the bot posted a message containing want.
func waitBotPost(t *testing.T, c *model.Client4, e *mmtest.Env, channelID, want string, timeout time.Duration) []string {
	t.Helper()
	var posts []string
	waitFor(t, fmt.Sprintf("a post with %q", want), timeout, func() bool {
		posts = botPosts(t, c, e, channelID)
		for _, p := range posts {
			if strings.Contains(p, want) {
				return true
			}
		}
		return false
	})
	return posts
}

func count(posts []string, sub string) int {
	n := 0
	for _, p := range posts {
		if strings.Contains(p, sub) {
			n++
		}
	}
	return n
}

// TestWebhooksToChat: documented GitLab and GitHub payloads reach the
// configured channels through the recipes, the status-changed filter posts
// only on a change, and bad deliveries post nothing.
func TestWebhooksToChat(t *testing.T) {
	e := mmtest.FromEnv(t)
	dev, changes := e.NewChannel(t), e.NewChannel(t)
	b := startHookBot(t, e, t.TempDir(), []string{"SUMMONER_PERMISSIONS_OPERATORS=" + e.Operator.Username},
		"    - {name: pipelines, source: gl, events: [pipeline], branches: [master], actions: [{post: {channel: "+dev.Name+", template: \"CI {{.Project}} {{.Ref}} {{.Status}} [pipeline]({{.URL}})\"}}]}\n"+
			"    - {name: gl-push, source: gl, events: [push], actions: [{post: {channel: "+dev.Name+", template: \"PUSH {{.Project}} {{.Ref}} {{.Title}} {{.URL}}\"}}]}\n"+
			"    - {name: runs, source: gh, events: [workflow_run], actions: [{post: {channel: "+dev.Name+", template: \"RUN {{.Project}} {{.Ref}} {{.Status}} {{.URL}}\"}}]}\n"+
			"    - {name: gh-push, source: gh, events: [push], actions: [{post: {channel: "+dev.Name+", template: \"PUSH {{.Project}} {{.Ref}} {{.URL}}\"}}]}\n"+
			"    - {name: flips, source: gl, events: [pipeline], status_changed: true, actions: [{post: {channel: "+changes.Name+", template: \"FLIP {{.Ref}} {{.Status}}\"}}]}\n"+
			"    - {name: marks, source: tool, actions: [{post: {channel: "+changes.Name+", template: \"{{.Text}}\"}}]}\n")
	waitHealthy(t, b.addr)
	c := e.Client(t, e.Member)

	// Provider payloads, as documented.
	if code := b.gitlab(t, "Pipeline Hook", payload(t, "gitlab_pipeline.json", nil), newID()); code != http.StatusAccepted {
		t.Fatalf("gitlab pipeline: HTTP %d", code)
	}
	b.gitlab(t, "Push Hook", payload(t, "gitlab_doc_push.json", nil), newID())
	b.github(t, "workflow_run", payload(t, "github_doc_workflow_run_completed.json", nil), newID())
	b.github(t, "workflow_run", payload(t, "github_doc_workflow_run_failure.json", nil), newID())
	b.github(t, "push", payload(t, "github_doc_push_branch.json", nil), newID())
	posts := waitBotPost(t, c, e, dev.Id, "PUSH ", 30*time.Second)
	waitFor(t, "five posts in the dev channel", 30*time.Second, func() bool {
		posts = botPosts(t, c, e, dev.Id)
		return len(posts) >= 5
	})
	for _, want := range []string{
		"CI gitlab-org/gitlab-test master success [pipeline](http://example.com/gitlab-org/gitlab-test/-/pipelines/31)",
		"RUN ", " success ", " failed ", "PUSH ",
	} {
		if count(posts, want) == 0 {
			t.Errorf("no post with %q in %q", want, posts)
		}
	}
	if len(posts) != 5 {
		t.Errorf("%d posts in the dev channel, want 5: %q", len(posts), posts)
	}

	// Status changed: failed → success posts, success → success does not.
	ref := "flip-" + newID()
	for _, status := range []string{"failed", "success", "success"} {
		b.gitlab(t, "Pipeline Hook", payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": ref, "object_attributes.status": status}), newID())
	}
	// Rejections: a wrong or missing signature, a replay, a 10 MiB body.
	bad := payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": "forged", "object_attributes.status": "failed"})
	if code := b.send(t, "/hooks/gl", http.Header{"X-Gitlab-Token": {"wrong-token-0123456789"}}, bad); code != http.StatusUnauthorized {
		t.Errorf("wrong gitlab token: HTTP %d, want 401", code)
	}
	if code := b.send(t, "/hooks/gh", http.Header{"X-Github-Event": {"push"}}, bad); code != http.StatusUnauthorized {
		t.Errorf("missing github signature: HTTP %d, want 401", code)
	}
	if code := b.send(t, "/hooks/tool/not-the-secret-000000000", http.Header{}, []byte(`{"text":"FORGED"}`)); code != http.StatusUnauthorized && code != http.StatusNotFound {
		t.Errorf("wrong slack secret: HTTP %d, want 401 or 404", code)
	}
	replay := newID()
	body := payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": "replayed-" + ref, "object_attributes.status": "failed"})
	if code := b.gitlab(t, "Pipeline Hook", body, replay); code != http.StatusAccepted {
		t.Errorf("first delivery: HTTP %d", code)
	}
	if code := b.gitlab(t, "Pipeline Hook", body, replay); code != http.StatusOK {
		t.Errorf("replayed delivery: HTTP %d, want 200 (duplicate)", code)
	}
	huge := append([]byte(`{"object_kind":"pipeline","x":"`), bytes.Repeat([]byte("a"), 10<<20)...)
	huge = append(huge, `"}`...)
	if code := b.gitlab(t, "Pipeline Hook", huge, newID()); code != http.StatusRequestEntityTooLarge {
		t.Errorf("10 MiB body: HTTP %d, want 413", code)
	}
	// Events are handled in order: once the mark is posted, all before it are.
	b.slack(t, "MARK "+ref)
	posts = waitBotPost(t, c, e, changes.Id, "MARK "+ref, 30*time.Second)
	if got := count(posts, "FLIP "+ref+" "); got != 2 {
		t.Errorf("status-changed recipe posted %d times for %s, want 2 (failed, then fixed): %q", got, ref, posts)
	}
	if count(posts, "FLIP "+ref+" failed") != 1 || count(posts, "FLIP "+ref+" success") != 1 {
		t.Errorf("status-changed posts: %q", posts)
	}
	if got := count(posts, "FLIP replayed-"+ref); got != 1 {
		t.Errorf("a replayed delivery posted %d times, want once", got)
	}
	if count(posts, "forged") != 0 || count(posts, "FORGED") != 0 {
		t.Errorf("a refused delivery was posted: %q", posts)
	}
	if n := len(botPosts(t, c, e, dev.Id)); n != 5 {
		t.Errorf("the dev channel has %d posts now, want still 5", n)
	}

	// hooks shows the sources, their last delivery, and the recipes.
	op := e.Client(t, e.Operator)
	ask := mmtest.Post(t, op, changes.Id, "", "@"+e.BotUsername+" hooks")
	reply := mmtest.WaitReply(t, op, ask, 30*time.Second).Message
	for _, want := range []string{
		"`gl` (gitlab) at `http://" + b.addr + "/hooks/gl`: ⚠️ last delivery", "body too large (413)",
		"`gh` (github) at `http://" + b.addr + "/hooks/gh`: ⚠️ last delivery", "signature check failed (401)",
		"`tool` (slack) at `http://" + b.addr + "/hooks/tool/***`", "accepted (202)",
		"`flips`: from `gl`, events pipeline; only when the status changed → post to ~" + changes.Name + ". Last run",
	} {
		if !strings.Contains(reply, want) {
			t.Errorf("hooks reply lacks %q:\n%s", want, reply)
		}
	}
	if strings.Contains(reply, slackSecret) {
		t.Error("hooks shows the slack source's secret")
	}
	ask = mmtest.Post(t, op, changes.Id, "", "@"+e.BotUsername+" hooks test flips pipeline-failed")
	reply = mmtest.WaitReply(t, op, ask, 30*time.Second).Message
	if !strings.Contains(reply, "> FLIP master failed") || !strings.Contains(reply, "nothing was posted") {
		t.Errorf("hooks test reply: %s", reply)
	}
}

// TestWebhooksSurviveOutages: 200 events sent while Mattermost is down
// all appear once each, in order, when it is back; the same with a bot
// restart in the middle.
func TestWebhooksSurviveOutages(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "chat-down"
		if restart {
			name += "-bot-restarted"
		}
		t.Run(name, func(t *testing.T) { webhookOutage(t, restart) })
	}
}

func webhookOutage(t *testing.T, restart bool) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	dir := t.TempDir()
	b := startHookBot(t, e, dir, nil, "    - {name: relay, source: tool, actions: [{post: {channel: "+ch.Name+", template: \"{{.Text}}\"}}]}\n")
	waitHealthy(t, b.addr)
	t.Cleanup(func() { mattermostCtl(t, "start") }) // whatever happens below
	mattermostCtl(t, "stop")
	run := newID()
	text := func(i int) string { return fmt.Sprintf("event %s %03d", run, i) }
	for i := 1; i <= 200; i++ {
		if i == 101 && restart {
			b.d.stop(t)
			b.d = startDaemon(t, b.env)
			waitFor(t, "the restarted bot's HTTP server", 30*time.Second, func() bool {
				code, _ := healthz(b.addr)
				return code != 0
			})
		}
		if code := b.slack(t, text(i)); code != http.StatusAccepted {
			t.Fatalf("event %d: HTTP %d", i, code)
		}
	}
	mattermostCtl(t, "start")
	c := e.Client(t, e.Member)
	relayed := func() []string {
		var got []string
		for _, p := range botPosts(t, c, e, ch.Id) {
			if strings.HasPrefix(p, "event "+run) {
				got = append(got, p)
			}
		}
		return got
	}
	waitFor(t, "the 200 events in the channel", 3*time.Minute, func() bool {
		got := relayed()
		return len(got) >= 200 && strings.HasSuffix(got[len(got)-1], " 200")
	})
	// Let any double arrive before counting.
	b.slack(t, "event-sync "+run)
	waitBotPost(t, c, e, ch.Id, "event-sync "+run, time.Minute)
	got := relayed()
	if len(got) != 200 {
		t.Fatalf("%d posts, want 200 once each", len(got))
	}
	for i, p := range got {
		if p != text(i+1) {
			t.Fatalf("post %d is %q, want %q (in order)", i+1, p, text(i+1))
		}
	}
}

// greenBot starts a bot whose recipe deploy-on-green announces, then
// updates testmin to 1.1, when main's pipeline is green; testmin 1.0 is
// summoned from ops first.
func greenBot(t *testing.T, e *mmtest.Env, d *dockertest.Env, dir string, ops *model.Channel, domain string, extra ...string) *hookBot {
	t.Helper()
	_, hostPort, _ := strings.Cut(freePort(t), ":")
	b := startHookBot(t, e, dir, append(append(minionDaemonEnv(t, e, d, dir, domain),
		"SUMMONER_CHAT_OPS_CHANNEL="+ops.Name, "SUMMONER_PERMISSIONS_OPERATORS="+e.Operator.Username), extra...),
		"    - name: deploy-on-green\n      source: gl\n      events: [pipeline]\n      branches: [main]\n      statuses: [success]\n"+
			"      actions:\n        - post: {channel: "+ops.Name+", template: \"🚀 {{.Project}} is green on {{.Ref}}: deploying\"}\n"+
			"        - command: {line: update testmin 1.1, level: operator, channel: "+ops.Name+"}\n")
	waitHealthy(t, b.addr)
	op := e.Client(t, e.Operator)
	p := mmtest.Post(t, op, ops.Id, "", "@"+e.BotUsername+" summon testmin HTTP_PORT="+hostPort)
	r := mmtest.WaitReply(t, op, p, 30*time.Second)
	if got := mmtest.WaitEdited(t, op, r.Id, 2*time.Minute, func(s string) bool { return strings.Contains(s, " is up") || strings.Contains(s, "wrong") }).Message; !strings.Contains(got, "testmin 1.0 is up") {
		t.Fatalf("summon: %q", got)
	}
	return b
}

// TestDeployOnGreen: a pipeline success on main runs the configured update
// of a summoned minion, and its result is posted; a failure does not.
func TestDeployOnGreen(t *testing.T) {
	e, d, dir := minionEnv(t)
	ops := e.NewChannel(t)
	b := greenBot(t, e, d, dir, ops, "green.summoner.test")
	op := e.Client(t, e.Operator)

	// A failed pipeline on main and a green one on another branch deploy nothing.
	b.gitlab(t, "Pipeline Hook", payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": "main", "object_attributes.status": "failed"}), newID())
	b.gitlab(t, "Pipeline Hook", payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": "dev", "object_attributes.status": "success"}), newID())
	b.gitlab(t, "Pipeline Hook", payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": "main", "object_attributes.status": "success"}), newID())
	posts := waitBotPost(t, op, e, ops.Id, "testmin now runs 1.1 (was 1.0)", 3*time.Minute)
	if n := count(posts, "is green on"); n != 1 {
		t.Errorf("%d deploy announcements, want 1: %q", n, posts)
	}
	if count(posts, "🚀 gitlab-org/gitlab-test is green on main: deploying") != 1 {
		t.Errorf("announcement: %q", posts)
	}
	web := ""
	for _, c := range d.Containers(t, minion) {
		if c.Labels["summoner.role"] == "web" {
			web = c.ID
			if c.Labels["summoner.version"] != "1.1" {
				t.Errorf("web container runs %s, want 1.1", c.Labels["summoner.version"])
			}
		}
	}

	// A killed container: the alert, with its last log lines and without
	// the database password the app prints, reaches the ops channel.
	st, err := (&minions.StateStore{Dir: filepath.Join(dir, "state")}).Load(minion)
	if err != nil || st.Secrets["DB_PASSWORD"] == "" {
		t.Fatalf("the minion's state: %+v, %v", st, err)
	}
	killed := time.Now()
	if err := d.Client.ContainerKill(t.Context(), web, "KILL"); err != nil {
		t.Fatal(err)
	}
	posts = waitBotPost(t, op, e, ops.Id, "died", 30*time.Second)
	t.Logf("the alert reached the channel %v after the kill", time.Since(killed).Round(10*time.Millisecond))
	alert := ""
	for _, p := range posts {
		if strings.Contains(p, "died") {
			alert = p
		}
	}
	if !strings.Contains(alert, "testmin") || !strings.Contains(alert, "testapp 1.1 starting") || !strings.Contains(alert, "137") {
		t.Errorf("alert without the minion, its exit code or its last log lines:\n%s", alert)
	}
	if strings.Contains(alert, st.Secrets["DB_PASSWORD"]) {
		t.Errorf("the alert shows the database password:\n%s", alert)
	}
}

// TestDeployOnGreenWaitsForAFullQueue: with the one worker held and the
// queue full, a green pipeline's deploy is not lost: `hooks` shows it
// waiting, it runs once the worker frees up, and `hooks` says done only
// then. Nobody is asked to send anything again.
func TestDeployOnGreenWaitsForAFullQueue(t *testing.T) {
	e, d, dir := minionEnv(t)
	ops := e.NewChannel(t)
	b := greenBot(t, e, d, dir, ops, "full.summoner.test", "SUMMONER_CHAT_WORKERS=1", "SUMMONER_CHAT_QUEUE_SIZE=1")
	op := e.Client(t, e.Operator)
	depth := func() (running, waiting float64) {
		_, body := healthz(b.addr)
		running, _ = body["commands_running"].(float64)
		waiting, _ = body["commands_waiting"].(float64)
		return running, waiting
	}

	// With Docker frozen, `status` holds the one worker; `hooks` then
	// fills the queue, and answers once the worker frees up.
	thaw := freezeDocker(t)
	mmtest.Post(t, op, ops.Id, "", "@"+e.BotUsername+" status testmin")
	waitFor(t, "the worker to be held", 30*time.Second, func() bool { running, _ := depth(); return running == 1 })
	ask := mmtest.Post(t, op, ops.Id, "", "@"+e.BotUsername+" hooks")
	waitFor(t, "the queue to be full", 30*time.Second, func() bool { _, waiting := depth(); return waiting == 1 })
	if code := b.gitlab(t, "Pipeline Hook", payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": "main", "object_attributes.status": "success"}), newID()); code != http.StatusAccepted {
		t.Fatalf("pipeline event: HTTP %d", code)
	}
	waitFor(t, "the deploy to wait for the queue", 30*time.Second, func() bool {
		return strings.Contains(b.d.stderr.String(), "waits for a free place in the command queue")
	})
	if running, waiting := depth(); running != 1 || waiting != 1 {
		t.Fatalf("%v commands running and %v waiting when the deploy was refused, want 1 and 1", running, waiting)
	}
	thaw()

	// The queued `hooks` ran while the deploy could not have: one worker.
	r := mmtest.WaitReply(t, op, ask, time.Minute)
	before := mmtest.WaitEdited(t, op, r.Id, 2*time.Minute, func(s string) bool { return strings.Contains(s, "**Recipes**") }).Message
	line := recipeLine(before, "deploy-on-green")
	if strings.Contains(line, ": done.") || !strings.Contains(line, "waiting for a free place in my command queue") && !strings.Contains(line, "its command is queued or running") {
		t.Fatalf("hooks before the deploy ran:\n%s", before)
	}
	t.Logf("hooks before the deploy ran: %s", line)

	posts := waitBotPost(t, op, e, ops.Id, "testmin now runs 1.1 (was 1.0)", 3*time.Minute)
	if n := count(posts, "is green on main: deploying"); n != 1 {
		t.Errorf("%d deploy announcements, want 1: %q", n, posts)
	}
	for _, c := range d.Containers(t, minion) {
		if c.Labels["summoner.role"] == "web" && c.Labels["summoner.version"] != "1.1" {
			t.Errorf("web container runs %s, want 1.1", c.Labels["summoner.version"])
		}
	}
	var after string
	waitFor(t, "hooks to show the deploy done", time.Minute, func() bool {
		ask := mmtest.Post(t, op, ops.Id, "", "@"+e.BotUsername+" hooks")
		after = recipeLine(mmtest.WaitReply(t, op, ask, time.Minute).Message, "deploy-on-green")
		return strings.Contains(after, "Last run") && strings.Contains(after, ": done.")
	})
	if strings.Contains(after, "⏳") {
		t.Errorf("hooks after the deploy still shows something waiting:\n%s", after)
	}
	for _, p := range botPosts(t, op, e, ops.Id) {
		if strings.Contains(p, "again in a minute") || strings.Contains(p, "queue is full") {
			t.Errorf("a post asks to send a command again: %q", p)
		}
	}
}

// recipeLine is a recipe's entry in a hooks reply, with its sub-lines.
func recipeLine(reply, recipe string) string {
	_, rest, ok := strings.Cut(reply, "- `"+recipe+"`")
	if !ok {
		return ""
	}
	if i := strings.Index(rest, "\n- "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}
