package notifications

// Docker events of summoned minions, turned into alerts.
//
// The order of events, measured on this machine's engine (Docker 20.10.24,
// API 1.41) with `docker events`:
//
//	docker stop      kill (signal 15) → die (exitCode 0) → stop, ~50 ms after the die
//	docker restart   kill (15) → die → stop → start → restart
//	docker kill      kill (signal 9) → die (exitCode 137); no stop, and the
//	                 restart policy is not applied
//	docker rm -f     kill (9) → die (137) → destroy, ~60 ms after the die
//	crash (exit 1)   start → die (exitCode 1)
//	restart policy   die → start after Docker's backoff (~0.3 s, doubling);
//	                 no restart event; a stop during the backoff gives a bare stop
//	out of memory    oom → die (137)
//	health check     "health_status: unhealthy" / "health_status: healthy", only
//	                 when the status changes (none for "starting"); every probe
//	                 also sends exec_create/exec_start/exec_die, filtered out here
//	rename           rename, with the new name in the name attribute
//
// So a kill says nothing (docker stop sends one too), and what makes a die
// deliberate comes after it: a die is held for a short grace and dropped if a
// stop or destroy of the same container follows (docker stop, Summoner's
// deploys, banish and cold backups stop or force-remove). A deploy renames
// the old container to <name>.summoner-old after stopping it; those are
// ignored altogether.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"
)

// DockerAPI is the part of the Docker client the watcher uses.
type DockerAPI interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	ContainerLogs(ctx context.Context, container string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerInspect(ctx context.Context, container string) (container.InspectResponse, error)
}

// Event types the watcher emits (Event.Type).
const (
	DockerContainerDied      = "container_died"
	DockerContainerUnhealthy = "container_unhealthy"
	DockerCrashLoop          = "crash_loop"
	DockerContainerRecovered = "container_recovered"
)

const (
	dockerLabelMinion  = "summoner.minion"
	dockerLabelService = "com.docker.compose.service"
	dockerOldSuffix    = ".summoner-old" // a container a deploy keeps aside

	dockerMaxLine  = 300       // runes of one log line in an alert
	dockerMaxText  = 12000     // runes of an alert's Text: Mattermost takes 16383, recipes may add to it
	dockerMaxLogs  = 256 << 10 // bytes of the log stream kept, the newest
	dockerReadLogs = 16 << 20  // bytes of the log stream read at most
	dockerSeenKeep = 4096      // events remembered to drop the ones a reconnect reads again
	dockerShortID  = 12        // characters of a container ID in texts
	dockerMinQuiet = 3         // a secret shorter than this is not hidden: it would black out ordinary text
	dockerEmptyLog = "(no log lines)"
)

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	Docker DockerAPI
	// Emit hands an alert over; the daemon persists it and runs the
	// recipes. It is called from one goroutine of the watcher at a time;
	// an error is logged.
	Emit func(ctx context.Context, ev Event) error
	// Secrets returns values to hide in log lines for a minion (its secret
	// settings: passwords, tokens). May be nil.
	Secrets  func(minion string) []string
	Window   time.Duration // rate-limit window per minion (default 10m)
	LogLines int           // last log lines in an alert (default 20)
	Logger   *slog.Logger
	Now      func() time.Time
}

// Watcher follows the Docker events of summoned minions and emits alerts:
// a container died, turned unhealthy, keeps crashing, or is back.
//
// Rate limit, per minion: the first failure opens a window and is alerted
// at once. Failures inside the window are counted, not alerted; one
// follow-up (crash_loop) goes out early only if the minion failed again
// after its recovery was announced (so "running again" is never the last
// word on a dead minion). When the window ends with failures counted, one
// crash_loop summary says how many and opens the next window. A crash loop
// of 50 restarts in 30 s thus gives one alert, then one summary when the
// window ends.
type Watcher struct {
	o   WatcherOptions
	log *slog.Logger

	// Timings, unexported so that tests can shorten them.
	grace      time.Duration // how long a die waits for the stop or destroy that makes it deliberate
	stable     time.Duration // how long a restarted container must keep running to count as recovered
	sweepEvery time.Duration // how often ended windows are looked for
	fetchLimit time.Duration // deadline of the logs and inspect of one alert
	backoffMin time.Duration // first wait before reconnecting to the event stream
	backoffMax time.Duration // cap of that wait; a stream up this long resets it
	wallNow    func() time.Time
	afterFunc  func(d time.Duration, f func()) // time.AfterFunc; tests fire them by hand
}

