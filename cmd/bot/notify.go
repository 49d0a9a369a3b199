package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/notifications"
)

// notifier is the webhook centre as the daemon runs it: the server accepts
// and stores, then one loop hands each stored event to the recipes, in the
// order accepted, and marks it done. Posts go through the outbox with a
// key per event and action, so an event handled again after a crash posts
// nothing twice, and commands through the queue's journal, which runs a
// message ID once. A command the full queue refuses waits in the event
// store; the same loop tries it again (notifications.Engine.Retry).
type notifier struct {
	cfg     config.Notifications
	sources []notifications.Source
	store   *notifications.Store
	engine  *notifications.Engine
	server  *notifications.Server
	builtin map[string]bool // recipe names Summoner adds itself
	wake    chan struct{}
	log     *slog.Logger
	now     func() time.Time

	mu       sync.Mutex
	lastSrc  map[string]sourceResult
	lastRun  map[string]runResult
	replaced map[string]notifications.Replaced // by recipe: the latest waiting run replaced
	handed   map[string]bool                   // keys of recipe commands queued or running
}

type sourceResult struct {
	at     time.Time
	status int
	reason string
}

type runResult struct {
	at      time.Time
	eventID string
	event   string
	err     error
}

// oncePoster is the outbox as the recipes' poster.
type oncePoster interface {
	PostOnce(ctx context.Context, key string, to chat.Destination, text string) (chat.PostRef, bool, error)
}

// commandTaker takes a command as a chat message, or refuses it with
// commands.ErrQueueFull: the commands queue.
type commandTaker interface {
	Submit(ctx context.Context, m chat.Message, finished func()) error
}

// recipeUserPrefix marks the user a recipe's command runs as. Mattermost
// user IDs are 26 letters and digits, so no chat user can carry it.
const recipeUserPrefix = "recipe:"

// recipeLevels gives a recipe's command the level its action names, and
// anyone else the level levelOf gives.
func recipeLevels(levelOf func(chat.User) commands.Level) func(chat.User) commands.Level {
	return func(u chat.User) commands.Level {
		if rest, ok := strings.CutPrefix(u.ID, recipeUserPrefix); ok {
			lvl, _, _ := strings.Cut(rest, ":")
			switch lvl {
			case "admin":
				return commands.Admin
			case "operator":
				return commands.Operator
			}
			return commands.Everyone
		}
		return levelOf(u)
	}
}

// alertsChannel is where built-in alerts go: notifications.alerts.channel,
// else the ops channel; "" when neither is set.
func alertsChannel(cfg config.Config) string {
	if c := cfg.Notifications.Alerts.Channel; c != "" {
		return strings.TrimPrefix(c, "~")
	}
	return strings.TrimPrefix(cfg.Chat.OpsChannel, "~")
}

// Built-in recipe names.
const recipeContainerAlerts = "container-alerts"

