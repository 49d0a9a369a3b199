package mattermost

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
)

// The routes Mattermost calls back, under InteractOptions.CallbackURL.
const (
	SlashPath   = "/mattermost/slash"
	ActionsPath = "/mattermost/actions"
	DialogPath  = "/mattermost/dialog"
)

// PropsPoster is a chat.Poster whose replies can carry post properties
// (the outbox).
type PropsPoster interface {
	chat.Poster
	ReplyWithProps(ctx context.Context, m chat.Message, text string, props map[string]any) (chat.PostRef, error)
}

// Confirmations checks and cancels pending confirmation codes without
// running them (commands.Router).
type Confirmations interface {
	CheckConfirmation(code, userID string) error
	CancelConfirmation(code, userID string) (string, error)
}

// InteractOptions configure Interact.
type InteractOptions struct {
	// CallbackURL is how Mattermost reaches these handlers (no trailing
	// slash), e.g. http://127.0.0.1:8079.
	CallbackURL string
	// SlashToken is the token Mattermost shows for the /summon command;
	// "" refuses every slash request.
	SlashToken string
	// Key signs the buttons' and dialogs' context; default a random key
	// per process (pending confirmations do not survive a restart anyway).
	Key     []byte
	Poster  PropsPoster
	Handler chat.Handler // runs commands (commands.Queue)
	Confirm Confirmations
	Adapter *Adapter // user names, channel kinds, posts, dialogs
	// Dialog, if set, may turn a slash command into a dialog to fill in
	// (`summon <minion>` of a minion with settings).
	Dialog func(ctx context.Context, u chat.User, text string) (*Dialog, bool)
	// QuickReply is how long a slash command's answer may take to come
	// back in the response itself (default 2 s); a slower one is posted.
	QuickReply time.Duration
	Logger     *slog.Logger
}

// Dialog is an interactive dialog whose submission runs Command with the
// fields as KEY=value arguments (empty ones left out).
type Dialog struct {
	Command string // "summon wekan"
	Title   string
	Intro   string
	Fields  []DialogField
}

// DialogField is one setting in a dialog.
type DialogField struct {
	Name, Label, Help, Default string
	Secret, Optional           bool
}

// Interact is the HTTP end of Mattermost's integrations: the /summon slash
// command, the Confirm and Cancel buttons of destructive commands, and the
// summon dialog. It is also the chat.Poster the router writes to: replies
// to a slash command are held for the command's quick answer, then handed
// to the outbox; confirmation requests get buttons.
type Interact struct {
	o   InteractOptions
	log *slog.Logger
	mux *http.ServeMux

	// quickTimer starts the wait for a slash command's quick answer;
	// tests replace it so they decide when the wait is over instead of
	// racing a wall clock.
	quickTimer func(time.Duration) (expired <-chan time.Time, stop func() bool)

	mu    sync.Mutex
	runs  map[string]*slashRun // by message ID
	held  map[string]*heldPost // by local ref ID
	count int
}

// slashRun is a slash command waiting for its answer.
type slashRun struct {
	m        chat.Message
	started  time.Time
	posts    []*heldPost
	done     chan struct{} // closed when the command finished
	finished bool
	handed   bool // the response went out: replies go to the outbox
}

// heldPost is a reply held for a slash command's response.
type heldPost struct {
	run   *slashRun
	text  string
	props map[string]any
	real  chat.PostRef // once handed to the outbox
}

var (
	_ chat.Poster  = (*Interact)(nil)
	_ http.Handler = (*Interact)(nil)
)