// NewWatcher returns a watcher; Run starts it.
func NewWatcher(o WatcherOptions) *Watcher {
	if o.Window <= 0 {
		o.Window = 10 * time.Minute
	}
	if o.LogLines <= 0 {
		o.LogLines = 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Watcher{
		o:          o,
		log:        o.Logger,
		grace:      2 * time.Second,
		stable:     10 * time.Second, // Docker itself resets its restart backoff after 10 s up
		sweepEvery: 10 * time.Second,
		fetchLimit: 5 * time.Second,
		backoffMin: time.Second,
		backoffMax: 30 * time.Second,
		wallNow:    time.Now,
		afterFunc:  func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
}

// Run follows the event stream until ctx ends, then returns nil. When the
// daemon goes away it reconnects with a capped backoff and resumes from
// the last event seen, so deaths during the gap are still reported (the
// engine keeps its last 256 events in memory: a long gap on a busy engine
// loses the oldest). Call it once at a time.
func (w *Watcher) Run(ctx context.Context) error {
	if w.o.Docker == nil || w.o.Emit == nil {
		return errors.New("docker watcher: Docker and Emit are required")
	}
	s := &watch{
		w:       w,
		ctx:     ctx,
		ctrs:    map[string]*watchedContainer{},
		minions: map[string]*watchedMinion{},
		seen:    map[string]struct{}{},
		graceCh: make(chan graceFire),
		checkCh: make(chan stableCheck),
		retryCh: make(chan retryFire),
		jobs:    make(chan alertJob, 64),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.deliverAll(ctx, s.jobs)
	}()
	defer wg.Wait()

	sweep := time.NewTicker(w.sweepEvery)
	defer sweep.Stop()

	// The first subscription reads from the moment Run was called, so
	// nothing that happens while it connects is missed.
	since := w.wallNow()
	var (
		msgs        <-chan events.Message
		errs        <-chan error
		stopStream  context.CancelFunc = func() {}
		connectedAt time.Time
		lost        bool
		delay       = w.backoffMin
	)
	defer func() { stopStream() }()
	connect := func() {
		opts := events.ListOptions{Filters: dockerFilters(), Since: dockerSince(since)}
		if s.lastTime > 0 {
			opts.Since = dockerSince(time.Unix(0, s.lastTime))
		}
		var sctx context.Context
		sctx, stopStream = context.WithCancel(ctx)
		s.connected, connectedAt = true, w.wallNow()
		msgs, errs = w.o.Docker.Events(sctx, opts)
	}
	connect()
	w.log.Info("watching Docker events of minions", "since", dockerSince(since))
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			if lost {
				lost = false
				w.log.Info("Docker event stream is back")
			}
			s.handle(m)
		case err := <-errs:
			stopStream()
			msgs, errs, s.connected = nil, nil, false
			if ctx.Err() != nil {
				return nil
			}
			if w.wallNow().Sub(connectedAt) >= w.backoffMax {
				delay = w.backoffMin
			}
			lost = true
			w.log.Warn("Docker event stream lost; reconnecting", "err", err, "retry_in", delay)
			s.after(delay, func() any { return retryFire{} })
			delay = min(delay*2, w.backoffMax)
		case <-s.retryCh:
			w.log.Info("reconnecting to the Docker event stream", "since", dockerSince(time.Unix(0, max(s.lastTime, since.UnixNano()))))
			connect()
		case f := <-s.graceCh:
			s.graceEnded(f)
		case c := <-s.checkCh:
			s.stableChecked(c)
		case <-sweep.C:
			s.sweep()
		}
	}
}

