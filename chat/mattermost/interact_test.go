package mattermost

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
)

// propsRecorder is the outbox as the handlers see it.
type propsRecorder struct {
	*chattest.Recorder
	mu    sync.Mutex
	props []map[string]any
}

func (p *propsRecorder) ReplyWithProps(ctx context.Context, m chat.Message, text string, props map[string]any) (chat.PostRef, error) {
	p.mu.Lock()
	p.props = append(p.props, props)
	p.mu.Unlock()
	return p.Reply(ctx, m, text)
}

// fakeRunner stands for the queue and the router: it answers each command
// through ix, then says it finished. A "slow" command says "step 1", lets
// the quick-answer wait expire, and finishes ("all done") only when the
// test closes release, after the slash response went out: no wall clock
// decides which comes first.
type fakeRunner struct {
	ix      *Interact
	expire  chan time.Time // the fake quick-answer timer
	release chan struct{}  // lets a slow command finish
	mu      sync.Mutex
	got     []chat.Message
	wg      sync.WaitGroup
}

func (f *fakeRunner) Handle(ctx context.Context, m chat.Message) {
	f.mu.Lock()
	f.got = append(f.got, m)
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		switch {
		case strings.HasPrefix(m.Text, "purge"):
			_, _ = f.ix.ReplyConfirm(ctx, m, "⚠️ This deletes wekan.\nTo go ahead, answer `confirm 123456` within 5 minutes.", "123456")
		case strings.HasPrefix(m.Text, "slow"):
			ref, _ := f.ix.Reply(ctx, m, "step 1")
			f.expire <- time.Now() // the slash handler is waiting: too slow now
			<-f.release
			_ = f.ix.Update(ctx, ref, "all done")
		default:
			_, _ = f.ix.Reply(ctx, m, "answer to "+m.Text)
		}
		f.ix.Finished(m.ID)
	}()
}

func (f *fakeRunner) messages() []chat.Message {
	f.wg.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]chat.Message(nil), f.got...)
}

type fakeConfirm struct{ cancelled []string }

func (c *fakeConfirm) CheckConfirmation(code, userID string) error {
	if code != "123456" {
		return errors.New("No command is waiting for the code `" + code + "`.")
	}
	return nil
}

func (c *fakeConfirm) CancelConfirmation(code, userID string) (string, error) {
	c.cancelled = append(c.cancelled, code)
	return "purge", nil
}

type interactFixture struct {
	ix      *Interact
	run     *fakeRunner
	out     *propsRecorder
	conf    *fakeConfirm
	srv     *httptest.Server // stands in for Mattermost's REST API
	dialogs []model.OpenDialogRequest
}

const testSlashToken = "slash-t0ken-never-printed"

