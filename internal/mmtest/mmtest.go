// Package mmtest is the integration-test harness for the real Mattermost
// server that .ci/services.sh starts: accounts from SUMMONER_IT_* variables,
// a fresh channel per test, members who post and wait for the bot's replies.
//
// Without the variables the tests skip, unless SUMMONER_INTEGRATION=1 (as in
// CI), where a missing server is a failure, never a silent skip.
package mmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/itgate"
)

// ReplyProp is the prop the bot tags its replies with.
const ReplyProp = "summoner_reply_to"

// Env is the provisioned server.
type Env struct {
	URL, Team, OpsChannel           string
	BotUsername, BotToken           string
	OtherBotToken, OtherBotUsername string
	Admin, Operator, Member         Account
	restart                         string
}

// Account is a login on the server.
type Account struct{ Username, Password string }

// FromEnv reads the server's details, skipping (or, in CI, failing) when
// they are absent.
func FromEnv(t testing.TB) *Env {
	t.Helper()
	get := func(k string) string { return os.Getenv("SUMMONER_IT_" + k) }
	e := &Env{
		URL: get("MM_URL"), Team: get("TEAM"), OpsChannel: get("OPS_CHANNEL"),
		BotUsername: get("BOT_USERNAME"), BotToken: get("BOT_TOKEN"), OtherBotToken: get("OTHERBOT_TOKEN"), OtherBotUsername: get("OTHERBOT_USERNAME"),
		Admin:    Account{get("ADMIN_USERNAME"), get("ADMIN_PASSWORD")},
		Operator: Account{get("OPERATOR_USERNAME"), get("OPERATOR_PASSWORD")},
		Member:   Account{get("MEMBER_USERNAME"), get("MEMBER_PASSWORD")},
		restart:  get("MM_RESTART"),
	}
	if e.URL == "" || e.BotToken == "" {
		itgate.Skip(t, "SUMMONER_IT_MM_URL/SUMMONER_IT_BOT_TOKEN are not set (no Mattermost server): start the services with `bash .ci/services.sh start` and source its env file")
	}
	return e
}

// Client logs an account in, once the server answers (right after a
// restart it may not yet).
func (e *Env) Client(t testing.TB, a Account) *model.Client4 {
	t.Helper()
	e.WaitUp(t, upTimeout)
	c := model.NewAPIv4Client(e.URL)
	if _, _, err := c.Login(a.Username, a.Password); err != nil {
		t.Fatalf("logging in as %s: %v", a.Username, err)
	}
	return c
}

// upTimeout is how long a restarted server may take to answer.
const upTimeout = 2 * time.Minute

// up reports whether the server answers its ping with status OK.
func (e *Env) up() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/api/v4/system/ping", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&body) == nil && body.Status == "OK"
}

// WaitUp waits until the server answers its ping.
func (e *Env) WaitUp(t testing.TB, timeout time.Duration) {
	t.Helper()
	poll(t, "the Mattermost server to answer", timeout, e.up)
}

// WaitDown waits until the server stops answering its ping.
func (e *Env) WaitDown(t testing.TB, timeout time.Duration) {
	t.Helper()
	poll(t, "the Mattermost server to go down", timeout, func() bool { return !e.up() })
}