// dockerFilters keeps the stream to minions' containers and the actions
// the watcher acts on (health probes alone would send three exec events
// each interval).
func dockerFilters() filters.Args {
	return filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", dockerLabelMinion),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("event", string(events.ActionStop)),
		filters.Arg("event", string(events.ActionStart)),
		filters.Arg("event", string(events.ActionDestroy)),
		filters.Arg("event", string(events.ActionRename)),
		filters.Arg("event", string(events.ActionOOM)),
		filters.Arg("event", string(events.ActionHealthStatus)),
	)
}

// dockerSince formats t as the API's since: seconds.nanoseconds, which the
// engine takes as inclusive.
func dockerSince(t time.Time) string {
	ns := t.UnixNano()
	return fmt.Sprintf("%d.%09d", ns/1e9, ns%1e9)
}

// watch is the state of one Run, owned by its goroutine.
type watch struct {
	w         *Watcher
	ctx       context.Context
	ctrs      map[string]*watchedContainer
	minions   map[string]*watchedMinion
	seen      map[string]struct{}
	seenOrder []string
	lastTime  int64 // TimeNano of the newest event handled
	connected bool
	graceCh   chan graceFire
	checkCh   chan stableCheck
	retryCh   chan retryFire
	jobs      chan alertJob
}

type watchedContainer struct {
	id, minion, service, name string
	pending                   *failure       // a die waiting out the grace
	oom                       bool           // an oom came since the last start
	gen                       int            // bumped by each start and die: a stable check of an older run is stale
	started                   events.Message // the last start: a recovery it proves is named after it
}

type watchedMinion struct {
	open        bool      // a window is open
	windowStart time.Time // when the message that opened it went out
	followUp    bool      // the window's follow-up went out
	exits       int       // failures counted since the last message
	unhealthy   int
	said        bool              // a failure was announced and its recovery not yet
	down        map[string]string // service → container ID, failed and not back
	last        *failure          // the newest failure: its logs go with a summary
}

type failure struct {
	msg       events.Message
	kind      string // DockerContainerDied or DockerContainerUnhealthy
	container *watchedContainer
	exit      int
	oom       bool
}

type graceFire struct {
	id       string
	timeNano int64
}

type retryFire struct{}

type stableCheck struct {
	id      string
	gen     int
	running bool
	health  string // "" without a health check
	err     error
}

// handle applies one event. Events a reconnect reads again are dropped
// here, so they never count twice.
func (s *watch) handle(m events.Message) {
	key := m.Actor.ID + "\x00" + string(m.Action) + "\x00" + strconv.FormatInt(m.TimeNano, 10)
	if _, dup := s.seen[key]; dup {
		return
	}
	s.seen[key] = struct{}{}
	s.seenOrder = append(s.seenOrder, key)
	if len(s.seenOrder) > dockerSeenKeep {
		delete(s.seen, s.seenOrder[0])
		s.seenOrder = s.seenOrder[1:]
	}
	s.lastTime = max(s.lastTime, m.TimeNano)

	attrs := m.Actor.Attributes
	minion := attrs[dockerLabelMinion]
	if m.Type != events.ContainerEventType || minion == "" || m.Actor.ID == "" {
		return
	}
	id, name := m.Actor.ID, attrs["name"]
	switch m.Action {
	case events.ActionDestroy:
		// Removed on purpose (banish, a deploy's clean-up, docker rm -f):
		// a die held in the grace was part of it.
		delete(s.ctrs, id)
		return
	case events.ActionRename:
		if c := s.ctrs[id]; c != nil && strings.HasSuffix(name, dockerOldSuffix) {
			c.pending = nil // set aside by a deploy
		}
	}
	if strings.HasSuffix(name, dockerOldSuffix) {
		return
	}
	c := s.ctrs[id]
	if c == nil {
		c = &watchedContainer{id: id}
		s.ctrs[id] = c
	}
	c.minion, c.name = minion, name
	c.service = attrs[dockerLabelService]
	if c.service == "" {
		c.service = name
	}

	switch m.Action {
	case events.ActionStop:
		c.pending = nil // stopped on purpose: the die before it is no news
	case events.ActionOOM:
		c.oom = true
	case events.ActionDie:
		s.commit(c) // an earlier die followed by a start was no stop
		c.gen++
		exit, _ := strconv.Atoi(attrs["exitCode"])
		c.pending = &failure{msg: m, kind: DockerContainerDied, container: c, exit: exit, oom: c.oom}
		c.oom = false
		s.after(s.w.grace, func() any { return graceFire{id: id, timeNano: m.TimeNano} })
	case events.ActionStart:
		s.commit(c)
		c.gen++
		c.oom = false
		c.started = m
		if mn := s.minions[minion]; mn != nil && mn.down[c.service] != "" {
			s.checkStable(c)
		}
	case events.ActionHealthStatusUnhealthy:
		s.fail(&failure{msg: m, kind: DockerContainerUnhealthy, container: c})
	case events.ActionHealthStatusHealthy:
		s.recovered(c, m)
	}
}

