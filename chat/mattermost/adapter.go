package mattermost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
)

// replyProp tags every reply with the post it answers; catch-up reads it to
// skip commands that were already answered.
const replyProp = "summoner_reply_to"

// catchUpWindow bounds how far back catch-up looks, whatever the cursor.
const catchUpWindow = 24 * time.Hour

// Options configure the adapter.
type Options struct {
	URL   string // the server, e.g. https://chat.example.com
	Token string // the bot account's access token
	Team  string // team handle for channel names; "" = the bot's only team
	// Prefix, when set, addresses the bot too ("!status").
	Prefix string
	// MaxAge: missed commands older than this are not run (default 10m).
	MaxAge    time.Duration
	StateFile string // where cursors are kept; "" keeps them in memory only
	Workers   int    // commands handled at once (default 8)
	Backoff   Backoff
	Logger    *slog.Logger
	// HTTPClient for the REST API; default has a 30 s timeout.
	HTTPClient *http.Client
	// OnReply, if set, is called as each reply is about to be sent, with
	// the message it answers; benchmarks use it to time the bot's own work.
	OnReply func(m chat.Message, sending time.Time)
}

// Adapter is the Mattermost chat.Adapter.
type Adapter struct {
	o   Options
	api *api
	log *slog.Logger

	connected atomic.Bool
	sessions  atomic.Int64 // websocket sessions that reached "hello"
	pending   atomic.Int64 // counter for pending post IDs
	me        atomic.Pointer[model.User]
	state     *cursors
	seen      seenSet

	mu       sync.Mutex
	channels map[string]chat.Channel // by ID
	teamID   string
}

var _ chat.Adapter = (*Adapter)(nil)

// New makes an adapter; it does not connect yet.
func New(o Options) (*Adapter, error) {
	u, err := url.Parse(strings.TrimRight(o.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("chat url %q is not an http(s) URL", o.URL)
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 10 * time.Minute
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	o.Backoff = o.Backoff.withDefaults()
	a := &Adapter{
		o:        o,
		api:      &api{base: u.String(), token: o.Token, hc: o.HTTPClient},
		log:      o.Logger,
		channels: map[string]chat.Channel{},
	}
	if o.StateFile == "" {
		a.state = &cursors{seen: map[string]int64{}, inflight: map[string]map[string]int64{}, saved: map[string]int64{}}
	} else {
		a.state, err = loadCursors(o.StateFile)
		if err != nil && a.state == nil {
			return nil, err
		}
		if err != nil {
			a.log.Warn("starting with an empty chat state", "err", err)
		}
	}
	return a, nil
}

// Connected reports whether the websocket is up; /healthz shows it.
func (a *Adapter) Connected() bool { return a.connected.Load() }

// Sessions counts the websocket sessions so far; more than one means the
// bot reconnected.
func (a *Adapter) Sessions() int64 { return a.sessions.Load() }

// Login checks the token and learns who the bot is. ErrUnauthorized means
// the token is wrong; other errors mean the server could not be reached.
func (a *Adapter) Login(ctx context.Context) (*model.User, error) {
	me, err := a.api.me(ctx)
	if err != nil {
		return nil, fmt.Errorf("logging in to %s: %w", a.api.base, err)
	}
	a.me.Store(me)
	return me, nil
}

// Run connects and handles messages until ctx ends, reconnecting with
// backoff. It returns ctx's error, or ErrUnauthorized if the token stops
// working.
func (a *Adapter) Run(ctx context.Context, h chat.Handler) error {
	jobs := make(chan job)
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()
	var wg sync.WaitGroup
	for range a.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				a.handle(workCtx, h, j)
			}
		}()
	}
	flushDone := make(chan struct{})
	flushCtx, stopFlush := context.WithCancel(context.Background())
	go func() {
		defer close(flushDone)
		a.flushLoop(flushCtx)
	}()

	err := a.connectLoop(ctx, jobs)

	// Let running commands finish their replies for a while; commands not
	// started yet stay behind the saved cursor and run after a restart.
	close(jobs)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		a.log.Warn("commands still running at shutdown; cancelling them")
		stopWork()
		<-finished
	}
	stopFlush()
	<-flushDone
	if ferr := a.state.flush(); ferr != nil {
		a.log.Error("saving chat state at shutdown", "err", ferr)
	}
	return err
}

