package minions_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/summoner-bot/summoner/minions"
)

// The unit tests of changes that fail run the test minion on fakeDocker:
// no Docker needed, each case in milliseconds.

const (
	fakeWeb = "testmin-fake.test"
	fakeDB  = "postgres-testmin-fake.test"
)

type fakeFixture struct {
	f         *fakeDocker
	e         *minions.Engine
	reg       string // host:port of the registry stand-in, the mirror
	tags      []string
	stateFile string
	port      string // HTTP_PORT of the first summon
}

// newFakeFixture summons testmin 1.0 on a fake engine; the registry
// stand-in lists tags (1.0 to 2.0) and serves images 1.0 and 1.1 (fine),
// 1.2 (exits with a config error) and 1.3 (never ready).
func newFakeFixture(t *testing.T, healthTimeout time.Duration) *fakeFixture {
	t.Helper()
	fx := &fakeFixture{f: newFakeDocker(t), tags: []string{"1.0", "1.1", "1.2", "1.3", "2.0"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/summoner/testapp/tags/list" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string][]string{"tags": fx.tags})
	}))
	t.Cleanup(srv.Close)
	fx.reg = strings.TrimPrefix(srv.URL, "http://")
	fx.f.registry[fx.reg+"/library/postgres:15.10"] = fakeImage{logs: "database system is ready\n"}
	for _, v := range []string{"1.0", "1.1"} {
		fx.f.registry[fx.image(v)] = fakeImage{logs: "testapp " + v + " starting\n"}
	}
	fx.f.registry[fx.image("1.2")] = fakeImage{exitCode: 1, logs: "testapp 1.2 starting\nconfig error: APP_MODE is not set\n"}
	fx.f.registry[fx.image("1.3")] = fakeImage{neverUp: true, logs: "testapp 1.3 waiting for a migration lock\n"}

	dir := t.TempDir()
	stateDir := filepath.Join(dir, "state")
	fx.stateFile = filepath.Join(stateDir, testMinion, "state.json")
	fx.e = minions.NewEngine(fx.f, fakeCatalog(t), minions.EngineOptions{
		Domain: "fake.test", VSRoot: filepath.Join(dir, "volumes"), DBSRoot: filepath.Join(dir, "databases"),
		Mirror: minions.Mirror{Registry: fx.reg}, State: &minions.StateStore{Dir: stateDir},
		HealthTimeout: healthTimeout, Logger: slog.New(slog.NewTextHandler(testLog{t}, nil)),
	})
	fx.port = freePort(t)
	if _, err := fx.e.Summon(context.Background(), testMinion, "1.0", map[string]string{"HTTP_PORT": fx.port}, nil); err != nil {
		t.Fatalf("first summon: %v", err)
	}
	return fx
}

// testLog shows the engine's log with the test's output (go test -v).
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (fx *fakeFixture) image(version string) string { return fx.reg + "/summoner/testapp:" + version }