// after sends what make returns to the loop once d has passed, unless the
// run ends first.
func (s *watch) after(d time.Duration, fn func() any) {
	s.w.afterFunc(d, func() {
		v := fn()
		switch v := v.(type) {
		case graceFire:
			select {
			case s.graceCh <- v:
			case <-s.ctx.Done():
			}
		case stableCheck:
			select {
			case s.checkCh <- v:
			case <-s.ctx.Done():
			}
		case retryFire:
			select {
			case s.retryCh <- v:
			case <-s.ctx.Done():
			}
		}
	})
}

// commit turns a held die into a failure.
func (s *watch) commit(c *watchedContainer) {
	if f := c.pending; f != nil {
		c.pending = nil
		s.fail(f)
	}
}

func (s *watch) graceEnded(f graceFire) {
	c := s.ctrs[f.id]
	if c == nil || c.pending == nil || c.pending.msg.TimeNano != f.timeNano {
		return // stopped, removed, or already counted
	}
	if !s.connected {
		// The stop that explains it may be in the gap: the reconnect
		// reads it again. Wait for that.
		s.after(s.w.grace, func() any { return f })
		return
	}
	s.commit(c)
}

// checkStable looks, once the container has run for the stable time,
// whether it is still running and healthy (or has no health check).
func (s *watch) checkStable(c *watchedContainer) {
	id, gen := c.id, c.gen
	s.after(s.w.stable, func() any {
		ctx, cancel := context.WithTimeout(s.ctx, s.w.fetchLimit)
		defer cancel()
		r := stableCheck{id: id, gen: gen}
		info, err := s.w.o.Docker.ContainerInspect(ctx, id)
		if err != nil {
			r.err = fmt.Errorf("inspecting container %s: %w", shortID(id), err)
			return r
		}
		if info.ContainerJSONBase != nil && info.State != nil {
			r.running = info.State.Running && !info.State.Restarting
			if info.State.Health != nil && info.State.Health.Status != container.NoHealthcheck {
				r.health = info.State.Health.Status
			}
		}
		return r
	})
}

func (s *watch) stableChecked(r stableCheck) {
	c := s.ctrs[r.id]
	if c == nil || c.gen != r.gen {
		return // it died or restarted since: that run did not last
	}
	if r.err != nil {
		s.w.log.Warn("checking whether a minion recovered", "minion", c.minion, "container", c.name, "err", r.err)
		return
	}
	// With a health check, "healthy" decides; its event says so.
	if r.running && (r.health == "" || r.health == container.Healthy) {
		s.recovered(c, c.started)
	}
}