func (a *Adapter) flushLoop(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.state.flush(); err != nil {
				a.log.Error("saving chat state", "err", err)
			}
		}
	}
}

func (a *Adapter) connectLoop(ctx context.Context, jobs chan<- job) error {
	attempt := 0
	for {
		began := time.Now()
		err := a.session(ctx, jobs)
		a.connected.Store(false)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrUnauthorized) {
			return fmt.Errorf("chat: %w", err)
		}
		if time.Since(began) >= a.o.Backoff.ResetAfter {
			attempt = 0 // it was healthy for a while: this is a new outage
		}
		delay := a.o.Backoff.Delay(attempt)
		attempt++
		a.log.Warn("chat connection lost; reconnecting", "in", delay.Round(time.Millisecond), "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// session is one websocket connection: log in, dial, catch up, read.
func (a *Adapter) session(ctx context.Context, jobs chan<- job) error {
	me, err := a.Login(ctx)
	if err != nil {
		return err
	}
	conn, err := a.dial(ctx)
	if err != nil {
		return err
	}
	// Deferred in this order so that, on return, the socket closes and the
	// session's context ends before waiting for its goroutines.
	var wg sync.WaitGroup
	defer wg.Wait()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer a.connected.Store(false)
	defer conn.Close()
	go func() { // unblock the read when ctx ends
		<-sctx.Done()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		conn.Close()
	}()

	const readTimeout = 90 * time.Second
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(readTimeout)) })
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	wg.Add(1)
	go func() { // our own pings notice a dead server that never closed the socket
		defer wg.Done()
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
					return
				}
			}
		}
	}()

	hello := false
	for {
		_, data, err := conn.ReadMessage()
		received := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("reading the websocket: %w", err)
		}
		_ = conn.SetReadDeadline(received.Add(readTimeout))
		ev, err := model.WebSocketEventFromJSON(strings.NewReader(string(data)))
		if err != nil || ev == nil {
			continue // a reply to an action of ours, or noise
		}
		switch ev.EventType() {
		case model.WebsocketEventHello:
			if !hello {
				hello = true
				a.connected.Store(true)
				a.sessions.Add(1)
				a.log.Info("connected to Mattermost", "server", a.api.base, "as", me.Username)
				wg.Add(1)
				go func() {
					defer wg.Done()
					if err := a.catchUp(sctx, jobs); err != nil && sctx.Err() == nil {
						a.log.Error("fetching missed posts", "err", err)
					}
				}()
			}
		case model.WebsocketEventPosted:
			a.onPosted(sctx, ev, received, jobs)
		}
	}
}

func (a *Adapter) dial(ctx context.Context) (*websocket.Conn, error) {
	u, _ := url.Parse(a.api.base + "/api/v4/websocket")
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	d := websocket.Dialer{HandshakeTimeout: 15 * time.Second, Proxy: http.ProxyFromEnvironment}
	hdr := http.Header{"Authorization": {"Bearer " + a.api.token}}
	conn, resp, err := d.DialContext(ctx, u.String(), hdr)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return nil, ErrUnauthorized
		}
		return nil, fmt.Errorf("opening the websocket: %w", err)
	}
	conn.SetReadLimit(16 << 20)
	return conn, nil
}

// job is one command to run.
type job struct{ msg chat.Message }

func (a *Adapter) handle(ctx context.Context, h chat.Handler, j job) {
	defer a.state.done(j.msg.Channel.ID, j.msg.ID)
	h.Handle(ctx, j.msg)
}

func (a *Adapter) onPosted(ctx context.Context, ev *model.WebSocketEvent, received time.Time, jobs chan<- job) {
	data := ev.GetData()
	raw, _ := data["post"].(string)
	var p model.Post
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		a.log.Warn("unreadable post event", "err", err)
		return
	}
	chType, _ := data["channel_type"].(string)
	chName, _ := data["channel_name"].(string)
	ch := a.rememberChannel(p.ChannelId, chName, chType)
	sender, _ := data["sender_name"].(string)
	a.consider(ctx, &p, ch, strings.TrimPrefix(sender, "@"), received, jobs)
}

