package notifications

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/pkg/stdcopy"
)

// fakeDocker serves a channel-fed event stream (one per Events call),
// canned logs and inspect answers.
type fakeDocker struct {
	streams chan *fakeStream

	mu       sync.Mutex
	logs     map[string][]byte // as ContainerLogs returns them (multiplexed unless the container has a TTY)
	inspect  map[string]container.InspectResponse
	hang     chan struct{} // non-nil: ContainerLogs blocks until it closes, ignoring ctx
	hangRead bool          // ContainerLogs returns a body whose Read blocks until Close
	logsErr  error         // non-nil: ContainerLogs fails with it
}

type fakeStream struct {
	opts events.ListOptions
	msgs chan events.Message
	errs chan error
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{
		streams: make(chan *fakeStream, 16),
		logs:    map[string][]byte{},
		inspect: map[string]container.InspectResponse{},
	}
}

func (f *fakeDocker) Events(ctx context.Context, o events.ListOptions) (<-chan events.Message, <-chan error) {
	s := &fakeStream{opts: o, msgs: make(chan events.Message), errs: make(chan error, 1)}
	f.streams <- s
	return s.msgs, s.errs
}

func (f *fakeDocker) ContainerLogs(ctx context.Context, id string, o container.LogsOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	hang, hangRead, b, ok, logsErr := f.hang, f.hangRead, f.logs[id], f.logs[id] != nil, f.logsErr
	f.mu.Unlock()
	if logsErr != nil {
		return nil, logsErr
	}
	if hang != nil {
		<-hang
		return nil, errors.New("hung")
	}
	if hangRead {
		pr, _ := io.Pipe()
		return pr, nil
	}
	if !ok {
		return nil, fmt.Errorf("No such container: %s", id)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (f *fakeDocker) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.inspect[id]
	if !ok {
		return r, fmt.Errorf("No such container: %s", id)
	}
	return r, nil
}

func (f *fakeDocker) setInspect(id string, running bool, health string, tty bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, State: &container.State{Running: running}, HostConfig: &container.HostConfig{}},
		Config:            &container.Config{Tty: tty},
	}
	if health != "" {
		r.State.Health = &container.Health{Status: health, Log: []*container.HealthcheckResult{{ExitCode: 1, Output: "wget: can't connect to remote host\n"}}}
	}
	f.inspect[id] = r
}

// setLogs stores lines as Docker sends them: odd lines on stderr.
func (f *fakeDocker) setLogs(id string, tty bool, lines ...string) {
	var b bytes.Buffer
	out, errw := stdcopy.NewStdWriter(&b, stdcopy.Stdout), stdcopy.NewStdWriter(&b, stdcopy.Stderr)
	for i, l := range lines {
		switch {
		case tty:
			b.WriteString(l + "\r\n")
		case i%2 == 1:
			_, _ = errw.Write([]byte(l + "\n")) // into a bytes.Buffer: cannot fail
		default:
			_, _ = out.Write([]byte(l + "\n"))
		}
	}
	f.mu.Lock()
	f.logs[id] = b.Bytes()
	f.mu.Unlock()
}

// fakeTimers holds the watcher's timers until the test fires them.
type fakeTimers struct {
	mu  sync.Mutex
	fns []fakeTimer
}

type fakeTimer struct {
	d  time.Duration
	fn func()
}

func (f *fakeTimers) after(d time.Duration, fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fns = append(f.fns, fakeTimer{d, fn})
}