// fail counts a failure and alerts as the rate limit allows.
func (s *watch) fail(f *failure) {
	c := f.container
	mn := s.minions[c.minion]
	if mn == nil {
		mn = &watchedMinion{down: map[string]string{}}
		s.minions[c.minion] = mn
	}
	mn.down[c.service] = c.id
	now := s.w.o.Now()
	s.expire(c.minion, mn, now)
	if !mn.open {
		mn.open, mn.windowStart, mn.followUp, mn.said = true, now, false, true
		mn.exits, mn.unhealthy, mn.last = 0, 0, nil
		s.queue(s.w.alert(f, now))
		return
	}
	if f.kind == DockerContainerDied {
		mn.exits++
	} else {
		mn.unhealthy++
	}
	mn.last = f
	if !mn.followUp && !mn.said {
		// It was announced as running again: say at once that it is not.
		s.queue(s.w.crashLoop(c.minion, mn, now))
		mn.followUp, mn.said, mn.exits, mn.unhealthy = true, true, 0, 0
	}
}

// expire ends a minion's window once it has passed: with failures counted
// a summary goes out and opens the next one.
func (s *watch) expire(minion string, mn *watchedMinion, now time.Time) {
	if !mn.open || now.Sub(mn.windowStart) < s.w.o.Window {
		return
	}
	if mn.exits+mn.unhealthy == 0 {
		mn.open = false
		return
	}
	s.queue(s.w.crashLoop(minion, mn, now))
	mn.windowStart, mn.followUp, mn.exits, mn.unhealthy = now, true, 0, 0
	mn.said = len(mn.down) > 0
}

func (s *watch) sweep() {
	now := s.w.o.Now()
	for name, mn := range s.minions {
		s.expire(name, mn, now)
	}
}

// recovered marks c's service as back; once all its failed services are,
// a minion whose failure was announced gets its "running again".
func (s *watch) recovered(c *watchedContainer, m events.Message) {
	mn := s.minions[c.minion]
	if mn == nil || mn.down[c.service] == "" {
		return
	}
	delete(mn.down, c.service)
	if len(mn.down) > 0 || !mn.said {
		return
	}
	mn.said = false
	now := s.w.o.Now()
	title := fmt.Sprintf("✅ %s: %s is running again", c.minion, c.service)
	s.queue(alertJob{
		ev:   s.w.event(DockerContainerRecovered, "success", c.minion, title, m, now),
		lead: []string{fmt.Sprintf("✅ **%s**: `%s` is running again.", mdEscape(c.minion), c.service)},
	})
}

// queue hands a job to the delivering goroutine, in order.
func (s *watch) queue(j alertJob) {
	select {
	case s.jobs <- j:
	case <-s.ctx.Done():
	}
}

// alertJob is an alert decided by the loop; the delivering goroutine adds
// the container's details and logs, which take I/O, and emits it.
type alertJob struct {
	ev        Event
	lead      []string // markdown lines before the details
	container string   // whose logs to add; "" for none
	health    bool     // add the last health check's output
	minion    string
}

func (w *Watcher) event(typ, status, minion, title string, m events.Message, now time.Time) Event {
	payload, _ := json.Marshal(m) // a plain struct: cannot fail
	return Event{
		ID:       fmt.Sprintf("docker/%s/%d/%s", m.Actor.ID, m.TimeNano, typ),
		Source:   SourceDocker,
		Kind:     SourceDocker,
		Type:     typ,
		Project:  minion,
		Status:   status,
		Title:    title,
		Received: now,
		Payload:  payload,
	}
}

func (w *Watcher) alert(f *failure, now time.Time) alertJob {
	c := f.container
	j := alertJob{container: c.id, minion: c.minion}
	if f.kind == DockerContainerUnhealthy {
		title := fmt.Sprintf("🟠 %s: container %s is unhealthy", c.minion, c.service)
		j.ev = w.event(DockerContainerUnhealthy, "failed", c.minion, title, f.msg, now)
		j.lead = []string{fmt.Sprintf("🟠 **%s**: container `%s` is unhealthy: its health check fails.", mdEscape(c.minion), c.service)}
		j.health = true
		return j
	}
	title := fmt.Sprintf("🔴 %s: container %s died (exit code %d)", c.minion, c.service, f.exit)
	j.ev = w.event(DockerContainerDied, "failed", c.minion, title, f.msg, now)
	j.lead = []string{fmt.Sprintf("🔴 **%s**: container `%s` died (exit code %d: %s)", mdEscape(c.minion), c.service, f.exit, exitMeaning(f.exit, f.oom))}
	return j
}