// NewInteract makes the handlers.
func NewInteract(o InteractOptions) (*Interact, error) {
	if o.Poster == nil || o.Handler == nil || o.Confirm == nil || o.Adapter == nil {
		return nil, errors.New("interact: poster, handler, confirmations and adapter are required")
	}
	o.CallbackURL = strings.TrimRight(o.CallbackURL, "/")
	if len(o.Key) == 0 {
		o.Key = make([]byte, 32)
		if _, err := rand.Read(o.Key); err != nil {
			return nil, fmt.Errorf("interact: making a key: %w", err)
		}
	}
	if o.QuickReply <= 0 {
		o.QuickReply = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	ix := &Interact{o: o, log: o.Logger, quickTimer: wallTimer, runs: map[string]*slashRun{}, held: map[string]*heldPost{}}
	ix.mux = http.NewServeMux()
	ix.mux.HandleFunc("POST "+SlashPath, ix.slash)
	ix.mux.HandleFunc("POST "+ActionsPath, ix.action)
	ix.mux.HandleFunc("POST "+DialogPath, ix.dialog)
	return ix, nil
}

// wallTimer is the real quick-answer timer.
func wallTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// ServeHTTP serves the three routes.
func (ix *Interact) ServeHTTP(w http.ResponseWriter, r *http.Request) { ix.mux.ServeHTTP(w, r) }

// maxBody bounds what Mattermost sends us.
const maxBody = 64 << 10

// ---- the Poster the router writes to ----

// Post passes through.
func (ix *Interact) Post(ctx context.Context, to chat.Destination, text string) (chat.PostRef, error) {
	return ix.o.Poster.Post(ctx, to, text)
}

// Reply holds a reply to a slash command still within its quick-answer
// time; any other goes to the outbox.
func (ix *Interact) Reply(ctx context.Context, m chat.Message, text string) (chat.PostRef, error) {
	return ix.reply(ctx, m, text, nil)
}

// ReplyConfirm posts a confirmation request with Confirm and Cancel
// buttons; it implements commands.ConfirmPoster.
func (ix *Interact) ReplyConfirm(ctx context.Context, m chat.Message, text, code string) (chat.PostRef, error) {
	return ix.reply(ctx, m, text, ix.confirmProps(m, code))
}

func (ix *Interact) reply(ctx context.Context, m chat.Message, text string, props map[string]any) (chat.PostRef, error) {
	ix.mu.Lock()
	if run := ix.runs[m.ID]; run != nil && !run.handed {
		ix.count++
		id := "slash-post-" + strconv.Itoa(ix.count)
		p := &heldPost{run: run, text: text, props: props}
		run.posts = append(run.posts, p)
		ix.held[id] = p
		ix.mu.Unlock()
		return chat.PostRef{ID: id, ChannelID: m.Channel.ID}, nil
	}
	ix.mu.Unlock()
	if props != nil {
		return ix.o.Poster.ReplyWithProps(ctx, m, text, props)
	}
	return ix.o.Poster.Reply(ctx, m, text)
}

// Update edits a held reply in place, or the post it became.
func (ix *Interact) Update(ctx context.Context, ref chat.PostRef, text string) error {
	ix.mu.Lock()
	if p := ix.held[ref.ID]; p != nil {
		if !p.run.handed {
			p.text = text
			ix.mu.Unlock()
			return nil
		}
		ref = p.real
		ix.mu.Unlock()
		if ref.ID == "" {
			return errors.New("the reply this edits could not be posted")
		}
		return ix.o.Poster.Update(ctx, ref, text)
	}
	ix.mu.Unlock()
	return ix.o.Poster.Update(ctx, ref, text)
}

// Finished is told when a command has finished (the queue's journal
// says so): a slash command waiting for its answer has it now.
func (ix *Interact) Finished(id string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	run := ix.runs[id]
	if run == nil || run.finished {
		return
	}
	run.finished = true
	close(run.done)
	if run.handed {
		ix.forget(run)
	}
}

// forget drops a run and its held posts. Called with mu held.
func (ix *Interact) forget(run *slashRun) {
	delete(ix.runs, run.m.ID)
	for id, p := range ix.held {
		if p.run == run {
			delete(ix.held, id)
		}
	}
}

// ---- the slash command ----

// CommandResponse is what a slash command answers.
type commandResponse struct {
	ResponseType     string                   `json:"response_type"`
	Text             string                   `json:"text"`
	Attachments      []*model.SlackAttachment `json:"attachments,omitempty"`
	SkipSlackParsing bool                     `json:"skip_slack_parsing"`
}

func (ix *Interact) slash(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	token := r.PostForm.Get("token")
	if h := r.Header.Get("Authorization"); token == "" && strings.HasPrefix(h, "Token ") {
		token = strings.TrimPrefix(h, "Token ")
	}
	if !sameSecret(token, ix.o.SlashToken) {
		ix.log.Warn("refused a slash command with a wrong token", "remote", r.RemoteAddr, "user", r.PostForm.Get("user_name"))
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	f := r.PostForm
	userID, channelID := f.Get("user_id"), f.Get("channel_id")
	if userID == "" || channelID == "" {
		http.Error(w, "user_id and channel_id are required", http.StatusBadRequest)
		return
	}
	ctx := context.WithoutCancel(r.Context())
	text := strings.TrimSpace(f.Get("text"))
	user := chat.User{ID: userID, Username: f.Get("user_name")}
	now := time.Now()
	m := chat.Message{ID: "slash-" + randomID(), Text: text, User: user,
		Channel: ix.o.Adapter.channelKind(channelID, f.Get("channel_name")), At: now, Received: now}

	if trigger := f.Get("trigger_id"); trigger != "" && ix.o.Dialog != nil {
		if d, ok := ix.o.Dialog(ctx, user, text); ok {
			if err := ix.openDialog(ctx, trigger, m, d); err == nil {
				writeJSON(w, http.StatusOK, commandResponse{ResponseType: "ephemeral"})
				return
			} else {
				ix.log.Warn("opening a dialog; running the command as typed", "err", err)
			}
		}
	}

	run := &slashRun{m: m, started: now, done: make(chan struct{})}
	ix.mu.Lock()
	for _, old := range ix.runs { // a command that never finished: not kept forever
		if now.Sub(old.started) > 24*time.Hour {
			ix.forget(old)
		}
	}
	ix.runs[m.ID] = run
	ix.mu.Unlock()

	ix.o.Handler.Handle(ctx, m)
	expired, stop := ix.quickTimer(ix.o.QuickReply)
	defer stop()
	select {
	case <-run.done:
	case <-expired:
	case <-r.Context().Done():
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if run.finished {
		ix.forget(run)
		resp := commandResponse{ResponseType: "in_channel", SkipSlackParsing: true}
		var texts []string
		for _, p := range run.posts {
			texts = append(texts, p.text)
			resp.Attachments = append(resp.Attachments, attachmentsOf(p.props)...)
		}
		resp.Text = strings.Join(texts, "\n\n")
		writeJSON(w, http.StatusOK, resp)
		return
	}
	// Slow: what was said so far, and all that follows, goes to the
	// channel as the bot's posts.
	run.handed = true
	for _, p := range run.posts {
		var err error
		if p.props != nil {
			p.real, err = ix.o.Poster.ReplyWithProps(ctx, m, p.text, p.props)
		} else {
			p.real, err = ix.o.Poster.Reply(ctx, m, p.text)
		}
		if err != nil {
			ix.log.Error("posting a slash command's reply", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, commandResponse{ResponseType: "in_channel", SkipSlackParsing: true,
		Text: fmt.Sprintf("⏳ Working on `%s`… I'll answer here.", maskValues(text))})
}

// attachmentsOf reads back the attachments confirmProps made.
func attachmentsOf(props map[string]any) []*model.SlackAttachment {
	a, _ := props["attachments"].([]*model.SlackAttachment)
	return a
}

// maskValues hides the values of KEY=value words, which can be passwords.
func maskValues(text string) string {
	words := strings.Fields(text)
	for i, w := range words {
		if k, _, ok := strings.Cut(w, "="); ok {
			words[i] = k + "=***"
		}
	}
	return strings.Join(words, " ")
}

// sameSecret compares in constant time; an empty expected secret matches
// nothing.
func sameSecret(got, want string) bool {
	if want == "" {
		return false
	}
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// ---- the buttons ----

// The buttons' context keys.
const (
	ctxAction = "action"
	ctxCode   = "code"
	ctxOwner  = "owner"
	ctxName   = "owner_name"
	ctxThread = "thread"
	ctxSig    = "sig"
)

// confirmProps are the attachment with the Confirm and Cancel buttons of
// the confirmation code for m. Each button's context is signed, with the
// channel it is posted in, so only a request made from this very button
// (through Mattermost) is accepted.
func (ix *Interact) confirmProps(m chat.Message, code string) map[string]any {
	button := func(action, label, style string) *model.PostAction {
		c := map[string]any{ctxAction: action, ctxCode: code, ctxOwner: m.User.ID, ctxName: m.User.Username, ctxThread: m.ThreadID}
		c[ctxSig] = ix.sign("action", action, code, m.User.ID, m.User.Username, m.ThreadID, m.Channel.ID)
		return &model.PostAction{Id: action, Type: model.PostActionTypeButton, Name: label, Style: style,
			Integration: &model.PostActionIntegration{URL: ix.o.CallbackURL + ActionsPath, Context: c}}
	}
	return map[string]any{"attachments": []*model.SlackAttachment{{
		Actions: []*model.PostAction{button("confirm", "Confirm", "danger"), button("cancel", "Cancel", "default")},
	}}}
}

// sign is an HMAC over the parts, each length-prefixed so no two lists of
// parts sign alike.
func (ix *Interact) sign(parts ...string) string {
	mac := hmac.New(sha256.New, ix.o.Key)
	for _, p := range parts {
		fmt.Fprintf(mac, "%d:%s;", len(p), p)
	}
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (ix *Interact) verify(sig string, parts ...string) bool {
	return hmac.Equal([]byte(sig), []byte(ix.sign(parts...)))
}

type actionResponse struct {
	Update        *model.Post `json:"update,omitempty"`
	EphemeralText string      `json:"ephemeral_text,omitempty"`
}

func (ix *Interact) action(w http.ResponseWriter, r *http.Request) {
	var req model.PostActionIntegrationRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	str := func(k string) string { s, _ := req.Context[k].(string); return s }
	action, code, owner, ownerName, thread := str(ctxAction), str(ctxCode), str(ctxOwner), str(ctxName), str(ctxThread)
	if !ix.verify(str(ctxSig), "action", action, code, owner, ownerName, thread, req.ChannelId) || (action != "confirm" && action != "cancel") {
		ix.log.Warn("refused a button press with a bad signature", "remote", r.RemoteAddr, "user", req.UserName)
		writeJSON(w, http.StatusForbidden, actionResponse{EphemeralText: "⚠️ I don't recognise this button (it may be from before my last restart). Run the command again."})
		return
	}
	if req.UserId != owner {
		writeJSON(w, http.StatusOK, actionResponse{EphemeralText: fmt.Sprintf("Only @%s can %s this.", ownerName, action)})
		return
	}
	ctx := context.WithoutCancel(r.Context())
	who := req.UserName
	if who == "" {
		who = ownerName
	}
	var (
		note string
		err  error
	)
	if action == "cancel" {
		var name string
		if name, err = ix.o.Confirm.CancelConfirmation(code, req.UserId); err == nil {
			note = fmt.Sprintf("✖️ Cancelled by @%s: `%s` did not run.", who, name)
		}
	} else if err = ix.o.Confirm.CheckConfirmation(code, req.UserId); err == nil {
		now := time.Now()
		ix.o.Handler.Handle(ctx, chat.Message{ID: "button-" + randomID(), Text: "confirm " + code,
			User:    chat.User{ID: req.UserId, Username: who},
			Channel: ix.o.Adapter.channelKind(req.ChannelId, req.ChannelName), ThreadID: thread, At: now, Received: now})
		note = fmt.Sprintf("✅ Confirmed by @%s; the result follows.", who)
	}
	if err != nil {
		// The code is used up or expired: the buttons can go.
		note = "⌛ " + err.Error()
	}
	writeJSON(w, http.StatusOK, actionResponse{Update: ix.withoutButtons(ctx, req.PostId, code, note)})
}

// withoutButtons is the post's update: its text without the line that
// asks for the code, plus note, and no buttons.
func (ix *Interact) withoutButtons(ctx context.Context, postID, code, note string) *model.Post {
	up := &model.Post{Message: note, Props: model.StringInterface{"attachments": []any{}}}
	var p model.Post
	if err := ix.o.Adapter.api.do(ctx, http.MethodGet, "/posts/"+postID, nil, &p); err != nil {
		ix.log.Warn("reading a post with buttons", "post", postID, "err", err)
		return up
	}
	var keep []string
	for _, line := range strings.Split(p.Message, "\n") {
		if !strings.Contains(line, "`confirm "+code+"`") {
			keep = append(keep, line)
		}
	}
	if text := strings.TrimSpace(strings.Join(keep, "\n")); text != "" {
		up.Message = text + "\n\n" + note
	}
	for k, v := range p.GetProps() {
		if k != "attachments" {
			up.Props[k] = v
		}
	}
	return up
}

// ---- the dialog ----

func (ix *Interact) openDialog(ctx context.Context, trigger string, m chat.Message, d *Dialog) error {
	expires := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	state := strings.Join([]string{expires, m.ThreadID, ix.sign("dialog", d.Command, m.User.ID, m.Channel.ID, m.ThreadID, expires)}, "|")
	var els []model.DialogElement
	for _, f := range d.Fields {
		el := model.DialogElement{DisplayName: f.Label, Name: f.Name, Type: "text", Default: f.Default, HelpText: f.Help, Optional: f.Optional}
		if f.Secret {
			el.SubType, el.Default = "password", ""
		}
		els = append(els, el)
	}
	req := model.OpenDialogRequest{TriggerId: trigger, URL: ix.o.CallbackURL + DialogPath, Dialog: model.Dialog{
		CallbackId: d.Command, Title: d.Title, IntroductionText: d.Intro, Elements: els, SubmitLabel: "Summon", State: state,
	}}
	if err := ix.o.Adapter.api.do(ctx, http.MethodPost, "/actions/dialogs/open", req, nil); err != nil {
		return fmt.Errorf("opening the dialog: %w", err)
	}
	return nil
}

func (ix *Interact) dialog(w http.ResponseWriter, r *http.Request) {
	var req model.SubmitDialogRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	parts := strings.Split(req.State, "|")
	if len(parts) != 3 || !ix.verify(parts[2], "dialog", req.CallbackId, req.UserId, req.ChannelId, parts[1], parts[0]) {
		ix.log.Warn("refused a dialog submission with a bad signature", "remote", r.RemoteAddr)
		writeJSON(w, http.StatusForbidden, model.SubmitDialogResponse{Error: "I don't recognise this dialog. Run the command again."})
		return
	}
	if exp, err := strconv.ParseInt(parts[0], 10, 64); err != nil || time.Now().Unix() > exp {
		writeJSON(w, http.StatusOK, model.SubmitDialogResponse{Error: "This dialog expired. Run the command again."})
		return
	}
	if req.Cancelled {
		writeJSON(w, http.StatusOK, model.SubmitDialogResponse{})
		return
	}
	ctx := context.WithoutCancel(r.Context())
	names, err := ix.o.Adapter.UsersByID(ctx, []string{req.UserId})
	if err != nil || names[req.UserId] == "" {
		writeJSON(w, http.StatusOK, model.SubmitDialogResponse{Error: "I could not look up who you are on the chat server; try again."})
		return
	}
	words := []string{req.CallbackId}
	keys := make([]string, 0, len(req.Submission))
	for k := range req.Submission {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := req.Submission[k].(string)
		if v = strings.TrimSpace(v); v != "" {
			words = append(words, quoteWord(k+"="+v))
		}
	}
	now := time.Now()
	ch, err := ix.o.Adapter.channelByID(ctx, req.ChannelId)
	if err != nil {
		writeJSON(w, http.StatusOK, model.SubmitDialogResponse{Error: "I cannot see this channel; invite me to it first."})
		return
	}
	ix.o.Handler.Handle(ctx, chat.Message{ID: "dialog-" + randomID(), Text: strings.Join(words, " "),
		User: chat.User{ID: req.UserId, Username: names[req.UserId]}, Channel: ch, ThreadID: parts[1], At: now, Received: now})
	writeJSON(w, http.StatusOK, model.SubmitDialogResponse{})
}

// quoteWord keeps a value with spaces or quotes in one word for the
// command parser.
func quoteWord(s string) string {
	if !strings.ContainsAny(s, " \t\n\"'\\“”‘’") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// ---- helpers ----

// channelKind is the channel as commands see it: direct messages are told
// apart by the channel cache or, failing that, by their name
// ("<user id>__<user id>").
func (a *Adapter) channelKind(id, name string) chat.Channel {
	a.mu.Lock()
	c, ok := a.channels[id]
	a.mu.Unlock()
	if ok {
		return c
	}
	if l, r, found := strings.Cut(name, "__"); found && model.IsValidId(l) && model.IsValidId(r) {
		return chat.Channel{ID: id, Direct: true}
	}
	return chat.Channel{ID: id, Name: name}
}

// channelByID looks a channel up (cached).
func (a *Adapter) channelByID(ctx context.Context, id string) (chat.Channel, error) {
	a.mu.Lock()
	c, ok := a.channels[id]
	a.mu.Unlock()
	if ok {
		return c, nil
	}
	ch, err := a.api.channel(ctx, id)
	if err != nil {
		return chat.Channel{}, err
	}
	return a.rememberChannel(ch.Id, ch.Name, string(ch.Type)), nil
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ---- the start-up check ----

// CheckSetup reads what the bot's token may read of the server's settings
// and tells what the slash command and the buttons still need: problems
// are certain (say them in chat), notes are what could not be checked (for
// the log). It never fails the start.
func (a *Adapter) CheckSetup(ctx context.Context, callbackURL string, slashToken bool) (problems, notes []string) {
	callbackURL = strings.TrimRight(callbackURL, "/")
	var client map[string]string
	if err := a.api.do(ctx, http.MethodGet, "/config/client?format=old", nil, &client); err != nil {
		notes = append(notes, "could not read the server's client settings: "+err.Error())
	} else if client["EnableCommands"] != "true" {
		problems = append(problems, "Custom slash commands are off on the server (ServiceSettings.EnableCommands): `/summon` cannot work. An admin turns them on in System Console > Integrations > Integration Management.")
	}
	if !slashToken {
		problems = append(problems, "`chat.slash_token` is not set, so I refuse every `/summon` request. Create the slash command and put its token there.")
	}

	host := ""
	if u, err := urlParse(callbackURL); err == nil {
		host = u
	}
	var cfg model.Config
	switch err := a.api.do(ctx, http.MethodGet, "/config", nil, &cfg); {
	case err == nil:
		allowed := ""
		if cfg.ServiceSettings.AllowedUntrustedInternalConnections != nil {
			allowed = *cfg.ServiceSettings.AllowedUntrustedInternalConnections
		}
		if isLocalHost(host) && !containsField(allowed, host) {
			problems = append(problems, fmt.Sprintf("`chat.callback_url` points at %s, a local address the server refuses to call unless ServiceSettings.AllowedUntrustedInternalConnections lists it (System Console > Environment > Developer): buttons and `/summon` fail until then.", host))
		}
	case isLocalHost(host):
		notes = append(notes, fmt.Sprintf("cannot read the server's config with the bot's token; make sure ServiceSettings.AllowedUntrustedInternalConnections lists %s, or buttons and /summon fail", host))
	}

	team, err := a.team(ctx)
	if err != nil {
		notes = append(notes, "cannot tell the bot's team: "+err.Error())
		return problems, notes
	}
	var cmds []*model.Command
	if err := a.api.do(ctx, http.MethodGet, "/commands?custom_only=true&team_id="+team, nil, &cmds); err != nil {
		notes = append(notes, "cannot list the team's slash commands with the bot's token; make sure one calls "+callbackURL+SlashPath)
		return problems, notes
	}
	for _, c := range cmds {
		if c.DeleteAt == 0 && strings.TrimRight(c.URL, "/") == callbackURL+SlashPath {
			return problems, notes
		}
	}
	problems = append(problems, fmt.Sprintf("No slash command of the team calls %s%s: create `/summon` in Integrations > Slash Commands (request URL %[1]s%[2]s, method POST) and put its token in `chat.slash_token`.", callbackURL, SlashPath))
	return problems, notes
}

// urlParse returns the host name of a URL.
func urlParse(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	return u.Hostname(), nil
}

// isLocalHost: Mattermost refuses to call loopback, private and link-local
// addresses, and names that resolve to them, unless allowed.
func isLocalHost(host string) bool {
	if host == "localhost" || (host != "" && !strings.Contains(host, ".") && !strings.Contains(host, ":")) {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified())
}

// containsField tells whether a space- or comma-separated list of hosts,
// addresses and CIDR ranges (Mattermost's format) allows host.
func containsField(list, host string) bool {
	ip := net.ParseIP(host)
	for _, f := range strings.FieldsFunc(list, func(r rune) bool { return r == ' ' || r == ',' }) {
		if strings.EqualFold(f, host) {
			return true
		}
		if _, n, err := net.ParseCIDR(f); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}