// fire runs, in the order they were set, the pending timers of duration d.
func (f *fakeTimers) fire(d time.Duration) {
	f.mu.Lock()
	var run []func()
	keep := f.fns[:0]
	for _, t := range f.fns {
		if t.d == d {
			run = append(run, t.fn)
		} else {
			keep = append(keep, t)
		}
	}
	f.fns = keep
	f.mu.Unlock()
	for _, fn := range run {
		fn()
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Fake timer durations: only told apart, never waited for.
const (
	testGrace   = 1 * time.Second
	testStable  = 2 * time.Second
	testBackoff = 3 * time.Second
)

type watchHarness struct {
	t       *testing.T
	fd      *fakeDocker
	clock   *fakeClock
	timers  *fakeTimers
	w       *Watcher
	got     chan Event
	logMu   sync.Mutex
	logBuf  bytes.Buffer
	stream  *fakeStream
	nano    int64
	markers int
}

func startWatch(t *testing.T, tune func(*WatcherOptions)) *watchHarness {
	t.Helper()
	h := &watchHarness{
		t:      t,
		fd:     newFakeDocker(),
		clock:  &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		timers: &fakeTimers{},
		got:    make(chan Event, 1000),
		nano:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano(),
	}
	o := WatcherOptions{
		Docker: h.fd,
		Emit: func(ctx context.Context, ev Event) error {
			h.got <- ev
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&h.logMu, &h.logBuf}, nil)),
		Now:    h.clock.Now,
	}
	if tune != nil {
		tune(&o)
	}
	h.w = NewWatcher(o)
	h.w.grace, h.w.stable = testGrace, testStable
	h.w.afterFunc = h.timers.after
	h.w.sweepEvery = 5 * time.Millisecond
	h.w.fetchLimit = 2 * time.Second
	h.w.backoffMin, h.w.backoffMax = testBackoff, 4*testBackoff
	runWatcher(t, h.w)
	h.stream = h.nextStream()
	return h
}

// runWatcher runs w until the test ends, then checks that Run returns nil
// promptly.
func runWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

func (h *watchHarness) logs() string {
	h.logMu.Lock()
	defer h.logMu.Unlock()
	return h.logBuf.String()
}

// waitLog waits until the log holds s n times.
func (h *watchHarness) waitLog(s string, n int) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(h.logs(), s) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%q not %d times in the log:\n%s", s, n, h.logs())
		}
		time.Sleep(time.Millisecond)
	}
}

func (h *watchHarness) nextStream() *fakeStream {
	h.t.Helper()
	select {
	case s := <-h.fd.streams:
		return s
	case <-time.After(5 * time.Second):
		h.t.Fatal("the watcher did not subscribe to the event stream")
		return nil
	}
}

// msg makes a container event; attrs are key=value pairs added to the
// minion label and the name.
func (h *watchHarness) msg(action events.Action, id, name, minion string, attrs ...string) events.Message {
	h.nano += int64(time.Millisecond)
	a := map[string]string{"name": name, dockerLabelMinion: minion, dockerLabelService: "web", "image": "testapp:1.0"}
	for _, kv := range attrs {
		k, v, _ := strings.Cut(kv, "=")
		a[k] = v
	}
	return events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id, Attributes: a},
		Scope: "local", Time: h.nano / 1e9, TimeNano: h.nano}
}

func (h *watchHarness) send(ms ...events.Message) {
	h.t.Helper()
	for _, m := range ms {
		select {
		case h.stream.msgs <- m:
		case <-time.After(5 * time.Second):
			h.t.Fatalf("the watcher did not take event %s", m.Action)
		}
	}
}

func (h *watchHarness) next() Event {
	h.t.Helper()
	select {
	case ev := <-h.got:
		return ev
	case <-time.After(5 * time.Second):
		h.t.Fatal("no alert within 5 s")
		return Event{}
	}
}

// sync sends an unhealthy event of a fresh minion, which alerts at once,
// and returns the alerts emitted before it: everything sent earlier has
// been decided by then.
func (h *watchHarness) sync() []Event {
	h.t.Helper()
	h.markers++
	minion := fmt.Sprintf("zz-marker-%d", h.markers)
	h.send(h.msg(events.ActionHealthStatusUnhealthy, minion+"-id", minion+"-web", minion))
	var before []Event
	for {
		ev := h.next()
		if ev.Project == minion {
			return before
		}
		before = append(before, ev)
	}
}

// settle decides every held die: first what was sent, then the grace.
func (h *watchHarness) settle() []Event {
	h.t.Helper()
	got := h.sync()
	h.timers.fire(testGrace)
	return append(got, h.sync()...)
}