func newInteractFixture(t *testing.T) *interactFixture {
	t.Helper()
	f := &interactFixture{out: &propsRecorder{Recorder: &chattest.Recorder{}}, conf: &fakeConfirm{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v4/posts/p1":
			p := &model.Post{Id: "p1", Message: "⚠️ This deletes wekan.\nTo go ahead, answer `confirm 123456` within 5 minutes."}
			p.SetProps(model.StringInterface{"attachments": []any{}, replyProp: "m1"})
			_ = json.NewEncoder(w).Encode(p)
		case "/api/v4/users/ids":
			_ = json.NewEncoder(w).Encode([]*model.User{{Id: "u2", Username: "olga"}})
		case "/api/v4/channels/c1":
			_ = json.NewEncoder(w).Encode(&model.Channel{Id: "c1", Name: "ops", Type: model.ChannelTypeOpen})
		case "/api/v4/actions/dialogs/open":
			var d model.OpenDialogRequest
			_ = json.NewDecoder(r.Body).Decode(&d)
			f.dialogs = append(f.dialogs, d)
			_, _ = w.Write([]byte(`{"status":"OK"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	a, err := New(Options{URL: f.srv.URL, Token: "bot-t0ken", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	f.run = &fakeRunner{expire: make(chan time.Time), release: make(chan struct{})}
	f.ix, err = NewInteract(InteractOptions{
		CallbackURL: "http://127.0.0.1:8079/", SlashToken: testSlashToken,
		Poster: f.out, Handler: f.run, Confirm: f.conf, Adapter: a, QuickReply: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dialog: func(_ context.Context, _ chat.User, text string) (*Dialog, bool) {
			if text != "summon testmin" {
				return nil, false
			}
			return &Dialog{Command: text, Title: "Summon testmin", Fields: []DialogField{
				{Name: "HTTP_PORT", Label: "HTTP_PORT", Default: "8080"}, {Name: "PASSWORD", Label: "PASSWORD", Secret: true, Default: "x"}}}, true
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The quick-answer wait ends only when a command answers or the fake
	// runner expires it.
	f.ix.quickTimer = func(d time.Duration) (<-chan time.Time, func() bool) {
		if d != 100*time.Millisecond {
			t.Errorf("quick-answer wait %v, want the configured 100ms", d)
		}
		return f.run.expire, func() bool { return true }
	}
	f.run.ix = f.ix
	return f
}

func (f *interactFixture) post(t *testing.T, path, contentType, body string, out any) int {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	f.ix.ServeHTTP(w, req)
	if out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("%s answered %d %q: %v", path, w.Code, w.Body, err)
		}
	}
	if strings.Contains(w.Body.String(), testSlashToken) {
		t.Fatal("the answer shows the slash token")
	}
	return w.Code
}

func slashForm(token, text string) string {
	return url.Values{"token": {token}, "user_id": {"u2"}, "user_name": {"olga"}, "channel_id": {"c1"},
		"channel_name": {"ops"}, "text": {text}, "trigger_id": {"trig"}}.Encode()
}

const form = "application/x-www-form-urlencoded"

func TestSlashCommand(t *testing.T) {
	tests := []struct {
		name, token, text string
		status            int
		want              string // in the response's text
		posted            []string
	}{
		{"wrong token", "nope", "status", http.StatusUnauthorized, "", nil},
		{"no token", "", "status", http.StatusUnauthorized, "", nil},
		{"quick answer comes back in the response", testSlashToken, "status", http.StatusOK, "answer to status", nil},
		{"slow answer follows in the channel", testSlashToken, "slow", http.StatusOK, "⏳ Working on `slow`", []string{"all done"}},
		{"values stay out of the note", testSlashToken, "slow PASSWORD=hunter2", http.StatusOK, "`slow PASSWORD=***`", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newInteractFixture(t)
			var resp commandResponse
			var out any = &resp
			if tt.status != http.StatusOK {
				out = nil
			}
			code := f.post(t, SlashPath, form, slashForm(tt.token, tt.text), out)
			close(f.run.release) // the response is out: a slow command may finish
			if code != tt.status {
				t.Fatalf("status %d, want %d", code, tt.status)
			}
			got := f.run.messages()
			if tt.status != http.StatusOK {
				if len(got) != 0 {
					t.Fatalf("ran %v with a bad token", got)
				}
				return
			}
			if !strings.Contains(resp.Text, tt.want) || resp.ResponseType != "in_channel" {
				t.Fatalf("response %+v, want %q", resp, tt.want)
			}
			if len(got) != 1 || got[0].User != (chat.User{ID: "u2", Username: "olga"}) || got[0].Channel.Name != "ops" || got[0].Text != tt.text {
				t.Fatalf("ran %+v", got)
			}
			if tt.posted != nil {
				if posts := f.out.Posts(); len(posts) != 1 || posts[0].Text != tt.posted[0] {
					t.Fatalf("posted %+v, want %v", posts, tt.posted)
				}
			} else if tt.want == "answer to status" && len(f.out.Posts()) != 0 {
				t.Fatalf("a quick answer was posted too: %+v", f.out.Posts())
			}
		})
	}
}

// pressBody is what Mattermost sends when userID presses a button of the
// confirmation the slash command "purge wekan" showed.
func pressBody(t *testing.T, f *interactFixture, userID, action string, tamper func(map[string]any)) string {
	t.Helper()
	var resp commandResponse
	f.post(t, SlashPath, form, slashForm(testSlashToken, "purge wekan"), &resp)
	if len(resp.Attachments) != 1 || len(resp.Attachments[0].Actions) != 2 {
		t.Fatalf("no buttons: %+v", resp)
	}
	if !strings.Contains(resp.Text, "`confirm 123456`") {
		t.Fatalf("the typed code is gone: %q", resp.Text)
	}
	var ctx map[string]any
	for _, a := range resp.Attachments[0].Actions {
		if a.Id == action {
			if a.Integration.URL != "http://127.0.0.1:8079"+ActionsPath {
				t.Fatalf("integration URL %q", a.Integration.URL)
			}
			ctx = a.Integration.Context
		}
	}
	if tamper != nil {
		tamper(ctx)
	}
	b, _ := json.Marshal(model.PostActionIntegrationRequest{UserId: userID, UserName: map[string]string{"u2": "olga", "u1": "alice"}[userID],
		ChannelId: "c1", ChannelName: "ops", PostId: "p1", Context: ctx})
	return string(b)
}

func TestConfirmationButtons(t *testing.T) {
	tests := []struct {
		name, user, action string
		tamper             func(map[string]any)
		status             int
		ephemeral, update  string
		ran                string // the command run after the purge itself
	}{
		{"owner confirms", "u2", "confirm", nil, http.StatusOK, "", "⚠️ This deletes wekan.\n\n✅ Confirmed by @olga; the result follows.", "confirm 123456"},
		{"owner cancels", "u2", "cancel", nil, http.StatusOK, "", "⚠️ This deletes wekan.\n\n✖️ Cancelled by @olga: `purge` did not run.", ""},
		{"another user is refused", "u1", "confirm", nil, http.StatusOK, "Only @olga can confirm this.", "", ""},
		{"another code is refused", "u2", "confirm", func(c map[string]any) { c["code"] = "654321" }, http.StatusForbidden, "don't recognise", "", ""},
		{"another owner is refused", "u1", "confirm", func(c map[string]any) { c["owner"], c["owner_name"] = "u1", "alice" }, http.StatusForbidden, "don't recognise", "", ""},
		{"no signature is refused", "u2", "confirm", func(c map[string]any) { delete(c, "sig") }, http.StatusForbidden, "don't recognise", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newInteractFixture(t)
			var resp actionResponse
			if code := f.post(t, ActionsPath, "application/json", pressBody(t, f, tt.user, tt.action, tt.tamper), &resp); code != tt.status {
				t.Fatalf("status %d, want %d", code, tt.status)
			}
			if !strings.Contains(resp.EphemeralText, tt.ephemeral) || (tt.ephemeral == "") != (resp.EphemeralText == "") {
				t.Fatalf("ephemeral %q, want %q", resp.EphemeralText, tt.ephemeral)
			}
			switch {
			case tt.update == "" && resp.Update != nil:
				t.Fatalf("the post was changed: %+v", resp.Update)
			case tt.update != "":
				if resp.Update == nil || resp.Update.Message != tt.update {
					t.Fatalf("update %+v, want %q", resp.Update, tt.update)
				}
				if att, ok := resp.Update.GetProp("attachments").([]any); !ok || len(att) != 0 || resp.Update.GetProp(replyProp) != "m1" {
					t.Fatalf("update props %v: want no buttons, other props kept", resp.Update.GetProps())
				}
			}
			got := f.run.messages()
			if tt.ran == "" && len(got) != 1 {
				t.Fatalf("ran %+v", got)
			}
			if tt.ran != "" && (len(got) != 2 || got[1].Text != tt.ran || got[1].User.ID != "u2" || got[1].Channel.ID != "c1") {
				t.Fatalf("ran %+v, want %q", got, tt.ran)
			}
			if tt.action == "cancel" && len(f.conf.cancelled) != 1 {
				t.Fatalf("cancelled %v", f.conf.cancelled)
			}
		})
	}
}

// Buttons of a reply that goes through the outbox (a chat message, or a
// slow slash command) are in the post's props.
func TestButtonsThroughTheOutbox(t *testing.T) {
	f := newInteractFixture(t)
	m := chat.Message{ID: "m1", User: chat.User{ID: "u2", Username: "olga"}, Channel: chat.Channel{ID: "c1", Name: "ops"}, ThreadID: "m1"}
	if _, err := f.ix.ReplyConfirm(context.Background(), m, "sure?", "123456"); err != nil {
		t.Fatal(err)
	}
	if len(f.out.props) != 1 || len(attachmentsOf(f.out.props[0])) != 1 {
		t.Fatalf("props %v", f.out.props)
	}
	ctx := attachmentsOf(f.out.props[0])[0].Actions[0].Integration.Context
	b, _ := json.Marshal(model.PostActionIntegrationRequest{UserId: "u2", UserName: "olga", ChannelId: "c1", PostId: "p1", Context: ctx})
	var resp actionResponse
	if code := f.post(t, ActionsPath, "application/json", string(b), &resp); code != http.StatusOK || resp.Update == nil {
		t.Fatalf("%d %+v", code, resp)
	}
	if got := f.run.messages(); len(got) != 1 || got[0].ThreadID != "m1" {
		t.Fatalf("the confirmed run is not in the command's thread: %+v", got)
	}
	// The same button posted in another channel is refused.
	b, _ = json.Marshal(model.PostActionIntegrationRequest{UserId: "u2", ChannelId: "c9", PostId: "p1", Context: ctx})
	if code := f.post(t, ActionsPath, "application/json", string(b), nil); code != http.StatusForbidden {
		t.Fatalf("a button replayed in another channel: %d", code)
	}
}

func TestSummonDialog(t *testing.T) {
	f := newInteractFixture(t)
	var resp commandResponse
	if code := f.post(t, SlashPath, form, slashForm(testSlashToken, "summon testmin"), &resp); code != http.StatusOK || resp.Text != "" {
		t.Fatalf("%d %+v", code, resp)
	}
	if len(f.run.messages()) != 0 || len(f.dialogs) != 1 {
		t.Fatalf("ran %v, dialogs %v", f.run.messages(), f.dialogs)
	}
	d := f.dialogs[0]
	if d.TriggerId != "trig" || d.URL != "http://127.0.0.1:8079"+DialogPath || len(d.Dialog.Elements) != 2 ||
		d.Dialog.Elements[0].Default != "8080" || d.Dialog.Elements[1].SubType != "password" || d.Dialog.Elements[1].Default != "" {
		t.Fatalf("dialog %+v", d)
	}
	submit := func(user, state string) (int, model.SubmitDialogResponse) {
		b, _ := json.Marshal(model.SubmitDialogRequest{CallbackId: d.Dialog.CallbackId, State: state, UserId: user, ChannelId: "c1",
			Submission: map[string]any{"HTTP_PORT": "8081", "PASSWORD": "pass word"}})
		var r model.SubmitDialogResponse
		return f.post(t, DialogPath, "application/json", string(b), &r), r
	}
	if code, _ := submit("u1", d.Dialog.State); code != http.StatusForbidden {
		t.Fatalf("another user's submission: %d", code)
	}
	if code, _ := submit("u2", "1|x|y"); code != http.StatusForbidden {
		t.Fatalf("a forged state: %d", code)
	}
	if code, r := submit("u2", d.Dialog.State); code != http.StatusOK || r.Error != "" {
		t.Fatalf("%d %+v", code, r)
	}
	got := f.run.messages()
	if len(got) != 1 || got[0].Text != `summon testmin HTTP_PORT=8081 "PASSWORD=pass word"` || got[0].User.Username != "olga" || got[0].Channel.Name != "ops" {
		t.Fatalf("ran %+v", got)
	}
}

func TestCheckSetupHelpers(t *testing.T) {
	for _, tt := range []struct {
		host, allowed string
		local, ok     bool
	}{
		{"127.0.0.1", "127.0.0.1 localhost", true, true},
		{"127.0.0.1", "127.0.0.0/8", true, true},
		{"localhost", "127.0.0.1", true, false},
		{"10.1.2.3", "", true, false},
		{"bot.example.com", "", false, false},
	} {
		if isLocalHost(tt.host) != tt.local || containsField(tt.allowed, tt.host) != tt.ok {
			t.Errorf("%s in %q: local %v allowed %v", tt.host, tt.allowed, isLocalHost(tt.host), containsField(tt.allowed, tt.host))
		}
	}
}