func (w *Watcher) crashLoop(minion string, mn *watchedMinion, now time.Time) alertJob {
	f := mn.last
	c := f.container
	var counts []string
	if mn.exits > 0 {
		counts = append(counts, plural(mn.exits, "more exit", "more exits"))
	}
	if mn.unhealthy > 0 {
		counts = append(counts, plural(mn.unhealthy, "failed health check", "failed health checks"))
	}
	span := roundSpan(now.Sub(mn.windowStart))
	what := strings.Join(counts, " and ")
	title := fmt.Sprintf("🔁 %s/%s keeps crashing: %s in the last %s", minion, c.service, what, span)
	lead := fmt.Sprintf("🔁 **%s**/`%s` keeps crashing: %s in the last %s", mdEscape(minion), c.service, what, span)
	if f.kind == DockerContainerDied {
		lead += fmt.Sprintf(" (last exit code %d: %s)", f.exit, exitMeaning(f.exit, f.oom))
	}
	j := alertJob{container: c.id, minion: minion, health: f.kind == DockerContainerUnhealthy}
	// The ID is that of the newest failure counted: a new one for each
	// summary, the same if a reconnect made it count twice.
	j.ev = w.event(DockerCrashLoop, "failed", minion, title, f.msg, now)
	j.lead = []string{lead + "."}
	if len(mn.down) == 0 {
		j.lead = append(j.lead, "It is running again now.")
	}
	return j
}

// exitMeaning explains an exit code to whoever reads the alert.
func exitMeaning(code int, oom bool) string {
	switch {
	case oom:
		return "killed: it ran out of memory"
	case code == 0:
		return "the main process ended by itself"
	case code == 126:
		return "its command cannot run"
	case code == 127:
		return "its command was not found"
	case code == 137:
		return "killed, e.g. out of memory or `docker kill`"
	case code == 139:
		return "crashed (segmentation fault)"
	case code == 143:
		return "terminated (SIGTERM) from outside Summoner"
	case code > 128 && code < 128+65:
		return fmt.Sprintf("killed by signal %d", code-128)
	default:
		return "the app failed"
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func roundSpan(d time.Duration) string {
	switch {
	case d >= time.Minute:
		m := int((d + 30*time.Second) / time.Minute)
		return plural(m, "minute", "minutes")
	default:
		return plural(max(1, int((d+time.Second/2)/time.Second)), "second", "seconds")
	}
}

func shortID(id string) string {
	if len(id) > dockerShortID {
		return id[:dockerShortID]
	}
	return id
}

// mdEscape keeps a minion name from turning into markdown.
func mdEscape(s string) string {
	return strings.NewReplacer("*", `\*`, "_", `\_`, "`", "'", "~", `\~`).Replace(s)
}

// deliverAll adds details to the alerts in order and emits them.
func (w *Watcher) deliverAll(ctx context.Context, jobs <-chan alertJob) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-jobs:
			ev := w.complete(ctx, j)
			if err := w.o.Emit(ctx, ev); err != nil {
				w.log.Error("handing over a Docker alert", "id", ev.ID, "minion", ev.Project, "err", err)
			}
		}
	}
}