func types(evs []Event) []string  { return eventField(evs, func(ev Event) string { return ev.Type }) }
func titles(evs []Event) []string { return eventField(evs, func(ev Event) string { return ev.Title }) }

func eventField(evs []Event, f func(Event) string) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, f(ev))
	}
	return out
}

func TestWatcherAlerts(t *testing.T) {
	const id, name, minion = "c0ffee0123456789abcdef", "testmin-web", "testmin"
	tests := []struct {
		name    string
		events  func(h *watchHarness) []events.Message
		want    []string // Event.Type
		title   string   // in the first alert's Title
		text    string   // in the first alert's Text
		inspect bool     // the container has a health check that fails
	}{
		{name: "docker kill: die after kill", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionKill, id, name, minion, "signal=9"), h.msg(events.ActionDie, id, name, minion, "exitCode=137")}
		}, want: []string{DockerContainerDied}, title: "🔴 testmin: container web died (exit code 137)", text: "killed, e.g. out of memory or `docker kill`"},
		{name: "docker stop: kill, die, stop", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionKill, id, name, minion, "signal=15"), h.msg(events.ActionDie, id, name, minion, "exitCode=0"), h.msg(events.ActionStop, id, name, minion)}
		}},
		{name: "docker restart", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionKill, id, name, minion, "signal=15"), h.msg(events.ActionDie, id, name, minion, "exitCode=143"),
				h.msg(events.ActionStop, id, name, minion), h.msg(events.ActionStart, id, name, minion)}
		}},
		{name: "docker rm -f: die then destroy", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionKill, id, name, minion, "signal=9"), h.msg(events.ActionDie, id, name, minion, "exitCode=137"), h.msg(events.ActionDestroy, id, name, minion)}
		}},
		{name: "crash", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionStart, id, name, minion), h.msg(events.ActionDie, id, name, minion, "exitCode=1")}
		}, want: []string{DockerContainerDied}, title: "died (exit code 1)", text: "the app failed"},
		{name: "restart policy: a start right after the die", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionDie, id, name, minion, "exitCode=1"), h.msg(events.ActionStart, id, name, minion), h.msg(events.ActionStop, id, name, minion)}
		}, want: []string{DockerContainerDied}},
		{name: "out of memory", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionOOM, id, name, minion), h.msg(events.ActionDie, id, name, minion, "exitCode=137")}
		}, want: []string{DockerContainerDied}, text: "ran out of memory"},
		{name: "kept aside by a deploy", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionDie, id, name+dockerOldSuffix, minion, "exitCode=1")}
		}},
		{name: "renamed aside after its die", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionDie, id, name, minion, "exitCode=0"), h.msg(events.ActionRename, id, name+dockerOldSuffix, minion, "oldName=/"+name)}
		}},
		{name: "no service label: the container's name", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionDie, id, name, minion, "exitCode=2", dockerLabelService+"=")}
		}, want: []string{DockerContainerDied}, title: "container testmin-web died (exit code 2)"},
		{name: "unhealthy", events: func(h *watchHarness) []events.Message {
			return []events.Message{h.msg(events.ActionHealthStatusUnhealthy, id, name, minion)}
		}, want: []string{DockerContainerUnhealthy}, title: "🟠 testmin: container web is unhealthy", text: "wget: can't connect", inspect: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startWatch(t, nil)
			h.fd.setLogs(id, false, "testapp 1.0 starting", "testapp 1.0: listening on :8080")
			if tt.inspect {
				h.fd.setInspect(id, true, container.Unhealthy, false)
			}
			evs := tt.events(h)
			h.send(evs...)
			got := h.settle()
			if fmt.Sprint(types(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("alerts %v, want %v; titles: %q", types(got), tt.want, titles(got))
			}
			if len(got) == 0 {
				return
			}
			ev := got[0]
			if !strings.Contains(ev.Title, tt.title) || !strings.Contains(ev.Text, tt.text) {
				t.Errorf("title %q, text:\n%s\nwant %q in the title and %q in the text", ev.Title, ev.Text, tt.title, tt.text)
			}
			trigger := evs[len(evs)-1]
			if ev.Type == DockerContainerDied {
				for _, m := range evs {
					if m.Action == events.ActionDie {
						trigger = m
					}
				}
			}
			wantID := fmt.Sprintf("docker/%s/%d/%s", id, trigger.TimeNano, ev.Type)
			if ev.ID != wantID || ev.Source != "docker" || ev.Kind != "docker" || ev.Project != minion || ev.Status != "failed" || !ev.Received.Equal(h.clock.Now()) {
				t.Errorf("event %+v; want ID %s, docker source and kind, project %s, status failed, received now", ev, wantID, minion)
			}
			if !strings.Contains(ev.Text, "```\ntestapp 1.0 starting\ntestapp 1.0: listening on :8080\n```") {
				t.Errorf("no log lines in:\n%s", ev.Text)
			}
			if len(ev.Payload) == 0 || !strings.Contains(string(ev.Payload), trigger.Actor.ID) {
				t.Errorf("payload %s: want the Docker event", ev.Payload)
			}
		})
	}
}

