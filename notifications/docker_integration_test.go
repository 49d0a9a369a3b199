package notifications

// The watcher on the real engine (.ci/docker.sh; see internal/dockertest
// for when these skip). Run them holding the engine's lock:
//
//	flock -o /tmp/summoner-docker.lock go test -race -run WatcherDocker ./notifications/

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/summoner-bot/summoner/internal/dockertest"
)

const itSecret = "Sup3r-Secret-Value-42"

// itRecorder keeps what the watcher emits.
type itRecorder struct {
	mu  sync.Mutex
	evs []Event
}

func (r *itRecorder) emit(_ context.Context, ev Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, ev)
	return nil
}

// of returns the alerts of one minion: the watcher sees every minion on
// the engine, other tests' too.
func (r *itRecorder) of(minion string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, ev := range r.evs {
		if ev.Project == minion {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor polls until an alert of typ for minion came, or the deadline.
func (r *itRecorder) waitFor(t *testing.T, minion, typ string, deadline time.Time) (Event, bool) {
	t.Helper()
	for time.Now().Before(deadline) {
		for _, ev := range r.of(minion) {
			if ev.Type == typ {
				return ev, true
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return Event{}, false
}

func startITWatcher(t *testing.T, env *dockertest.Env, tune func(*WatcherOptions)) *itRecorder {
	t.Helper()
	rec := &itRecorder{}
	var logMu sync.Mutex
	var logs bytes.Buffer
	o := WatcherOptions{
		Docker:  env.Client,
		Emit:    rec.emit,
		Secrets: func(string) []string { return []string{itSecret} },
		Logger:  slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil)),
	}
	if tune != nil {
		tune(&o)
	}
	w := NewWatcher(o)
	w.sweepEvery = 200 * time.Millisecond
	t.Cleanup(func() { // after the watcher stopped: cleanups run last first
		if t.Failed() {
			logMu.Lock()
			t.Logf("watcher log:\n%s", logs.String())
			logMu.Unlock()
		}
	})
	runWatcher(t, w)
	return rec
}

// itMinion removes what an earlier run left of minion, now and at the end.
func itMinion(t *testing.T, env *dockertest.Env, minion string) {
	t.Helper()
	env.RemoveMinion(t, minion)
	t.Cleanup(func() { env.RemoveMinion(t, minion) })
}

// itRun starts a container of minion's service, labelled as Summoner
// labels minions, printing the secret in its logs.
func itRun(t *testing.T, env *dockertest.Env, minion, service, ref string, restart container.RestartPolicyMode) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := env.Client.ImageInspect(ctx, ref); err != nil {
		rc, err := env.Client.ImagePull(ctx, ref, image.PullOptions{})
		if err != nil {
			t.Fatalf("pulling %s: %v", ref, err)
		}
		_, _ = io.Copy(io.Discard, rc)
		rc.Close()
	}
	cfg := &container.Config{
		Image: ref,
		Labels: map[string]string{
			dockerLabelMinion: minion, dockerLabelService: service, "summoner.test": "1",
		},
		Env: []string{"SECRET=" + itSecret, "DATABASE_URL=postgres://app:" + itSecret + "@db:5432/app"},
	}
	if !strings.Contains(ref, "broken") {
		// The app's own entrypoint prints DATABASE_URL; this line shows
		// the secret bare, as only the minion's settings can hide it.
		cfg.Entrypoint = []string{"/bin/sh", "-c", `echo "api secret is $SECRET"; exec /entrypoint.sh`}
	}
	host := &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: restart}}
	c, err := env.Client.ContainerCreate(ctx, cfg, host, nil, nil, minion+"-"+service)
	if err != nil {
		t.Fatalf("creating %s: %v", minion, err)
	}
	if err := env.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v", minion, err)
	}
	return c.ID
}