func newNotifier(cfg config.Config, ob oncePoster, cmds commandTaker, log *slog.Logger) (*notifier, error) {
	n := &notifier{
		cfg: cfg.Notifications, builtin: map[string]bool{}, wake: make(chan struct{}, 1), log: log, now: time.Now,
		lastSrc: map[string]sourceResult{}, lastRun: map[string]runResult{},
		replaced: map[string]notifications.Replaced{}, handed: map[string]bool{},
	}
	for _, s := range cfg.Notifications.Sources {
		n.sources = append(n.sources, notifications.Source{Name: s.Name, Kind: s.Kind, Secret: s.Secret.Reveal()})
	}
	stateDir := filepath.Dir(cfg.Chat.StateFile)
	storeFile := cfg.Notifications.StoreFile
	if storeFile == "" {
		storeFile = filepath.Join(stateDir, "events.db")
	}
	memory, err := notifications.OpenFileStatus(filepath.Join(filepath.Dir(storeFile), "build-statuses.json"))
	if err != nil {
		return nil, &configError{msg: "notifications.store_file: " + err.Error()}
	}
	recipes := append([]notifications.Recipe(nil), cfg.Notifications.Recipes...)
	if ch := alertsChannel(cfg); ch != "" && cfg.Notifications.Alerts.Containers {
		// The watcher writes the whole alert; the recipe only routes it.
		recipes = append(recipes, notifications.Recipe{Name: recipeContainerAlerts, Source: notifications.SourceDocker,
			Actions: []notifications.Action{{Post: &notifications.PostAction{Channel: ch, Template: "{{.Text}}"}}}})
		n.builtin[recipeContainerAlerts] = true
	}
	n.store, err = notifications.OpenStore(storeFile, log)
	if err != nil {
		return nil, &configError{msg: "notifications.store_file: " + err.Error()}
	}
	n.engine, err = notifications.NewEngine(recipes, notifications.EngineOptions{
		Poster: outboxPoster{ob}, Commander: recipeCommander{q: cmds, channel: alertsChannel(cfg), track: n},
		Memory: memory, Logger: log, OnRun: n.ran, OnReplaced: n.replace,
		Waiting: n.store, OpsChannel: strings.TrimPrefix(cfg.Chat.OpsChannel, "~"),
		Now: func() time.Time { return n.now() },
	})
	if err != nil {
		n.store.Close()
		return nil, &configError{msg: "notifications.recipes: " + err.Error()}
	}
	n.server, err = notifications.NewServer(notifications.ServerOptions{
		Sources: n.sources, Store: n.store, Logger: log, Limits: cfg.Notifications.UnverifiedBodies,
		OnEvent:  func(notifications.Event) { n.kick() },
		OnResult: n.delivered,
	})
	if err != nil {
		n.store.Close()
		return nil, &configError{msg: "notifications.sources: " + err.Error()}
	}
	return n, nil
}

// Close closes the event store; events not yet handled stay in it.
func (n *notifier) Close() error { return n.store.Close() }

func (n *notifier) kick() {
	select {
	case n.wake <- struct{}{}:
	default: // a wake-up is pending already; it will see this event too
	}
}

// Emit stores an event Summoner makes itself (a container alert, a
// maintenance report) and wakes the recipes, as a webhook would.
func (n *notifier) Emit(_ context.Context, ev notifications.Event) error {
	if ev.Received.IsZero() {
		ev.Received = n.now().UTC()
	}
	fresh, err := n.store.Accept(ev)
	if err != nil {
		return fmt.Errorf("storing the %s event: %w", ev.Source, err)
	}
	n.delivered(ev.Source, ev.Received, 0, ev.Type)
	if fresh {
		n.kick()
	}
	return nil
}