// TestWatcherCrashLoop: 50 deaths in a row give one alert, then one
// summary when the window ends, and nothing for a quiet window after.
func TestWatcherCrashLoop(t *testing.T) {
	const id, name, minion = "loop0123456789", "testmin-web", "testmin"
	h := startWatch(t, func(o *WatcherOptions) { o.Window = 10 * time.Minute })
	h.fd.setLogs(id, false, "testapp 2.0: config error")
	for range 50 {
		h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"), h.msg(events.ActionStart, id, name, minion))
		h.clock.Advance(500 * time.Millisecond) // 50 restarts in 25 s
	}
	got := h.settle()
	if fmt.Sprint(types(got)) != fmt.Sprint([]string{DockerContainerDied}) {
		t.Fatalf("alerts %v (%q), want one container_died", types(got), titles(got))
	}
	h.clock.Advance(10 * time.Minute)
	ev := h.next() // the sweep's summary
	want := "🔁 testmin/web keeps crashing: 49 more exits in the last 10 minutes"
	if ev.Type != DockerCrashLoop || ev.Title != want || ev.Status != "failed" {
		t.Fatalf("follow-up %s %q, want crash_loop %q", ev.Type, ev.Title, want)
	}
	if !strings.Contains(ev.Text, "last exit code 1: the app failed") || !strings.Contains(ev.Text, "testapp 2.0: config error") {
		t.Errorf("follow-up text:\n%s", ev.Text)
	}
	// A window with no more deaths ends in silence.
	h.clock.Advance(11 * time.Minute)
	if got := h.sync(); len(got) != 0 {
		t.Fatalf("after a quiet window: %v %q", types(got), titles(got))
	}
	// A later death, the window closed, is a new alert.
	h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"))
	if got := h.settle(); fmt.Sprint(types(got)) != fmt.Sprint([]string{DockerContainerDied}) {
		t.Fatalf("a death after the quiet window: %v", types(got))
	}
}