// complete writes the alert's Text: its lead, what Docker says of the
// container, and its last log lines with secrets hidden.
func (w *Watcher) complete(ctx context.Context, j alertJob) Event {
	ev := j.ev
	lines := slices.Clone(j.lead)
	if j.container == "" {
		ev.Text = strings.Join(lines, "\n")
		return ev
	}
	d := w.details(ctx, j.container)
	var secrets []string
	if w.o.Secrets != nil {
		secrets = w.o.Secrets(j.minion)
	}
	hide := newRedactor(secrets)
	if d.restart != "" {
		lines = append(lines, d.restart)
	}
	if j.health && d.health != "" {
		lines = append(lines, "Last health check: `"+strings.ReplaceAll(hide.line(d.health), "`", "'")+"`")
	}
	if d.err != nil {
		// Docker's own message may name paths and the socket; alerts go to
		// channels whose members may be plain members, so the log has it.
		w.log.Warn("reading a container's log lines for an alert", "container", shortID(j.container), "err", d.err)
		why := d.errText
		if why == "" {
			why = "Docker could not give them (Summoner's log says why)"
		}
		lines = append(lines, fmt.Sprintf("No log lines: %s.", why))
		ev.Text = strings.Join(lines, "\n")
		return ev
	}
	head := strings.Join(lines, "\n") + "\n"
	logs := make([]string, 0, len(d.logs))
	for _, l := range d.logs {
		logs = append(logs, hide.line(l))
	}
	ev.Text = head + logBlock(logs, dockerMaxText-utf8.RuneCountInString(head))
	return ev
}

// logBlock puts lines in a code block of at most budget runes, leaving
// out the oldest lines first.
func logBlock(lines []string, budget int) string {
	if len(lines) == 0 {
		lines = []string{dockerEmptyLog}
	}
	const fence = "```"
	size := func(ls []string, dropped int) int {
		n := 2*len(fence) + 2
		if dropped > 0 {
			n += 40
		}
		for _, l := range ls {
			n += utf8.RuneCountInString(l) + 1
		}
		return n
	}
	dropped := 0
	for len(lines) > 1 && size(lines, dropped) > budget {
		lines = lines[1:]
		dropped++
	}
	var b strings.Builder
	if dropped > 0 {
		fmt.Fprintf(&b, "(%s left out)\n", plural(dropped, "earlier line", "earlier lines"))
	}
	b.WriteString(fence + "\n")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	b.WriteString(fence)
	return b.String()
}

type containerDetails struct {
	logs    []string
	err     error  // why there are no logs, for the log
	errText string // the same in words any channel may read
	restart string // "Docker restarts it …", or ""
	health  string // the last health check's output
}

// details inspects the container and reads its last log lines within the
// fetch deadline, whatever the daemon does: an implementation that ignores
// ctx is left behind rather than waited for.
func (w *Watcher) details(ctx context.Context, id string) containerDetails {
	ctx, cancel := context.WithTimeout(ctx, w.fetchLimit)
	defer cancel()
	done := make(chan containerDetails, 1)
	go func() { done <- w.fetchDetails(ctx, id) }()
	select {
	case d := <-done:
		return d
	case <-ctx.Done():
		msg := fmt.Sprintf("Docker did not answer within %s", w.fetchLimit)
		return containerDetails{err: errors.New(msg), errText: msg}
	}
}

func (w *Watcher) fetchDetails(ctx context.Context, id string) containerDetails {
	var d containerDetails
	tty := false
	info, err := w.o.Docker.ContainerInspect(ctx, id)
	if err != nil {
		// Logs may still come; without a TTY is the usual case.
		w.log.Warn("inspecting a container for an alert", "container", shortID(id), "err", err)
	} else {
		if info.Config != nil {
			tty = info.Config.Tty
		}
		if info.ContainerJSONBase != nil {
			if info.HostConfig != nil {
				switch p := info.HostConfig.RestartPolicy; {
				case p.IsAlways(), p.IsUnlessStopped(), p.IsOnFailure():
					d.restart = fmt.Sprintf("Docker restarts it (restart policy %s; restarted %s so far).", p.Name, plural(info.RestartCount, "time", "times"))
				}
			}
			if st := info.State; st != nil && st.Health != nil && len(st.Health.Log) > 0 {
				last := st.Health.Log[len(st.Health.Log)-1]
				d.health = fmt.Sprintf("exit %d: %s", last.ExitCode, strings.TrimSpace(last.Output))
			}
		}
	}
	d.logs, d.err = w.tail(ctx, id, tty)
	return d
}