// itWaitLogs waits until the container's logs hold s.
func itWaitLogs(t *testing.T, env *dockertest.Env, id, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rc, err := env.Client.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		var out bytes.Buffer
		if err == nil {
			_, _ = stdcopy.StdCopy(&out, &out, rc)
			rc.Close()
		}
		cancel()
		if strings.Contains(out.String(), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not in the logs of %s: %v\n%s", s, shortID(id), err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWatcherDockerKill is the acceptance: kill a container of a minion and
// its alert, with its last log lines and the secret hidden, comes within 10 s.
func TestWatcherDockerKill(t *testing.T) {
	env := dockertest.Require(t)
	const minion = "notifwatch-kill"
	itMinion(t, env, minion)
	rec := startITWatcher(t, env, nil)
	id := itRun(t, env, minion, "web", env.Registry+"/summoner/testapp:1.0", container.RestartPolicyDisabled)
	itWaitLogs(t, env, id, "listening on :8080")

	killed := time.Now()
	if err := env.Client.ContainerKill(context.Background(), id, "KILL"); err != nil {
		t.Fatal(err)
	}
	ev, ok := rec.waitFor(t, minion, DockerContainerDied, killed.Add(10*time.Second))
	if !ok {
		t.Fatalf("no container_died within 10 s of the kill; got %q", titles(rec.of(minion)))
	}
	t.Logf("alert %s after the kill:\n%s\n%s", time.Since(killed).Round(time.Millisecond), ev.Title, ev.Text)
	if ev.Title != "🔴 notifwatch-kill: container web died (exit code 137)" || ev.Status != "failed" || ev.Source != SourceDocker {
		t.Errorf("alert %q, status %q, source %q", ev.Title, ev.Status, ev.Source)
	}
	if strings.Contains(ev.Text, itSecret) {
		t.Errorf("the secret shows in the alert")
	}
	for _, want := range []string{"`docker kill`", "api secret is ***", "postgres://app:***@db:5432/app", "testapp 1.0: listening on :8080\n"} {
		if !strings.Contains(ev.Text, want) {
			t.Errorf("%q not in the alert", want)
		}
	}
}

// TestWatcherDockerCrashLoop: a container that exits at once under
// restart=always for ~20 s gives one alert and at most one follow-up.
func TestWatcherDockerCrashLoop(t *testing.T) {
	env := dockertest.Require(t)
	const minion = "notifwatch-loop"
	itMinion(t, env, minion)
	// A window shorter than the run, so that the summary is exercised too:
	// the first window (12 s) ends with deaths counted, the second outlasts the run.
	rec := startITWatcher(t, env, func(o *WatcherOptions) { o.Window = 12 * time.Second })
	started := time.Now()
	id := itRun(t, env, minion, "web", env.Registry+"/summoner/testapp:2.0-broken", container.RestartPolicyAlways)
	if _, ok := rec.waitFor(t, minion, DockerContainerDied, started.Add(10*time.Second)); !ok {
		t.Fatalf("no alert within 10 s of a crashing start; got %q", titles(rec.of(minion)))
	}
	time.Sleep(time.Until(started.Add(20 * time.Second))) // the run's length is the point of this test
	info, err := env.Client.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Client.ContainerStop(context.Background(), id, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	got := rec.of(minion)
	var died, loops []Event
	for _, ev := range got {
		switch ev.Type {
		case DockerContainerDied:
			died = append(died, ev)
		case DockerCrashLoop:
			loops = append(loops, ev)
		default:
			t.Errorf("unexpected %s %q", ev.Type, ev.Title)
		}
	}
	t.Logf("%d restarts in 20 s; alerts: %q", info.RestartCount, titles(got))
	if info.RestartCount < 3 {
		t.Fatalf("only %d restarts: not a crash loop", info.RestartCount)
	}
	if len(died) != 1 || len(loops) > 1 {
		t.Fatalf("%d container_died and %d crash_loop, want 1 and at most 1", len(died), len(loops))
	}
	if !strings.Contains(died[0].Text, "testapp 2.0: config error") || !strings.Contains(died[0].Text, "restart policy always") {
		t.Errorf("alert text:\n%s", died[0].Text)
	}
	for _, ev := range got {
		t.Logf("%s:\n%s", ev.Type, ev.Text)
	}
	if len(loops) == 1 && !strings.HasPrefix(loops[0].Title, "🔁 notifwatch-loop/web keeps crashing: ") {
		t.Errorf("follow-up %q", loops[0].Title)
	}
}

// TestWatcherDockerStop: stopping a container (docker stop, or a forced
// removal as banish and deploys do) is no alert.
func TestWatcherDockerStop(t *testing.T) {
	env := dockertest.Require(t)
	const minion, marker = "notifwatch-stop", "notifwatch-stopmark"
	itMinion(t, env, minion)
	itMinion(t, env, marker)
	rec := startITWatcher(t, env, nil)
	web := itRun(t, env, minion, "web", env.Registry+"/summoner/testapp:1.0", container.RestartPolicyUnlessStopped)
	worker := itRun(t, env, minion, "worker", env.Registry+"/summoner/testapp:1.0", container.RestartPolicyDisabled)
	itWaitLogs(t, env, web, "listening on :8080")
	itWaitLogs(t, env, worker, "listening on :8080")
	ctx := context.Background()
	if err := env.Client.ContainerStop(ctx, web, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.ContainerRemove(ctx, worker, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	// A killed container after them: once its alert is in, the stops
	// before it have been decided.
	m := itRun(t, env, marker, "web", env.Registry+"/summoner/testapp:1.0", container.RestartPolicyDisabled)
	itWaitLogs(t, env, m, "listening on :8080")
	if err := env.Client.ContainerKill(ctx, m, "KILL"); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.waitFor(t, marker, DockerContainerDied, time.Now().Add(10*time.Second)); !ok {
		t.Fatal("no alert for the killed marker container")
	}
	if got := rec.of(minion); len(got) != 0 {
		t.Fatalf("alerts for stopped containers: %q", titles(got))
	}
}