// fakeCatalog is the test minion; without root, new folders cannot be given
// to its data_owner, so a copy without it is used.
func fakeCatalog(t *testing.T) *minions.Catalog {
	t.Helper()
	dir := "testdata/minions"
	if os.Geteuid() != 0 {
		dir = t.TempDir()
		for _, name := range []string{"compose.yml", "minion.yml"} {
			data, err := os.ReadFile(filepath.Join("testdata/minions", testMinion, name))
			if err != nil {
				t.Fatal(err)
			}
			data = []byte(strings.ReplaceAll(string(data), "data_owner:", "# data_owner:"))
			if err := os.MkdirAll(filepath.Join(dir, testMinion), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, testMinion, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cat, err := minions.LoadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

func (fx *fakeFixture) readState(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(fx.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// answers tells whether the web app answers on a host port.
func answers(port string) bool {
	resp, err := http.Get("http://127.0.0.1:" + port + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// holdPort takes a free port for the test, as another program would.
func holdPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func userMessage(t *testing.T, err error) string {
	t.Helper()
	var um interface{ UserMessage() string }
	if !errors.As(err, &um) {
		t.Fatalf("error %v (%T) has no message for the user", err, err)
	}
	return um.UserMessage()
}

func TestFailedChangePutsBackWhatRan(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// change arms the failure and makes the change that fails.
		change        func(t *testing.T, fx *fakeFixture) error
		healthTimeout time.Duration
		want          []string
		update        bool // an update: the error is an *UpdateError
		untouched     bool // it failed before any container was touched
	}{
		{
			name: "port taken on re-summon",
			change: func(t *testing.T, fx *fakeFixture) error {
				_, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": holdPort(t)}, nil)
				return err
			},
			want: []string{"The change to testmin failed, so I put back what ran before: testmin runs again as before.", "a port this minion publishes is already taken on this server (port "},
		},
		{
			name: "pull fails mid-update",
			change: func(t *testing.T, fx *fakeFixture) error {
				fx.f.fail(&fault{method: "ImagePull", target: fx.image("1.1"), err: errors.New("received unexpected HTTP status: 502 Bad Gateway")})
				_, err := fx.e.Update(ctx, testMinion, "1.1", nil)
				return err
			},
			update:    true,
			untouched: true,
			want:      []string{"Updating testmin failed, so I rolled it back to 1.0, which is running again.", "summoner/testapp:1.1 failed: received unexpected HTTP status: 502 Bad Gateway"},
		},
		{
			name: "new version exits at once",
			change: func(t *testing.T, fx *fakeFixture) error {
				_, err := fx.e.Update(ctx, testMinion, "1.2", nil)
				return err
			},
			update: true,
			want:   []string{"rolled it back to 1.0, which is running again", "testmin-fake.test stopped right after starting (exit code 1)", "config error: APP_MODE is not set"},
		},
		{
			name:          "new version never ready",
			healthTimeout: 300 * time.Millisecond,
			change: func(t *testing.T, fx *fakeFixture) error {
				_, err := fx.e.Update(ctx, testMinion, "1.3", nil)
				return err
			},
			update: true,
			want:   []string{"rolled it back to 1.0, which is running again", "testmin-fake.test was not ready after 300ms", "waiting for a migration lock"},
		},
		{
			name: "command deadline passes while waiting",
			change: func(t *testing.T, fx *fakeFixture) error {
				dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				_, err := fx.e.Update(dctx, testMinion, "1.3", nil)
				return err
			},
			update: true,
			want:   []string{"rolled it back to 1.0, which is running again", "What went wrong: it took longer than the command may run"},
		},
		{
			name: "creating the new container fails",
			change: func(t *testing.T, fx *fakeFixture) error {
				fx.f.fail(&fault{method: "ContainerCreate", target: fakeWeb, err: errors.New("no space left on device")})
				_, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": freePort(t)}, nil)
				return err
			},
			want: []string{"testmin runs again as before", "creating testmin-fake.test: no space left on device"},
		},
		{
			name: "daemon unreachable for one call",
			change: func(t *testing.T, fx *fakeFixture) error {
				fx.f.fail(&fault{method: "ContainerStart", target: fakeWeb, nth: 1})
				_, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": freePort(t)}, nil)
				return err
			},
			want: []string{"testmin runs again as before", "I cannot reach Docker while starting testmin-fake.test"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFakeFixture(t, tt.healthTimeout)
			before, state := fx.f.state(), fx.readState(t)

			err := tt.change(t, fx)
			msg := userMessage(t, err)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("the message lacks %q:\n%s", w, msg)
				}
			}
			var ue *minions.UpdateError
			var ce *minions.ChangeError
			switch {
			case tt.update && (!errors.As(err, &ue) || !ue.Result.RolledBack || ue.Result.Version != "1.0" || ue.Result.Previous != "1.0"):
				t.Errorf("want an *UpdateError rolled back to 1.0, got %#v", err)
			case !tt.update && (!errors.As(err, &ce) || !ce.Restored || ce.Minion != testMinion):
				t.Errorf("want a restored *ChangeError, got %#v", err)
			}

			// The same containers run under their names; nothing else is left.
			after := fx.f.state()
			if fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("containers after the failed change:\n%v\nwant, as before:\n%v", after, before)
			}
			for name, c := range after {
				if c.Status != container.StateRunning {
					t.Errorf("%s is %s", name, c.Status)
				}
			}
			if !answers(fx.port) {
				t.Errorf("the web app does not answer on its port %s", fx.port)
			}
			if got := fx.readState(t); got != state {
				t.Errorf("the state file changed:\n%s\nwant:\n%s", got, state)
			}
			if n := fx.f.count("ContainerStop"); tt.untouched && n != 0 {
				t.Errorf("%d containers were stopped before the change could work", n)
			}
			// However the change ended, the minion's lock is free again.
			if _, err := fx.e.Summon(ctx, testMinion, "", nil, nil); errors.Is(err, minions.ErrBusy) {
				t.Errorf("the next summon: %v", err)
			}
		})
	}
}

func TestFirstSummonThatFailsLeavesNothing(t *testing.T) {
	fx := newFakeFixture(t, 0)
	if err := fx.e.Banish(context.Background(), testMinion, true); err != nil {
		t.Fatal(err)
	}
	taken := holdPort(t)
	_, err := fx.e.Summon(context.Background(), testMinion, "", map[string]string{"HTTP_PORT": taken}, nil)
	var ce *minions.ChangeError
	if errors.As(err, &ce) {
		t.Fatalf("a first summon has nothing to put back, yet: %v", err)
	}
	if msg := userMessage(t, err); !strings.Contains(msg, "already taken on this server (port "+taken+")") {
		t.Fatalf("message %q", msg)
	}
	if st := fx.f.state(); len(st) != 0 {
		t.Fatalf("containers left behind: %v", st)
	}
	if fx.f.networks[testMinion+"_default"] {
		t.Fatal("the network was left behind")
	}
}

// When even putting back fails, the message says the minion is down and
// what to do; doing it brings back the last good settings.
func TestFailedRestoreSaysDown(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, fx *fakeFixture) error
		want   []string
	}{
		{
			name: "daemon gone while the new containers start",
			change: func(t *testing.T, fx *fakeFixture) error {
				fx.f.fail(&fault{method: "ContainerStart", target: fakeWeb, gone: true})
				_, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": freePort(t)}, nil)
				return err
			},
			want: []string{"I cannot reach Docker while removing the new container", "is the Docker daemon running?"},
		},
		{
			name: "the old container does not start again",
			change: func(t *testing.T, fx *fakeFixture) error {
				// The first start is the new container's, the second the old one's.
				fx.f.fail(&fault{method: "ContainerStart", target: fakeWeb, nth: 2, err: errors.New("OCI runtime create failed: out of memory")})
				_, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": holdPort(t)}, nil)
				return err
			},
			want: []string{"already taken on this server", "Why it could not be put back: starting the old testmin-fake.test again: OCI runtime create failed: out of memory"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFakeFixture(t, 0)
			state := fx.readState(t)
			err := tt.change(t, fx)
			msg := userMessage(t, err)
			var ce *minions.ChangeError
			if !errors.As(err, &ce) || ce.Restored || ce.RestoreErr == nil {
				t.Fatalf("want a *ChangeError that was not restored, got %#v", err)
			}
			for _, w := range append(tt.want, "⚠️ testmin is DOWN.", "Run `summon testmin` to bring it back with its last good settings, then `status testmin`") {
				if !strings.Contains(msg, w) {
					t.Errorf("the message lacks %q:\n%s", w, msg)
				}
			}
			if !strings.HasPrefix(msg, "⚠️") {
				t.Errorf("the message does not start with a warning sign:\n%s", msg)
			}
			if got := fx.readState(t); got != state {
				t.Errorf("the state file changed:\n%s", got)
			}

			// What the message says to do works.
			fx.f.back()
			if _, err := fx.e.Summon(ctx, testMinion, "", nil, nil); err != nil {
				t.Fatalf("summon after the failure: %v", err)
			}
			assertRunsAsFirstSummoned(t, fx)
		})
	}
}

// assertRunsAsFirstSummoned checks testmin 1.0 runs on its first port, with
// no container set aside left.
func assertRunsAsFirstSummoned(t *testing.T, fx *fakeFixture) {
	t.Helper()
	st := fx.f.state()
	if len(st) != 2 || st[fakeWeb].Status != container.StateRunning || st[fakeDB].Status != container.StateRunning || st[fakeWeb].Image != fx.image("1.0") {
		t.Fatalf("containers %v, want web 1.0 and db running", st)
	}
	if !answers(fx.port) {
		t.Fatalf("the web app does not answer on %s", fx.port)
	}
}

// Whenever the daemon goes away during a change, the reply says so, and
// once it is back a plain summon brings the minion back as it was.
func TestDaemonGoneAfterNCalls(t *testing.T) {
	ctx := context.Background()
	for n := 1; ; n++ {
		fx := newFakeFixture(t, 0)
		calls := len(fx.f.calls)
		fx.f.fail(&fault{nth: n, gone: true})
		_, err := fx.e.Update(ctx, testMinion, "1.1", nil)
		if err == nil {
			if n < 10 {
				t.Fatalf("an update needs more than %d Docker calls, yet it succeeded with the daemon gone", n)
			}
			// Only losing the daemon at the last call, removing the old
			// container, leaves the update done.
			t.Logf("an update makes %d Docker calls; the daemon went away at each", len(fx.f.calls)-calls)
			return
		}
		msg := userMessage(t, err)
		if !strings.Contains(msg, "is the Docker daemon running?") {
			t.Fatalf("gone at call %d: the message does not say Docker is unreachable:\n%s", n, msg)
		}
		var ce *minions.ChangeError
		if errors.As(err, &ce) && !ce.Restored && !strings.HasPrefix(msg, "⚠️ testmin is DOWN.") {
			t.Fatalf("gone at call %d: a minion left down is not said to be:\n%s", n, msg)
		}
		fx.f.back()
		if _, err := fx.e.Summon(ctx, testMinion, "", nil, nil); err != nil {
			t.Fatalf("gone at call %d: summon once it is back: %v", n, err)
		}
		assertRunsAsFirstSummoned(t, fx)
	}
}

// A database Docker once restarted (kept, unchanged) must not fail every
// later summon: restarts count from the start of the step.
func TestKeptContainerThatDockerRestarted(t *testing.T) {
	ctx := context.Background()
	fx := newFakeFixture(t, 0)
	fx.f.dockerRestarted(t, fakeDB)
	before := fx.f.state()

	res, err := fx.e.Summon(ctx, testMinion, "", nil, nil)
	if err != nil || !res.Unchanged {
		t.Fatalf("unchanged summon: %+v, %v", res, err)
	}
	port := freePort(t)
	if _, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": port}, nil); err != nil {
		t.Fatalf("summon with a new port: %v", err)
	}
	after := fx.f.state()
	if len(after) != 2 || after[fakeDB].ID != before[fakeDB].ID || after[fakeWeb].ID == before[fakeWeb].ID {
		t.Fatalf("containers %v; want the same database and a new web app (before: %v)", after, before)
	}
	if !answers(port) {
		t.Fatalf("the web app does not answer on its new port %s", port)
	}
}

// A crash in the middle of a change leaves a container set aside; the next
// summon sorts it out, and nothing mistakes it for the current one.
func TestContainerSetAsideByACrash(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// crash leaves the fake as a crash would, returning the ID the web
		// service must have afterwards ("" for the current one).
		crash func(t *testing.T, fx *fakeFixture) string
	}{
		{
			name: "crash after setting the old one aside",
			crash: func(t *testing.T, fx *fakeFixture) string {
				id := fx.f.state()[fakeWeb].ID
				if err := fx.f.ContainerStop(ctx, id, container.StopOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := fx.f.ContainerRename(ctx, id, fakeWeb+minions.OldSuffix); err != nil {
					t.Fatal(err)
				}
				return id
			},
		},
		{
			name: "crash before removing the old one",
			crash: func(t *testing.T, fx *fakeFixture) string {
				c, err := fx.f.ContainerInspect(ctx, fakeWeb)
				if err != nil {
					t.Fatal(err)
				}
				old := *c.Config
				old.Image = fx.image("1.1") // a different image, to tell its logs apart
				fx.f.add(fakeWeb+minions.OldSuffix, &old, c.HostConfig)
				logs, err := fx.e.Logs(ctx, testMinion, "", 10)
				if err != nil || !strings.Contains(logs, "testapp 1.0") {
					t.Fatalf("logs %q, %v: want the current container's", logs, err)
				}
				return c.ID
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFakeFixture(t, 0)
			want := tt.crash(t, fx)
			if _, err := fx.e.Summon(ctx, testMinion, "", nil, nil); err != nil {
				t.Fatalf("summon after the crash: %v", err)
			}
			assertRunsAsFirstSummoned(t, fx)
			if got := fx.f.state()[fakeWeb].ID; got != want {
				t.Fatalf("the web container is %s, want %s", got, want)
			}
		})
	}
}

func TestUpdateTarget(t *testing.T) {
	fx := newFakeFixture(t, 0)
	tests := []struct {
		name, version string
		tags          []string
		want          minions.UpdateTarget
	}{
		{"newest of the same major", "", nil, minions.UpdateTarget{From: "1.0", To: "1.3", Newest: "2.0"}},
		{"asked for another major", "2.0", nil, minions.UpdateTarget{From: "1.0", To: "2.0", NewMajor: true}},
		{"asked for the same major", "1.1", nil, minions.UpdateTarget{From: "1.0", To: "1.1"}},
		{"nothing newer of its major", "", []string{"0.9", "1.0", "2.0", "latest"}, minions.UpdateTarget{From: "1.0", To: "1.0", Newest: "2.0"}},
		{"other flavours ignored", "", []string{"1.0", "1.5-alpine", "1.1"}, minions.UpdateTarget{From: "1.0", To: "1.1", Newest: "1.1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.tags != nil {
				old := fx.tags
				fx.tags = tt.tags
				t.Cleanup(func() { fx.tags = old })
			}
			got, err := fx.e.UpdateTarget(context.Background(), testMinion, tt.version)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Minion = testMinion
			if *got != tt.want {
				t.Fatalf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
	t.Run("not summoned", func(t *testing.T) {
		fx := newFakeFixture(t, 0)
		if err := fx.e.Banish(context.Background(), testMinion, false); err != nil {
			t.Fatal(err)
		}
		_, err := fx.e.UpdateTarget(context.Background(), testMinion, "")
		if msg := userMessage(t, err); msg != "testmin is not summoned; `summon testmin` brings it up." {
			t.Fatalf("message %q", msg)
		}
	})
}

// Update without a version stays within the major version.
func TestUpdateWithoutVersionStaysInMajor(t *testing.T) {
	fx := newFakeFixture(t, 0)
	fx.tags = []string{"1.0", "1.1", "2.0"}
	res, err := fx.e.Update(context.Background(), testMinion, "", nil)
	if err != nil || res.Version != "1.1" || res.Previous != "1.0" {
		t.Fatalf("update: %+v, %v; want 1.0 -> 1.1", res, err)
	}
	if st := fx.f.state(); len(st) != 2 || st[fakeWeb].Image != fx.image("1.1") {
		t.Fatalf("containers %v", st)
	}
	if state := fx.readState(t); !strings.Contains(state, `"version": "1.1"`) {
		t.Fatalf("the state does not remember 1.1:\n%s", state)
	}
}