// tail reads the last log lines, demultiplexing them unless the container
// has a TTY.
func (w *Watcher) tail(ctx context.Context, id string, tty bool) ([]string, error) {
	rc, err := w.o.Docker.ContainerLogs(ctx, id, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(w.o.LogLines),
	})
	if err != nil {
		return nil, fmt.Errorf("reading the logs of %s: %w", shortID(id), err)
	}
	defer rc.Close()
	// Closing the body is what unblocks a read stuck on a frozen daemon.
	stop := context.AfterFunc(ctx, func() { rc.Close() })
	defer stop()
	buf := &tailBuffer{keep: dockerMaxLogs}
	r := io.LimitReader(rc, dockerReadLogs)
	if tty {
		_, err = io.Copy(buf, r)
	} else {
		_, err = stdcopy.StdCopy(buf, buf, r)
	}
	if err != nil && len(buf.b) == 0 {
		if ctx.Err() != nil {
			// For the log only: the alert says it in its own words.
			return nil, fmt.Errorf("reading the logs of %s: no answer from Docker within %s", shortID(id), w.fetchLimit)
		}
		return nil, fmt.Errorf("reading the logs of %s: %w", shortID(id), err)
	}
	text := strings.TrimRight(string(buf.bytes()), "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > w.o.LogLines {
		lines = lines[len(lines)-w.o.LogLines:]
	}
	return lines, nil
}

// tailBuffer keeps the last keep bytes written to it (at a line start
// when it had to cut).
type tailBuffer struct {
	b    []byte
	keep int
	cut  bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.keep {
		t.b = slices.Clone(t.b[len(t.b)-t.keep:])
		t.cut = true
	}
	return len(p), nil
}

func (t *tailBuffer) bytes() []byte {
	b := t.b
	if len(b) > t.keep {
		b, t.cut = b[len(b)-t.keep:], true
	}
	if t.cut {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:] // a line cut in the middle
		}
	}
	return b
}

// Patterns of secrets that show in logs whatever the minion's settings.
var (
	dockerSecretAssign = regexp.MustCompile(`(?i)((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?|auth)["']?\s*[:=]\s*["']?)([^\s"',;&]+)`)
	dockerURLPassword  = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)(@)`)
	dockerBearer       = regexp.MustCompile(`(?i)\b(bearer|basic)(\s+)([A-Za-z0-9._~+/=-]{8,})`)
	dockerANSI         = regexp.MustCompile(`\x1b\[[0-9;?]*[ -/]*[@-~]`)
)

// redactor hides a minion's secrets and common secret patterns in a log
// line, and makes the line safe inside a code block.
type redactor struct{ secrets []string }

func newRedactor(secrets []string) redactor {
	var r redactor
	for _, s := range secrets {
		if len(s) < dockerMinQuiet {
			continue
		}
		r.secrets = append(r.secrets, s)
		if q := url.QueryEscape(s); q != s {
			r.secrets = append(r.secrets, q) // as it shows in a URL
		}
	}
	// Longest first, so a secret containing another is hidden whole.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

func (r redactor) line(l string) string {
	l = dockerANSI.ReplaceAllString(l, "")
	l = strings.Map(func(c rune) rune {
		if c == '\t' {
			return ' '
		}
		if unicode.IsControl(c) || c == utf8.RuneError {
			return -1
		}
		return c
	}, l)
	for _, s := range r.secrets {
		l = strings.ReplaceAll(l, s, "***")
	}
	l = dockerURLPassword.ReplaceAllString(l, "${1}***${3}")
	l = dockerSecretAssign.ReplaceAllString(l, "${1}***")
	l = dockerBearer.ReplaceAllString(l, "${1}${2}***")
	l = strings.ReplaceAll(l, "```", "'''") // would close the code block
	if utf8.RuneCountInString(l) > dockerMaxLine {
		l = string([]rune(l)[:dockerMaxLine]) + "…"
	}
	return l
}