// TestWatcherRecovery: "running again" is said once per announced
// failure, after a stable run without a health check or on "healthy"
// with one; a minion that fails again after it gets an early follow-up.
func TestWatcherRecovery(t *testing.T) {
	const id, name, minion = "rec0123456789", "testmin-web", "testmin"
	t.Run("no health check", func(t *testing.T) {
		h := startWatch(t, nil)
		h.fd.setInspect(id, true, "", false)
		h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"))
		start := h.msg(events.ActionStart, id, name, minion)
		h.send(start)
		h.sync()
		h.timers.fire(testStable)
		got := h.sync()
		if fmt.Sprint(types(got)) != fmt.Sprint([]string{DockerContainerRecovered}) {
			t.Fatalf("alerts %v, want container_recovered", types(got))
		}
		ev := got[0]
		if ev.Title != "✅ testmin: web is running again" || ev.Status != "success" || ev.ID != fmt.Sprintf("docker/%s/%d/container_recovered", id, start.TimeNano) {
			t.Errorf("recovery %+v", ev)
		}
		// Restarted again and running: nothing more to say.
		h.send(h.msg(events.ActionStart, id, name, minion), h.msg(events.ActionHealthStatusHealthy, id, name, minion))
		h.sync()
		h.timers.fire(testStable)
		if got := h.sync(); len(got) != 0 {
			t.Fatalf("said again: %q", titles(got))
		}
	})
	t.Run("health check", func(t *testing.T) {
		h := startWatch(t, nil)
		h.fd.setInspect(id, true, container.Starting, false)
		h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"), h.msg(events.ActionStart, id, name, minion))
		h.sync()
		h.timers.fire(testStable) // running but still starting: not yet
		if got := h.sync(); len(got) != 0 {
			t.Fatalf("recovered before healthy: %q", titles(got))
		}
		h.send(h.msg(events.ActionHealthStatusHealthy, id, name, minion), h.msg(events.ActionHealthStatusHealthy, id, name, minion))
		if got := h.sync(); fmt.Sprint(types(got)) != fmt.Sprint([]string{DockerContainerRecovered}) {
			t.Fatalf("alerts %v, want one container_recovered", types(got))
		}
	})
	t.Run("a restart that does not last", func(t *testing.T) {
		h := startWatch(t, nil)
		h.fd.setInspect(id, true, "", false)
		h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"), h.msg(events.ActionStart, id, name, minion), h.msg(events.ActionDie, id, name, minion, "exitCode=1"))
		h.settle()
		h.timers.fire(testStable) // a check for the run that died: stale
		if got := h.sync(); len(got) != 0 {
			t.Fatalf("alerts %q, want none", titles(got))
		}
	})
	t.Run("flapping", func(t *testing.T) {
		h := startWatch(t, nil)
		h.fd.setInspect(id, true, "", false)
		cycle := func() []Event {
			h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"), h.msg(events.ActionStart, id, name, minion))
			got := h.sync()
			h.timers.fire(testStable)
			h.clock.Advance(time.Minute)
			return append(got, h.sync()...)
		}
		var all []Event
		for range 4 {
			all = append(all, cycle()...)
		}
		want := []string{DockerContainerDied, DockerContainerRecovered, DockerCrashLoop, DockerContainerRecovered}
		if fmt.Sprint(types(all)) != fmt.Sprint(want) {
			t.Fatalf("alerts %v (%q), want %v", types(all), titles(all), want)
		}
		if all[2].Title != "🔁 testmin/web keeps crashing: 1 more exit in the last 1 minute" {
			t.Errorf("follow-up %q", all[2].Title)
		}
		h.clock.Advance(10 * time.Minute)
		ev := h.next()
		if ev.Type != DockerCrashLoop || !strings.Contains(ev.Title, "2 more exits") || !strings.Contains(ev.Text, "It is running again now.") {
			t.Fatalf("summary %s %q:\n%s", ev.Type, ev.Title, ev.Text)
		}
	})
}