// Run hands stored events to the recipes until ctx ends, the ones left
// from before a restart first, and tries the commands waiting for a place
// in the queue when they are due.
func (n *notifier) Run(ctx context.Context) error {
	for {
		n.drain(ctx)
		// A minute at most: a safety net; wake-ups do the work.
		wait := time.Minute
		if next := n.engine.Retry(ctx); !next.IsZero() {
			wait = min(max(next.Sub(n.now()), 0), wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-n.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (n *notifier) drain(ctx context.Context) {
	evs, err := n.store.Pending()
	if err != nil {
		n.log.Error("reading stored events", "err", err)
		return
	}
	for _, ev := range evs {
		err := n.engine.Handle(ctx, ev)
		if ctx.Err() != nil {
			return // stopping: the event stays stored and is handled at start
		}
		if errors.Is(err, notifications.ErrNotHandled) {
			n.log.Error("handing an event to the recipes; trying again later", "event", ev.ID, "err", err)
			return // it stays stored; the next wake-up tries again
		}
		if err != nil {
			// Each failure is logged and shown by `hooks`; the event is not
			// retried, since its other actions did run.
			n.log.Warn("an event's recipes did not all run", "event", ev.ID, "err", err)
		}
		if err := n.store.Done(ev.ID); err != nil {
			n.log.Error("marking an event done", "event", ev.ID, "err", err)
		}
	}
}

func (n *notifier) delivered(source string, at time.Time, status int, reason string) {
	n.mu.Lock()
	n.lastSrc[source] = sourceResult{at: at, status: status, reason: reason}
	n.mu.Unlock()
}

func (n *notifier) ran(recipe string, ev notifications.Event, err error) {
	n.mu.Lock()
	n.lastRun[recipe] = runResult{at: n.now(), eventID: ev.ID, event: notifications.EventWords(ev), err: err}
	n.mu.Unlock()
}

func (n *notifier) replace(r notifications.Replaced) {
	n.mu.Lock()
	n.replaced[r.Recipe] = r
	n.mu.Unlock()
}

// handOver and finished track the recipe commands in the queue, so that
// `hooks` says "done" only once they ran.
func (n *notifier) handOver(key string) {
	n.mu.Lock()
	n.handed[key] = true
	n.mu.Unlock()
}

func (n *notifier) finished(key string) {
	n.mu.Lock()
	delete(n.handed, key)
	n.mu.Unlock()
}

// runState is where a run that did not fail is; n.mu is held.
func (n *notifier) runState(recipe string, last runResult) commands.HookRunState {
	var waiting *notifications.WaitingError
	if errors.As(last.err, &waiting) {
		return commands.HookQueueFull
	}
	prefix := "hook/" + last.eventID + "/" + recipe + "/"
	for key := range n.handed {
		if strings.HasPrefix(key, prefix) {
			return commands.HookHandedOver
		}
	}
	return commands.HookDone
}

// eventTitle names one event among others of its kind: its title.
func eventTitle(ev notifications.Event) string {
	if ev.Title != "" {
		return ev.Title
	}
	return notifications.EventWords(ev)
}

// publicBase is where providers reach the webhooks.
func (n *notifier) publicBase(httpListen string) string {
	if n.cfg.PublicURL != "" {
		return strings.TrimRight(n.cfg.PublicURL, "/")
	}
	addr := n.cfg.Listen
	if addr == "" {
		addr = httpListen
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("<this server>", port)
	}
	return "http://" + addr
}

// hooksView is the notifier as the hooks commands see it.
type hooksView struct {
	n    *notifier
	base string
}

var _ commands.Hooks = hooksView{}

func (h hooksView) Overview(context.Context) commands.HooksOverview {
	n := h.n
	n.mu.Lock()
	defer n.mu.Unlock()
	var o commands.HooksOverview
	for _, s := range n.sources {
		path := notifications.URL(s)
		if s.Kind == notifications.KindSlack {
			// The secret is the path's last part: never in chat.
			path = "/hooks/" + s.Name + "/***"
		}
		last := n.lastSrc[s.Name]
		o.Sources = append(o.Sources, commands.HookSourceInfo{Name: s.Name, Kind: s.Kind, URL: h.base + path,
			Last: last.at, LastStatus: last.status, LastReason: last.reason})
	}
	for _, s := range []string{notifications.SourceDocker, notifications.SourceMaintenance} {
		last := n.lastSrc[s]
		o.Sources = append(o.Sources, commands.HookSourceInfo{Name: s, Kind: s, Internal: true, Last: last.at, LastReason: last.reason})
	}
	waiting := n.engine.Waiting()
	for _, r := range n.engine.Recipes() {
		info := commands.HookRecipeInfo{Name: r.Name, Source: r.Source, Filters: recipeFilters(r), Builtin: n.builtin[r.Name]}
		for _, a := range r.Actions {
			info.Actions = append(info.Actions, actionWords(a))
		}
		if last, ok := n.lastRun[r.Name]; ok {
			info.Last, info.LastEvent = last.at, last.event
			info.LastState = n.runState(r.Name, last)
			if last.err != nil && info.LastState != commands.HookQueueFull {
				info.LastErr = last.err.Error()
			}
		}
		for _, w := range waiting {
			if w.Recipe != r.Name {
				continue
			}
			info.Waiting = append(info.Waiting, commands.HookWaiting{Command: n.engine.CommandOf(w), Event: notifications.EventWords(w.Event),
				Since: w.Since, Next: w.Next, Tries: w.Tries, GiveUp: n.engine.GiveUpAt(w)})
		}
		if x, ok := n.replaced[r.Name]; ok {
			info.Replaced = &commands.HookReplaced{Command: x.Command, Event: eventTitle(x.Old), By: eventTitle(x.By), At: x.At}
		}
		o.Recipes = append(o.Recipes, info)
	}
	return o
}

func (h hooksView) Test(_ context.Context, recipe, sample string) (commands.HookPreview, error) {
	n := h.n
	var r *notifications.Recipe
	for _, x := range n.engine.Recipes() {
		if x.Name == recipe {
			r = &x
			break
		}
	}
	if r == nil {
		return commands.HookPreview{}, commands.Errorf("There is no recipe `%s`; `hooks` lists them.", recipe)
	}
	src := notifications.Source{Name: r.Source, Kind: r.Source} // docker, maintenance
	for _, s := range n.sources {
		if s.Name == r.Source {
			src = s
		}
	}
	ev, err := notifications.Sample(src, sample, n.now())
	if err != nil {
		return commands.HookPreview{}, commands.Errorf("That sample does not work: %v", err)
	}
	posts, matched, reason, err := n.engine.Preview(recipe, ev)
	if err != nil {
		return commands.HookPreview{}, commands.Errorf("The recipe `%s` cannot render this event: %v", recipe, err)
	}
	p := commands.HookPreview{Event: fmt.Sprintf("a %s %s event (%s)", src.Kind, ev.Type, notifications.EventWords(ev)), Matched: matched, Reason: reason}
	i := 0
	for _, a := range r.Actions {
		if a.Post != nil && i < len(posts) {
			p.Posts = append(p.Posts, "~"+strings.TrimPrefix(a.Post.Channel, "~")+":\n"+quote(posts[i]))
			i++
			continue
		}
		p.Others = append(p.Others, "It would "+actionWords(a)+".")
	}
	return p, nil
}

// quote makes a Markdown block quote of text.
func quote(text string) string {
	return "> " + strings.ReplaceAll(text, "\n", "\n> ")
}

func recipeFilters(r notifications.Recipe) string {
	var parts []string
	add := func(what string, vals []string) {
		if len(vals) > 0 {
			parts = append(parts, what+" "+strings.Join(vals, ", "))
		}
	}
	add("events", r.Events)
	add("projects", r.Projects)
	add("branches", r.Branches)
	add("statuses", r.Statuses)
	if r.StatusChanged {
		parts = append(parts, "only when the status changed")
	}
	return strings.Join(parts, "; ")
}

func actionWords(a notifications.Action) string {
	switch {
	case a.Post != nil:
		return "post to ~" + strings.TrimPrefix(a.Post.Channel, "~")
	case a.Command != nil:
		level := a.Command.Level
		if level == "" {
			level = "everyone"
		}
		return fmt.Sprintf("run `%s` as %s", a.Command.Line, level)
	case a.Forward != nil:
		return "forward to " + notifications.RedactURL(a.Forward.URL)
	}
	return "nothing"
}

// outboxPoster posts a recipe's messages through the persistent outbox,
// by channel name, once per key.
type outboxPoster struct{ ob oncePoster }

func (p outboxPoster) Post(ctx context.Context, key, channel, text string) error {
	_, _, err := p.ob.PostOnce(ctx, key, chat.Destination{ChannelID: "~" + strings.TrimPrefix(channel, "~")}, text)
	return err
}

// recipeCommander hands a recipe's command to the commands queue as a
// message from a recipe user whose level is the action's. Its ID is the
// action's key: the queue's journal runs an ID once, so an event handled
// again after a crash does not deploy twice.
type recipeCommander struct {
	q       commandTaker
	channel string // replies go here when the action names no channel
	track   interface {
		handOver(key string)
		finished(key string)
	}
}

var errNoReplyChannel = errors.New("the command action names no channel, and no ops channel is set")

func (c recipeCommander) Run(ctx context.Context, key string, a notifications.CommandAction) error {
	ch := strings.TrimPrefix(a.Channel, "~")
	if ch == "" {
		ch = c.channel
	}
	if ch == "" {
		return errNoReplyChannel
	}
	level := a.Level
	if level == "" {
		level = "everyone"
	}
	now := time.Now()
	name, _, _ := strings.Cut(strings.TrimPrefix(key, "hook/"), "/")
	c.track.handOver(key)
	err := c.q.Submit(ctx, chat.Message{
		ID: key, Text: a.Line,
		User:    chat.User{ID: recipeUserPrefix + level + ":" + name, Username: "recipe"},
		Channel: chat.Channel{ID: "~" + ch, Name: ch},
		At:      now, Received: now,
	}, func() { c.track.finished(key) })
	if err != nil {
		c.track.finished(key)
	}
	if errors.Is(err, commands.ErrQueueFull) {
		// The recipes keep the command and try again.
		return fmt.Errorf("%w", notifications.ErrQueueFull)
	}
	return err
}

// notifyReports publishes maintenance reports as before and also hands
// each to the recipes as a "maintenance" event, so a team can send, say,
// backup failures to a second channel.
type notifyReports struct {
	next maintenance.ReportPublisher
	n    *notifier
}

func (r notifyReports) Publish(ctx context.Context, rep maintenance.Report) error {
	err := r.next.Publish(ctx, rep)
	status := "success"
	if rep.Failed() {
		status = "failed"
	}
	text := rep.Render()
	title, _, _ := strings.Cut(text, "\n")
	ev := notifications.Event{
		ID:     fmt.Sprintf("maintenance:%s:%d", rep.Job, rep.Started.UnixNano()),
		Source: notifications.SourceMaintenance, Kind: notifications.SourceMaintenance,
		Type: rep.Job, Status: status, Title: title, Text: text,
	}
	if eerr := r.n.Emit(ctx, ev); eerr != nil {
		r.n.log.Error("handing a maintenance report to the recipes", "job", rep.Job, "err", eerr)
	}
	return err
}

// listen opens the webhooks' own address, when one is set (nil, nil
// when they are served on http.listen).
func (n *notifier) listen() (net.Listener, error) {
	if n.cfg.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", n.cfg.Listen)
	if err != nil {
		return nil, &configError{msg: fmt.Sprintf("notifications.listen: cannot listen on %s: %v", n.cfg.Listen, err)}
	}
	return ln, nil
}

// httpServer is the webhook server for a listener of its own.
func (n *notifier) httpServer() *http.Server { return n.server.HTTPServer(n.cfg.Listen) }

// containerWatcher turns the Docker events of summoned minions into alerts
// through the recipes (the built-in one posts them to the ops channel).
func containerWatcher(cfg config.Config, dc notifications.DockerAPI, n *notifier, log *slog.Logger) *notifications.Watcher {
	states := &minions.StateStore{Dir: cfg.Docker.StateDir}
	return notifications.NewWatcher(notifications.WatcherOptions{
		Docker: dc, Emit: n.Emit, Logger: log,
		Window: cfg.Notifications.Alerts.Window.D(), LogLines: cfg.Notifications.Alerts.LogLines,
		// Generated passwords and secret settings never reach the channel,
		// even when an app prints them in its log.
		Secrets: func(minion string) []string {
			st, err := states.Load(minion)
			if err != nil {
				return nil
			}
			var out []string
			for _, v := range st.Secrets {
				if len(v) >= 4 {
					out = append(out, v)
				}
			}
			return out
		},
	})
}
