package mattermost

import (
	"bytes"
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
	// Workers is ignored: the handler queues commands (commands.Queue).
	//
	// Deprecated: kept so existing callers compile; it has no effect.
	Workers int
	Backoff Backoff
	Logger  *slog.Logger
	// HTTPClient for the REST API; default has a 30 s timeout.
	HTTPClient *http.Client
	// OnReply, if set, is called as each reply is about to be sent, with
	// the message it answers; benchmarks use it to time the bot's own work.
	OnReply func(m chat.Message, sending time.Time)
	// Notes posts the adapter's own answers (the "I was offline" note to a
	// command too old to run); default the adapter itself. Give it the
	// outbox so they are delivered like every other reply.
	Notes chat.Poster
	// OnConnect, if set, runs after each websocket session is established
	// (the first and every reconnect), before any command of that session,
	// missed ones included, is handed over: permissions resolved there
	// judge all of them. It delays those commands, so it should be quick.
	OnConnect func(ctx context.Context)
}

// Adapter is the Mattermost chat.Adapter.
type Adapter struct {
	o   Options
	api *api
	log *slog.Logger

	connected    atomic.Bool
	sessions     atomic.Int64 // websocket sessions that reached "hello"
	pending      atomic.Int64 // counter for pending post IDs
	lastActivity atomic.Int64 // Unix ns of the last websocket read or pong
	me           atomic.Pointer[model.User]
	state        *cursors
	seen         seenSet

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
	if a.o.Notes == nil {
		a.o.Notes = a
	}
	if o.StateFile == "" {
		a.state = newCursors("")
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

// LastActivity is when the server was last heard from: the last websocket
// frame or pong. The server sends frames or answers the bot's pings (every
// 30 s) on a live connection, so an old time means a dead one even if the
// socket still looks open. Zero before the first connection.
func (a *Adapter) LastActivity() time.Time {
	ns := a.lastActivity.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func (a *Adapter) touch(t time.Time) { a.lastActivity.Store(t.UnixNano()) }

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

// Run connects and hands messages to h until ctx ends, reconnecting with
// backoff. It returns ctx's error, or ErrUnauthorized if the token stops
// working.
//
// h.Handle is called from the read loop, one message at a time and in the
// order posted, so it must return promptly (commands.Queue does). A
// channel's saved cursor moves past a command only once Handle returned for
// it; a command not handed over yet is fetched again after a restart.
func (a *Adapter) Run(ctx context.Context, h chat.Handler) error {
	flushDone := make(chan struct{})
	flushCtx, stopFlush := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer close(flushDone)
		a.flushLoop(flushCtx)
	}()

	err := a.connectLoop(ctx, h)

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

func (a *Adapter) connectLoop(ctx context.Context, h chat.Handler) error {
	attempt := 0
	for {
		began := time.Now()
		err := a.session(ctx, h)
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

// readTimeout: no frame and no pong for this long means the connection is
// dead; the bot pings every pingEvery.
const (
	readTimeout = 90 * time.Second
	pingEvery   = 30 * time.Second
)

// frame is one websocket event and when it was read.
type frame struct {
	ev       *model.WebSocketEvent
	received time.Time
}

// session is one websocket connection: log in, dial, then, once the server
// says hello, OnConnect, catch up, and handle live posts in order. A
// separate goroutine reads the socket, so pongs and read deadlines are
// served while a long catch-up runs; what arrives meanwhile waits in order.
func (a *Adapter) session(ctx context.Context, h chat.Handler) error {
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
	wg.Add(1)
	go func() { // unblock the read when the session ends
		defer wg.Done()
		<-sctx.Done()
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		conn.Close()
	}()

	_ = conn.SetReadDeadline(time.Now().Add(readTimeout))
	conn.SetPongHandler(func(string) error {
		now := time.Now()
		a.touch(now)
		return conn.SetReadDeadline(now.Add(readTimeout))
	})
	conn.SetPingHandler(func(data string) error {
		now := time.Now()
		a.touch(now)
		_ = conn.SetReadDeadline(now.Add(readTimeout))
		return conn.WriteControl(websocket.PongMessage, []byte(data), now.Add(5*time.Second))
	})
	wg.Add(1)
	go func() { // our own pings notice a dead server that never closed the socket
		defer wg.Done()
		t := time.NewTicker(pingEvery)
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
	frames := make(chan frame, 256)
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		readErr <- a.read(sctx, conn, frames)
	}()

	hello := false
	for f := range frames {
		switch f.ev.EventType() {
		case model.WebsocketEventHello:
			if hello {
				continue
			}
			hello = true
			a.connected.Store(true)
			a.sessions.Add(1)
			a.log.Info("connected to Mattermost", "server", a.api.base, "as", me.Username)
			if a.o.OnConnect != nil {
				a.o.OnConnect(sctx)
			}
			if err := a.catchUp(sctx, ctx, h); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				// Live posts would move cursors past what catch-up did not
				// reach yet: start over on a fresh connection instead.
				return fmt.Errorf("fetching missed posts: %w", err)
			}
		case model.WebsocketEventPosted:
			if hello {
				a.onPosted(sctx, ctx, h, f.ev, f.received)
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	err = <-readErr
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// read passes the socket's hello and posted events to out until the
// connection fails or ctx ends; it closes out.
func (a *Adapter) read(ctx context.Context, conn *websocket.Conn, out chan<- frame) error {
	defer close(out)
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("reading the websocket: %w", err)
		}
		received := time.Now()
		a.touch(received)
		_ = conn.SetReadDeadline(received.Add(readTimeout))
		ev, err := model.WebSocketEventFromJSON(bytes.NewReader(data))
		if err != nil || ev == nil {
			continue // noise
		}
		switch ev.EventType() {
		case model.WebsocketEventHello, model.WebsocketEventPosted:
		default:
			continue // replies to our actions, typing, status...
		}
		select {
		case out <- frame{ev: ev, received: received}:
		case <-ctx.Done():
			return ctx.Err()
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

func (a *Adapter) onPosted(ctx, hctx context.Context, h chat.Handler, ev *model.WebSocketEvent, received time.Time) {
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
	a.consider(ctx, hctx, h, &p, ch, strings.TrimPrefix(sender, "@"), received)
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

// command returns the command text of p when p is a command for the bot: a
// person (not the bot itself, another bot or the system) addressed it.
func (a *Adapter) command(p *model.Post, me *model.User, ch chat.Channel) (string, bool) {
	if p.UserId == me.Id || p.Type != "" || p.GetProp("from_bot") == "true" || p.GetProp("from_webhook") == "true" {
		return "", false
	}
	return a.addressed(p.Message, me.Username, ch.Direct)
}

// consider hands p to h if it is a command for the bot, then moves the
// channel's cursor past it; it reports whether it handed p over. ctx is the
// session's (for lookups), hctx is the one commands get.
func (a *Adapter) consider(ctx, hctx context.Context, h chat.Handler, p *model.Post, ch chat.Channel, sender string, received time.Time) bool {
	me := a.me.Load()
	if me == nil || p.UserId == me.Id {
		return false
	}
	text, ok := a.command(p, me, ch)
	if !ok {
		a.state.see(p.ChannelId, p.CreateAt)
		return false
	}
	if hctx.Err() != nil {
		return false // shutting down: it stays behind the cursor for the next start
	}
	if !a.seen.add(p.Id, received) {
		return false // already handled: it came both live and through catch-up
	}
	if sender == "" {
		if u, err := a.api.user(ctx, p.UserId); err == nil {
			sender = u.Username
		} else {
			a.log.Warn("finding the author of a command", "user_id", p.UserId, "err", err)
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
	defer a.handled(p.ChannelId, p.CreateAt)
	if age := received.Sub(msg.At); age > a.o.MaxAge {
		a.log.Info("not running a missed command: too old", "user", sender, "age", age.Round(time.Second), "max", a.o.MaxAge)
		_, err := a.o.Notes.Reply(hctx, msg, fmt.Sprintf("I was offline when this was posted %s ago, so I did not run it. Send it again if it is still wanted.",
			age.Round(time.Minute)))
		if err != nil {
			a.log.Warn("telling a user their command was too old", "err", err)
		}
		return false
	}
	h.Handle(hctx, msg)
	return true
}

// handled moves the cursor past a command the handler took, and saves it at
// once rather than at the next tick: commands are few, and the sooner the
// cursor is on disk the smaller the window in which a crash would hand the
// command over again.
func (a *Adapter) handled(channelID string, created int64) {
	a.state.see(channelID, created)
	if err := a.state.flush(); err != nil {
		a.log.Error("saving chat state", "err", err)
	}
}

// addressed returns the command text when text is meant for the bot: it
// starts with the mention or the prefix, or is in a direct message. A
// mention further on ("please don't @summoner banish wekan") is talk about
// the bot, not a command.
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

// afterMention reports whether t starts with mention as a whole word
// ("@summoner", not "@summoner2" or "@summoner.bot") and returns what
// follows it, past a ":" or "," ("@summoner: status" gives "status").
func afterMention(t, mention string) (string, bool) {
	if len(t) < len(mention) || !strings.EqualFold(t[:len(mention)], mention) {
		return "", false
	}
	rest := t[len(mention):]
	if rest != "" && isNameChar(rest[0]) {
		// "@summoner." is the bot at the end of a sentence; "@summoner.x"
		// is another user.
		if rest[0] != '.' || (len(rest) > 1 && isNameChar(rest[1])) {
			return "", false
		}
	}
	return strings.TrimSpace(strings.TrimLeft(rest, " \t\n:,.!")), true
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// catchUp fetches, for every channel the bot is in, the posts it missed,
// and hands over, oldest first, the commands among them that have no reply
// yet.
func (a *Adapter) catchUp(ctx, hctx context.Context, h chat.Handler) error {
	me := a.me.Load()
	teams, err := a.api.myTeams(ctx)
	if err != nil {
		return fmt.Errorf("listing the bot's teams: %w", err)
	}
	now := time.Now()
	floor := now.Add(-catchUpWindow).UnixMilli()
	done := map[string]bool{}
	missed := 0
	for _, t := range teams {
		chans, err := a.api.myChannels(ctx, t.Id)
		if err != nil {
			return fmt.Errorf("listing the bot's channels in team %s: %w", t.Name, err)
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
			n, err := a.catchUpChannel(ctx, hctx, h, me, ch, since, now)
			var ae *APIError
			switch {
			case err == nil:
				missed += n
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.As(err, &ae) && (ae.Status == http.StatusForbidden || ae.Status == http.StatusNotFound):
				// Retrying will not help (left or archived meanwhile).
				a.log.Warn("cannot read a channel's missed posts", "channel", c.Name, "err", err)
			default:
				return fmt.Errorf("channel %s: %w", c.Name, err)
			}
		}
	}
	if missed > 0 {
		a.log.Info("handed over commands missed while offline", "count", missed)
	}
	return nil
}

func (a *Adapter) catchUpChannel(ctx, hctx context.Context, h chat.Handler, me *model.User, ch chat.Channel, since int64, now time.Time) (int, error) {
	answered := map[string]bool{}
	var commands []*model.Post
	newest := since
	err := a.walkBack(ctx, ch.ID, since, func(p *model.Post) {
		newest = max(newest, p.CreateAt)
		if p.UserId == me.Id {
			if id, ok := p.GetProp(replyProp).(string); ok {
				answered[id] = true
			}
			return
		}
		if _, ok := a.command(p, me, ch); ok {
			commands = append(commands, p) // only these are kept: a busy channel has thousands of others
		}
	})
	if err != nil {
		return 0, err
	}
	sort.SliceStable(commands, func(i, j int) bool { return commands[i].CreateAt < commands[j].CreateAt })
	n := 0
	for _, p := range commands {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		if answered[p.Id] {
			a.seen.add(p.Id, now)
			a.state.see(ch.ID, p.CreateAt)
			continue
		}
		if a.consider(ctx, hctx, h, p, ch, "", now) {
			n++
		}
	}
	if hctx.Err() == nil {
		a.state.see(ch.ID, newest)
	}
	return n, nil
}

// pageSize is the most posts the server returns at once (web.PerPageMaximum
// in Mattermost v6.7.2; it silently caps larger values).
const pageSize = 200

// walkBack calls visit once for every post of the channel created after
// since, newest first, reading pages of pageSize backwards.
//
// It does not use "?since=": in v6.7.2 that query takes an arbitrary 1,000
// of the posts updated after the time (LIMIT without ORDER BY), so a busy
// channel would silently lose commands. "?before=<post>" returns the posts
// created strictly before that post's millisecond, newest first; to not
// skip posts that share a millisecond with the last one of a page, the next
// page starts before the oldest post of a newer millisecond, and the few
// posts read twice are skipped.
func (a *Adapter) walkBack(ctx context.Context, channelID string, since int64, visit func(*model.Post)) error {
	visited := map[string]bool{}
	before := ""
	for page := 1; ; page++ {
		list, err := a.api.postsBefore(ctx, channelID, before, pageSize)
		if err != nil {
			return fmt.Errorf("reading page %d of missed posts: %w", page, err)
		}
		posts := make([]*model.Post, 0, len(list.Order))
		for _, id := range list.Order {
			if p, ok := list.Posts[id]; ok && p != nil {
				posts = append(posts, p)
			}
		}
		sort.SliceStable(posts, func(i, j int) bool { return posts[i].CreateAt > posts[j].CreateAt })
		for _, p := range posts {
			if p.CreateAt > since && !visited[p.Id] {
				visited[p.Id] = true
				visit(p)
			}
		}
		if len(list.Order) < pageSize || len(posts) == 0 {
			return nil // the channel's first post
		}
		oldest := posts[len(posts)-1].CreateAt
		if oldest <= since {
			return nil
		}
		next := posts[len(posts)-1].Id
		for i := len(posts) - 1; i >= 0; i-- {
			if posts[i].CreateAt > oldest {
				next = posts[i].Id
				break
			}
		}
		if posts[0].CreateAt == oldest {
			// A whole page in one millisecond: the rest of that millisecond
			// would be skipped. Never seen in practice.
			a.log.Warn("a page of missed posts all share one millisecond; some may be skipped", "channel", channelID, "at", oldest)
		}
		before = next // older than the last anchor, so the walk always ends
	}
}

// UsersByName maps each of names (without "@") that has an account to the
// account's ID, so permissions can follow people rather than names. Names
// with no account are absent.
func (a *Adapter) UsersByName(ctx context.Context, names []string) (map[string]string, error) {
	out := map[string]string{}
	if len(names) == 0 {
		return out, nil // the server refuses an empty list
	}
	us, err := a.api.usersByNames(ctx, names)
	if err != nil {
		return nil, fmt.Errorf("looking up %d usernames: %w", len(names), err)
	}
	for _, u := range us {
		out[strings.ToLower(u.Username)] = u.Id
	}
	return out, nil
}

// UsersByID maps each of ids whose account is active to its current
// username. Deactivated, deleted and unknown accounts are absent, so they
// lose whatever rights their ID had.
func (a *Adapter) UsersByID(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	us, err := a.api.usersByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("looking up %d accounts: %w", len(ids), err)
	}
	for _, u := range us {
		if u.DeleteAt == 0 {
			out[u.Id] = u.Username
		}
	}
	return out, nil
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