func TestWatcherHidesSecrets(t *testing.T) {
	const id, name, minion = "sec0123456789", "testmin-web", "testmin"
	long := strings.Repeat("x", 1000)
	lines := []string{
		"starting with password=hunter22 and DB_PASSWORD: 'hunter33'",
		"database postgres://app:s3cr%2Ft@db:5432/app",
		"the key is TOPSECRET-123, again TOPSECRET-123",
		"Authorization: Bearer abcdefghijklmnop",
		"\x1b[31mred\x1b[0m ```break out``` {\"token\": \"tok-999\"}",
		"a tiny secret ab stays",
		long,
	}
	for _, tty := range []bool{false, true} {
		t.Run(fmt.Sprintf("tty=%v", tty), func(t *testing.T) {
			h := startWatch(t, func(o *WatcherOptions) {
				o.Secrets = func(m string) []string {
					if m != minion {
						return nil
					}
					return []string{"TOPSECRET-123", "s3cr/t", "ab", ""}
				}
			})
			h.fd.setInspect(id, false, "", tty)
			h.fd.setLogs(id, tty, lines...)
			h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"))
			got := h.settle()
			if len(got) != 1 {
				t.Fatalf("alerts %q", titles(got))
			}
			text := got[0].Text
			for _, secret := range []string{"hunter22", "hunter33", "s3cr", "TOPSECRET", "abcdefghijklmnop", "tok-999", "\x1b", "```break", "\r"} {
				if strings.Contains(text, secret) {
					t.Errorf("%q shows in:\n%s", secret, text)
				}
			}
			for _, want := range []string{"password=***", "DB_PASSWORD: '***", "postgres://app:***@db:5432/app", "the key is ***, again ***",
				"Bearer ***", "red '''break out'''", `"token": "***"`, "a tiny secret ab stays", strings.Repeat("x", dockerMaxLine) + "…\n```"} {
				if !strings.Contains(text, want) {
					t.Errorf("%q missing from:\n%s", want, text)
				}
			}
		})
	}
}

func TestWatcherCapsText(t *testing.T) {
	const id, minion = "big0123456789", "testmin"
	h := startWatch(t, func(o *WatcherOptions) { o.LogLines = 500 })
	var lines []string
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("%03d %s", i, strings.Repeat("é", 400)))
	}
	h.fd.setLogs(id, false, lines...)
	h.send(h.msg(events.ActionDie, id, "testmin-web", minion, "exitCode=1"))
	got := h.settle()
	if len(got) != 1 {
		t.Fatalf("alerts %q", titles(got))
	}
	text := got[0].Text
	if n := utf8.RuneCountInString(text); n > dockerMaxText || n < dockerMaxText/2 {
		t.Errorf("text of %d runes, want at most %d (and not much less)", n, dockerMaxText)
	}
	if !strings.Contains(text, "earlier lines left out)") || !strings.Contains(text, "499 ééé") || strings.Contains(text, "000 ééé") {
		t.Errorf("want the newest lines kept and the oldest left out:\n%.300s", text)
	}
}

// TestWatcherReconnects: the daemon goes away; the watcher subscribes
// again from the last event it saw, reports a death that happened in the
// gap, and does not repeat the one it already alerted.
func TestWatcherReconnects(t *testing.T) {
	h := startWatch(t, nil)
	first := h.msg(events.ActionDie, "aaa0123456789", "one-web", "one", "exitCode=1")
	h.send(first)
	if got := h.settle(); fmt.Sprint(types(got)) != fmt.Sprint([]string{DockerContainerDied}) {
		t.Fatalf("alerts %v", types(got))
	}
	seen := h.nano // the newest event the watcher saw: the marker of settle
	h.stream.errs <- errors.New("unexpected EOF")
	h.waitLog("Docker event stream lost", 1)
	h.timers.fire(testBackoff)
	h.stream = h.nextStream()
	if want := dockerSince(time.Unix(0, seen)); h.stream.opts.Since != want {
		t.Errorf("reconnected with since %q, want %q (the last event seen)", h.stream.opts.Since, want)
	}
	if f := h.stream.opts.Filters; !f.ExactMatch("label", dockerLabelMinion) || !f.ExactMatch("type", "container") || !f.ExactMatch("event", "die") {
		t.Errorf("filters %v", f)
	}
	// The engine reads again from since: the old death, then one from the gap.
	gap := h.msg(events.ActionDie, "bbb0123456789", "two-web", "two", "exitCode=137")
	h.send(first, gap)
	got := h.settle()
	if fmt.Sprint(types(got)) != fmt.Sprint([]string{DockerContainerDied}) || got[0].Project != "two" {
		t.Fatalf("after the reconnect: %v %q, want only two's death", types(got), titles(got))
	}
	logs := h.logs()
	if !strings.Contains(logs, "Docker event stream lost; reconnecting") || !strings.Contains(logs, "unexpected EOF") || !strings.Contains(logs, "Docker event stream is back") {
		t.Errorf("log:\n%s", logs)
	}

	// Lost again before a held die is decided: the stop may be in the
	// gap, so the die waits for the stream.
	die := h.msg(events.ActionDie, "ccc0123456789", "three-web", "three", "exitCode=0")
	h.send(die)
	h.sync()
	h.stream.errs <- errors.New("connection refused")
	h.waitLog("Docker event stream lost", 2)
	h.timers.fire(testGrace) // disconnected: held again
	h.timers.fire(2 * testBackoff)
	h.stream = h.nextStream()
	h.send(die, h.msg(events.ActionStop, "ccc0123456789", "three-web", "three"))
	if got := h.settle(); len(got) != 0 {
		t.Fatalf("a stopped container alerted: %q", titles(got))
	}
}