func (a *Adapter) rememberChannel(id, name, typ string) chat.Channel {
	c := chat.Channel{ID: id, Name: name, Direct: typ == string(model.ChannelTypeDirect)}
	if c.Direct {
		c.Name = ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.channels[id]; ok && name == "" && typ == "" {
		return old
	}
	a.channels[id] = c
	return c
}

// consider decides whether p is a command for the bot and queues it; it
// reports whether it queued one.
func (a *Adapter) consider(ctx context.Context, p *model.Post, ch chat.Channel, sender string, received time.Time, jobs chan<- job) bool {
	me := a.me.Load()
	if me == nil || p.UserId == me.Id {
		return false
	}
	if p.Type != "" || p.GetProp("from_bot") == "true" || p.GetProp("from_webhook") == "true" {
		a.state.see(p.ChannelId, p.CreateAt) // system messages and other bots
		return false
	}
	text, ok := a.addressed(p.Message, me.Username, ch.Direct)
	if !ok {
		a.state.see(p.ChannelId, p.CreateAt)
		return false
	}
	if !a.seen.add(p.Id, received) {
		return false // already handled: it came both live and through catch-up
	}
	if sender == "" {
		if u, err := a.api.user(ctx, p.UserId); err == nil {
			sender = u.Username
		}
	}
	thread := p.RootId
	if thread == "" {
		thread = p.Id
	}
	msg := chat.Message{
		ID: p.Id, Text: text, User: chat.User{ID: p.UserId, Username: sender},
		Channel: ch, ThreadID: thread, At: time.UnixMilli(p.CreateAt), Received: received,
	}
	if age := received.Sub(msg.At); age > a.o.MaxAge {
		a.log.Info("not running a missed command: too old", "user", sender, "age", age.Round(time.Second), "max", a.o.MaxAge)
		a.state.see(p.ChannelId, p.CreateAt)
		_, err := a.Reply(ctx, msg, fmt.Sprintf("I was offline when this was posted %s ago, so I did not run it. Send it again if it is still wanted.",
			age.Round(time.Minute)))
		if err != nil {
			a.log.Warn("telling a user their command was too old", "err", err)
		}
		return false
	}
	a.state.start(p.ChannelId, p.Id, p.CreateAt)
	select {
	case jobs <- job{msg: msg}:
		return true
	case <-ctx.Done():
		a.state.done(p.ChannelId, p.Id)
		return false
	}
}

// addressed returns the command text when text is meant for the bot: it
// mentions the bot, starts with the prefix, or is in a direct message.
func (a *Adapter) addressed(text, username string, direct bool) (string, bool) {
	t := strings.TrimSpace(text)
	if rest, ok := afterMention(t, "@"+username); ok {
		return rest, true
	}
	if a.o.Prefix != "" && strings.HasPrefix(t, a.o.Prefix) {
		return strings.TrimSpace(t[len(a.o.Prefix):]), true
	}
	if direct {
		return t, true
	}
	return "", false
}

// afterMention finds "@name" as a whole word in t and returns what follows
// it, so "hey @summoner status" and "@summoner: status" both give "status".
func afterMention(t, mention string) (string, bool) {
	lower := strings.ToLower(t)
	from := 0
	for {
		i := strings.Index(lower[from:], strings.ToLower(mention))
		if i < 0 {
			return "", false
		}
		i += from
		end := i + len(mention)
		before := i == 0 || !isNameChar(lower[i-1])
		after := end == len(lower) || !isNameChar(lower[end]) || (lower[end] == '.' && (end+1 == len(lower) || !isNameChar(lower[end+1])))
		if before && after {
			rest := strings.TrimLeft(t[end:], " \t\n:,.!")
			return strings.TrimSpace(rest), true
		}
		from = end
	}
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// catchUp fetches, for every channel the bot is in, the posts it missed,
// and handles the commands among them that have no reply yet.
func (a *Adapter) catchUp(ctx context.Context, jobs chan<- job) error {
	me := a.me.Load()
	teams, err := a.api.myTeams(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	floor := now.Add(-catchUpWindow).UnixMilli()
	done := map[string]bool{}
	missed := 0
	for _, t := range teams {
		chans, err := a.api.myChannels(ctx, t.Id)
		if err != nil {
			return err
		}
		for _, c := range chans {
			if done[c.Id] || c.DeleteAt != 0 {
				continue // direct channels are listed once per team
			}
			done[c.Id] = true
			ch := a.rememberChannel(c.Id, c.Name, string(c.Type))
			since, known := a.state.cursor(c.Id)
			if !known {
				// A channel never seen: look back as far as a command may be.
				since = now.Add(-a.o.MaxAge).UnixMilli()
			}
			since = max(since, floor)
			if c.LastPostAt <= since {
				a.state.see(c.Id, since)
				continue
			}
			n, err := a.catchUpChannel(ctx, me, ch, since, now, jobs)
			if err != nil {
				return fmt.Errorf("channel %s: %w", c.Name, err)
			}
			missed += n
		}
	}
	if missed > 0 {
		a.log.Info("answered commands missed while offline", "count", missed)
	}
	return nil
}

func (a *Adapter) catchUpChannel(ctx context.Context, me *model.User, ch chat.Channel, since int64, now time.Time, jobs chan<- job) (int, error) {
	list, err := a.api.postsSince(ctx, ch.ID, since)
	if err != nil {
		return 0, err
	}
	answered := map[string]bool{}
	var posts []*model.Post
	for _, p := range list.Posts {
		if p.UserId == me.Id {
			if id, ok := p.GetProp(replyProp).(string); ok {
				answered[id] = true
			}
			continue
		}
		if p.CreateAt > since && p.DeleteAt == 0 {
			posts = append(posts, p)
		}
	}
	sort.Slice(posts, func(i, j int) bool { return posts[i].CreateAt < posts[j].CreateAt })
	n := 0
	for _, p := range posts {
		if answered[p.Id] {
			a.seen.add(p.Id, now)
			a.state.see(ch.ID, p.CreateAt)
			continue
		}
		if a.consider(ctx, p, ch, "", now, jobs) {
			n++
		}
	}
	return n, nil
}

// team is the ID of the team channel names refer to: the configured one,
// or the bot's only team.
func (a *Adapter) team(ctx context.Context) (string, error) {
	a.mu.Lock()
	id := a.teamID
	a.mu.Unlock()
	if id != "" {
		return id, nil
	}
	if a.o.Team != "" {
		t, err := a.api.teamByName(ctx, a.o.Team)
		if err != nil {
			return "", fmt.Errorf("finding team %q: %w", a.o.Team, err)
		}
		id = t.Id
	} else {
		ts, err := a.api.myTeams(ctx)
		if err != nil {
			return "", fmt.Errorf("listing the bot's teams: %w", err)
		}
		if len(ts) != 1 {
			return "", fmt.Errorf("the bot is in %d teams, so set chat.team to the one whose channels it should use", len(ts))
		}
		id = ts[0].Id
	}
	a.mu.Lock()
	a.teamID = id
	a.mu.Unlock()
	return id, nil
}

// ChannelID finds a channel of the bot's team by its handle ("ops").
func (a *Adapter) ChannelID(ctx context.Context, name string) (string, error) {
	teamID, err := a.team(ctx)
	if err != nil {
		return "", err
	}
	c, err := a.api.channelByName(ctx, teamID, strings.TrimPrefix(name, "~"))
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) && (ae.Status == http.StatusNotFound || ae.Status == http.StatusForbidden) {
			return "", fmt.Errorf("channel ~%s: not found, or the bot is not a member of it (add it with /invite @%s)", name, a.username())
		}
		return "", fmt.Errorf("channel ~%s: %w", name, err)
	}
	return c.Id, nil
}

// PostToChannel posts text to a channel named by its handle.
func (a *Adapter) PostToChannel(ctx context.Context, name, text string) (chat.PostRef, error) {
	id, err := a.ChannelID(ctx, name)
	if err != nil {
		return chat.PostRef{}, err
	}
	return a.Post(ctx, chat.Destination{ChannelID: id}, text)
}

func (a *Adapter) username() string {
	if me := a.me.Load(); me != nil {
		return me.Username
	}
	return "the bot"
}