// poll checks ok every 20 ms until it holds or timeout passes.
func poll(t testing.TB, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BotClient is a client with a bot's token.
func (e *Env) BotClient(token string) *model.Client4 {
	c := model.NewAPIv4Client(e.URL)
	c.SetToken(token)
	return c
}

// UserID looks a username up.
func (e *Env) UserID(t testing.TB, c *model.Client4, username string) string {
	t.Helper()
	u, _, err := c.GetUserByUsername(username, "")
	if err != nil {
		t.Fatalf("finding user %s: %v", username, err)
	}
	return u.Id
}

// NewChannel creates a channel only this test uses, with the bot, the other
// bot and the three accounts in it, and archives it when the test ends.
func (e *Env) NewChannel(t testing.TB) *model.Channel {
	t.Helper()
	admin := e.Client(t, e.Admin)
	team, _, err := admin.GetTeamByName(e.Team, "")
	if err != nil {
		t.Fatalf("finding team %s: %v", e.Team, err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	name := "it-" + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.Trim(name, "-") + "-" + hex.EncodeToString(suffix)
	ch, _, err := admin.CreateChannel(&model.Channel{TeamId: team.Id, Name: name, DisplayName: name, Type: model.ChannelTypeOpen})
	if err != nil {
		t.Fatalf("creating channel %s: %v", name, err)
	}
	for _, u := range []string{e.BotUsername, e.OtherBotUsername, e.Operator.Username, e.Member.Username} {
		if _, _, err := admin.AddChannelMember(ch.Id, e.UserID(t, admin, u)); err != nil {
			t.Fatalf("adding %s to %s: %v", u, name, err)
		}
	}
	t.Cleanup(func() { _, _ = admin.DeleteChannel(ch.Id) })
	return ch
}

// Restart restarts the Mattermost server and waits until it answers.
func (e *Env) Restart(t testing.TB) {
	t.Helper()
	e.StartRestart(t)()
}

// StartRestart begins restarting the Mattermost server and returns at once;
// the returned function waits until the restart is over and the server
// answers. Call it from the test's goroutine.
func (e *Env) StartRestart(t testing.TB) (wait func()) {
	t.Helper()
	if e.restart == "" {
		t.Fatal("SUMMONER_IT_MM_RESTART is not set")
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, "bash", "-c", e.restart).CombinedOutput()
		done <- result{out, err}
	}()
	return func() {
		t.Helper()
		r := <-done
		if r.err != nil {
			t.Fatalf("restarting Mattermost: %v\n%s", r.err, r.out)
		}
		e.WaitUp(t, upTimeout)
	}
}

// NewUser creates an account only this test uses, named username or, if
// that is "", a fresh random name; it joins the team and, if channelID is
// not "", that channel. It is deactivated when the test ends.
func (e *Env) NewUser(t testing.TB, channelID, username string) (Account, *model.User) {
	t.Helper()
	admin := e.Client(t, e.Admin)
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	if username == "" {
		username = "it-" + hex.EncodeToString(suffix)
	}
	a := Account{Username: username, Password: "It-pass-" + hex.EncodeToString(suffix)}
	u, _, err := admin.CreateUser(&model.User{Username: a.Username, Password: a.Password, Email: "it-" + hex.EncodeToString(suffix) + "-" + a.Username + "@summoner-it.example.com"})
	if err != nil {
		t.Fatalf("creating user %s: %v", a.Username, err)
	}
	t.Cleanup(func() { _, _ = admin.DeleteUser(u.Id) })
	team, _, err := admin.GetTeamByName(e.Team, "")
	if err != nil {
		t.Fatalf("finding team %s: %v", e.Team, err)
	}
	if _, _, err := admin.AddTeamMember(team.Id, u.Id); err != nil {
		t.Fatalf("adding %s to team %s: %v", a.Username, e.Team, err)
	}
	if channelID != "" {
		if _, _, err := admin.AddChannelMember(channelID, u.Id); err != nil {
			t.Fatalf("adding %s to channel %s: %v", a.Username, channelID, err)
		}
	}
	return a, u
}

// RenameUser gives an account a new username, as the system admin.
func (e *Env) RenameUser(t testing.TB, userID, username string) {
	t.Helper()
	if _, _, err := e.Client(t, e.Admin).PatchUser(userID, &model.UserPatch{Username: &username}); err != nil {
		t.Fatalf("renaming user %s to %s: %v", userID, username, err)
	}
}

// DeactivateUser deactivates an account, as the system admin.
func (e *Env) DeactivateUser(t testing.TB, userID string) {
	t.Helper()
	if _, err := e.Client(t, e.Admin).DeleteUser(userID); err != nil {
		t.Fatalf("deactivating user %s: %v", userID, err)
	}
}

// Post posts text as c in channel (in thread root if not "").
func Post(t testing.TB, c *model.Client4, channelID, root, text string) *model.Post {
	t.Helper()
	p, _, err := c.CreatePost(&model.Post{ChannelId: channelID, RootId: root, Message: text})
	if err != nil {
		t.Fatalf("posting %q: %v", text, err)
	}
	return p
}

// PostMany posts texts in channel as c, up to workers at once, so thousands
// of posts take seconds, not minutes. Their order in the channel is only
// roughly the slice's.
func PostMany(t testing.TB, c *model.Client4, channelID string, texts []string, workers int) {
	t.Helper()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	next := make(chan string)
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for text := range next {
				if _, _, err := c.CreatePost(&model.Post{ChannelId: channelID, Message: text}); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("posting %q: %w", text, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, text := range texts {
		next <- text
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// Replies lists the bot's replies to post, oldest first.
func Replies(t testing.TB, c *model.Client4, post *model.Post) []*model.Post {
	t.Helper()
	root := post.RootId
	if root == "" {
		root = post.Id
	}
	list, _, err := c.GetPostThread(root, "", false)
	if err != nil {
		t.Fatalf("reading the thread of %s: %v", post.Id, err)
	}
	var out []*model.Post
	list.SortByCreateAt()
	for i := len(list.Order) - 1; i >= 0; i-- {
		p := list.Posts[list.Order[i]]
		if p.GetProp(ReplyProp) == post.Id {
			out = append(out, p)
		}
	}
	return out
}

// WaitReply waits for the bot's first reply to post and returns it.
func WaitReply(t testing.TB, c *model.Client4, post *model.Post, timeout time.Duration) *model.Post {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if rs := Replies(t, c, post); len(rs) > 0 {
			return rs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reply to %q within %v", post.Message, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// WaitEdited waits until the post's text satisfies ok, and returns it.
func WaitEdited(t testing.TB, c *model.Client4, id string, timeout time.Duration, ok func(string) bool) *model.Post {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, _, err := c.GetPost(id, "")
		if err == nil && ok(p.Message) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("post %s did not reach the expected text within %v (last: %v)", id, timeout, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