// TestWatcherLogsHang: a daemon that never answers for the logs delays the
// alert by the fetch deadline only, and the alert says why it has none.
func TestWatcherLogsHang(t *testing.T) {
	for _, tc := range []struct {
		name   string
		freeze func(fd *fakeDocker) func()
	}{
		{"call ignores its context", func(fd *fakeDocker) func() {
			fd.hang = make(chan struct{})
			return func() { close(fd.hang) }
		}},
		{"body never ends", func(fd *fakeDocker) func() {
			fd.hangRead = true
			return func() {}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const id = "hang0123456789"
			h := startWatch(t, nil)
			h.w.fetchLimit = 100 * time.Millisecond
			t.Cleanup(tc.freeze(h.fd))
			h.fd.setInspect(id, false, "", false)
			h.send(h.msg(events.ActionDie, id, "testmin-web", "testmin", "exitCode=137"))
			h.sync()
			start := time.Now()
			h.timers.fire(testGrace)
			ev := h.next()
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("alert after %s", took)
			}
			if ev.Type != DockerContainerDied || !strings.Contains(ev.Text, "No log lines: Docker did not answer within 100ms.") {
				t.Fatalf("%s:\n%s", ev.Type, ev.Text)
			}
		})
	}
}

// TestWatcherAlertHidesDockerErrors: an alert goes to a channel whose
// members may be plain members, so Docker's own error (paths, the socket)
// stays in the log.
func TestWatcherAlertHidesDockerErrors(t *testing.T) {
	const id = "fail0123456789"
	h := startWatch(t, nil)
	h.fd.mu.Lock()
	h.fd.logsErr = errors.New("Error response from daemon: open /var/lib/docker/containers/fail0123456789/fail0123456789-json.log: permission denied")
	h.fd.mu.Unlock()
	h.fd.setInspect(id, false, "", false)
	h.send(h.msg(events.ActionDie, id, "testmin-web", "testmin", "exitCode=1"))
	h.sync()
	h.timers.fire(testGrace)
	ev := h.next()
	if !strings.Contains(ev.Text, "No log lines: Docker could not give them (Summoner's log says why).") ||
		strings.Contains(ev.Text, "/var/lib") || strings.Contains(ev.Text, "permission denied") {
		t.Fatalf("alert:\n%s", ev.Text)
	}
}

func TestWatcherNeedsDockerAndEmit(t *testing.T) {
	if err := NewWatcher(WatcherOptions{}).Run(context.Background()); err == nil {
		t.Fatal("Run without Docker and Emit: no error")
	}
}

func TestExitMeaning(t *testing.T) {
	for code, want := range map[int]string{0: "ended by itself", 1: "the app failed", 127: "not found", 137: "docker kill", 139: "segmentation", 143: "SIGTERM", 130: "signal 2", 3: "the app failed"} {
		if got := exitMeaning(code, false); !strings.Contains(got, want) {
			t.Errorf("exit %d: %q, want %q", code, got, want)
		}
	}
	if got := exitMeaning(137, true); !strings.Contains(got, "out of memory") {
		t.Errorf("oom: %q", got)
	}
}
