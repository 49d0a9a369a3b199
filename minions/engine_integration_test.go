package minions_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/internal/itgate"
	"github.com/summoner-bot/summoner/minions"
)

const testMinion = "testmin"

type fixture struct {
	d      *dockertest.Env
	e      *minions.Engine
	vsroot string
	dbroot string
	port   string
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	d := dockertest.Require(t)
	d.RemoveMinion(t, testMinion)
	t.Cleanup(func() { d.RemoveMinion(t, testMinion) })
	cat, err := minions.LoadCatalog("testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &fixture{d: d, vsroot: filepath.Join(dir, "volumes"), dbroot: filepath.Join(dir, "databases"), port: freePort(t)}
	f.e = minions.NewEngine(d.Client, cat, minions.EngineOptions{
		Domain: "it.summoner.test", VSRoot: f.vsroot, DBSRoot: f.dbroot,
		Mirror: minions.Mirror{Registry: d.Registry},
		State:  &minions.StateStore{Dir: filepath.Join(dir, "state")},
	})
	return f
}

func (f *fixture) summon(t testing.TB, version string) (*minions.Result, []string) {
	t.Helper()
	var steps []string
	var mu sync.Mutex
	res, err := f.e.Summon(context.Background(), testMinion, version, map[string]string{"HTTP_PORT": f.port}, func(s string) {
		mu.Lock()
		steps = append(steps, s)
		mu.Unlock()
	})
	if err != nil {
		t.Fatalf("summon: %v", err)
	}
	return res, steps
}

func (f *fixture) psql(t testing.TB, sql string) string {
	t.Helper()
	for _, c := range f.d.Containers(t, testMinion) {
		if c.Labels["summoner.role"] == "db" {
			out, code := f.d.Exec(t, c.ID, nil, "psql", "-U", "app", "-d", "appdb", "-h", "127.0.0.1", "-tAc", sql)
			if code != 0 {
				t.Fatalf("psql %q: exit %d: %s", sql, code, out)
			}
			return strings.TrimSpace(out)
		}
	}
	t.Fatal("no db container")
	return ""
}

func TestSummonLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()

	res, steps := f.summon(t, "")
	// No gateway: no https URL, the port as published.
	if res.Version != "1.0" || res.HTTPS != "" || res.URL != "plain HTTP on 127.0.0.1:"+f.port+", from this server only" || res.Host != "testmin.it.summoner.test" || res.HostPort != f.port || res.HostIP != "127.0.0.1" {
		t.Fatalf("result %+v", res)
	}
	joined := strings.Join(steps, "\n")
	for _, w := range []string{"Creating postgres-testmin-it.summoner.test", "Starting testmin-it.summoner.test", "is healthy"} {
		if !strings.Contains(joined, w) {
			t.Errorf("progress lacks %q:\n%s", w, joined)
		}
	}
	if info, err := os.Stat(filepath.Join(f.vsroot, testMinion, "uploads")); err != nil || info.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("the uploads folder is not owned by the minion's data_owner: %v", err)
	}
	f.answers(t)

	names := map[string]bool{}
	for _, c := range f.d.Containers(t, testMinion) {
		names[strings.TrimPrefix(c.Names[0], "/")] = true
		if c.Labels["com.docker.compose.project"] != testMinion {
			t.Errorf("container %s lacks the compose project label", c.Names[0])
		}
	}
	if !names["testmin-it.summoner.test"] || !names["postgres-testmin-it.summoner.test"] || len(names) != 2 {
		t.Fatalf("containers %v, want the seed's names", names)
	}

	composeSeesIt(t)

	st, err := f.e.Status(ctx, testMinion)
	if err != nil || len(st) != 1 || len(st[0].Services) != 2 {
		t.Fatalf("status %+v, %v", st, err)
	}
	for _, s := range st[0].Services {
		if s.State != "running" {
			t.Errorf("%s is %s", s.Service, s.State)
		}
		if s.Health != "healthy" {
			t.Errorf("%s health %q, want healthy", s.Service, s.Health)
		}
		if s.MemBytes == 0 {
			t.Errorf("%s: no memory figure", s.Service)
		}
	}

	logs, err := f.e.Logs(ctx, testMinion, "", 20)
	if err != nil || !strings.Contains(logs, "testapp 1.0 starting") {
		t.Fatalf("logs %q, %v", logs, err)
	}
	// The app logs its database URL with the generated password in it.
	if !strings.Contains(logs, "database postgres://app:***@db:5432/appdb") || strings.Contains(logs, secret(t, f)) {
		t.Fatalf("logs do not hide the database password:\n%s", logs)
	}

	again, _ := f.summon(t, "")
	if !again.Unchanged {
		t.Fatalf("a second summon changed something: %+v", again)
	}

	f.psql(t, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('written before banish')")
	if err := f.e.Banish(ctx, testMinion, false); err != nil {
		t.Fatal(err)
	}
	if n := len(f.d.Containers(t, testMinion)); n != 0 {
		t.Fatalf("%d containers left after banish", n)
	}
	if _, err := os.Stat(filepath.Join(f.dbroot, testMinion, "pg", "PG_VERSION")); err != nil {
		t.Fatalf("banish without --purge lost the database: %v", err)
	}

	f.summon(t, "")
	if got := f.psql(t, "SELECT body FROM notes"); got != "written before banish" {
		t.Fatalf("after summoning again the row is %q", got)
	}

	if err := f.e.Banish(ctx, testMinion, true); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(f.vsroot, testMinion), filepath.Join(f.dbroot, testMinion)} {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Fatalf("%s still exists after purge: %v", d, err)
		}
	}
	if f.d.NetworkExists(t, testMinion+"_default") {
		t.Fatal("the network is still there after banish")
	}
}

// secret reads the generated database password from the state file.
func secret(t testing.TB, f *fixture) string {
	t.Helper()
	st, err := (&minions.StateStore{Dir: filepath.Join(filepath.Dir(f.vsroot), "state")}).Load(testMinion)
	if err != nil || st.Secrets["DB_PASSWORD"] == "" {
		t.Fatalf("no generated password: %v", err)
	}
	info, err := os.Stat(filepath.Join(filepath.Dir(f.vsroot), "state", testMinion, "state.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, %v; want 0600", info.Mode().Perm(), err)
	}
	return st.Secrets["DB_PASSWORD"]
}

func TestVersionsAndUpdateWithRollback(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.summon(t, "1.0")

	vs, current, err := f.e.Versions(ctx, testMinion)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(vs, " ") != "1.2 1.1 1.0" || current != "1.0" {
		t.Fatalf("versions %v (current %s), want 1.2 1.1 1.0 newest first", vs, current)
	}

	res, err := f.e.Update(ctx, testMinion, "1.1", nil)
	if err != nil || res.Version != "1.1" || res.Previous != "1.0" {
		t.Fatalf("update to 1.1: %+v, %v", res, err)
	}
	if logs, _ := f.e.Logs(ctx, testMinion, "", 20); !strings.Contains(logs, "testapp 1.1 starting") {
		t.Fatalf("after the update the app logs %q", logs)
	}

	res, err = f.e.Update(ctx, testMinion, "1.2", nil)
	var ue *minions.UpdateError
	if !errors.As(err, &ue) || !ue.Result.RolledBack || ue.Result.Version != "1.1" {
		t.Fatalf("update to the broken 1.2: %+v, %v; want a rollback to 1.1", res, err)
	}
	if !strings.Contains(err.Error(), "rolled it back to 1.1") || !strings.Contains(err.Error(), "config error") {
		t.Fatalf("the message does not say what happened: %v", err)
	}
	st, err := f.e.Status(ctx, testMinion)
	if err != nil || len(st) != 1 || len(st[0].Services) != 2 {
		t.Fatalf("status after the rollback: %+v, %v; want one minion with two services", st, err)
	}
	for _, s := range st[0].Services {
		if s.State != "running" || (s.Service == "web" && s.Image != "summoner/testapp:1.1") {
			t.Fatalf("after the rollback %s is %s with %s", s.Service, s.State, s.Image)
		}
	}
	f.answers(t)
}

// answers checks the web app answers on its host port.
func (f *fixture) answers(t testing.TB) {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + f.port + "/")
	if err != nil {
		t.Fatalf("the web app does not answer on its port %s: %v", f.port, err)
	}
	resp.Body.Close()
}

func TestSummonFailuresLeaveNothingBehind(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, takenPort, _ := net.SplitHostPort(taken.Addr().String())

	tests := []struct {
		name     string
		minion   string
		version  string
		settings map[string]string
		want     string
	}{
		{"unknown minion", "wekann", "", nil, `There is no minion called "wekann"`},
		{"unknown version", testMinion, "9.9", map[string]string{"HTTP_PORT": f.port}, "does not exist in the registry"},
		{"port taken", testMinion, "", map[string]string{"HTTP_PORT": takenPort}, "port " + takenPort},
		{"unknown setting", testMinion, "", map[string]string{"COLOUR": "red"}, "testmin has no setting COLOUR; its settings are HTTP_PORT, DB_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.d.RemoveMinion(t, testMinion) // whatever an earlier case left
			_, err := f.e.Summon(ctx, tt.minion, tt.version, tt.settings, nil)
			var um interface{ UserMessage() string }
			if !errors.As(err, &um) || !strings.Contains(um.UserMessage(), tt.want) {
				t.Fatalf("error %v, want a user message with %q", err, tt.want)
			}
			if n := len(f.d.Containers(t, testMinion)); n != 0 {
				t.Fatalf("%d containers left behind", n)
			}
			if f.d.NetworkExists(t, testMinion+"_default") {
				t.Fatal("the network was left behind")
			}
			if _, err := os.Stat(filepath.Join(f.vsroot, testMinion, "uploads")); !os.IsNotExist(err) {
				t.Fatalf("the failed summon left an empty data folder: %v", err)
			}
		})
	}

	t.Run("docker daemon unreachable", func(t *testing.T) {
		dc, err := client.NewClientWithOpts(client.WithHost("unix:///nonexistent/docker.sock"), client.WithAPIVersionNegotiation())
		if err != nil {
			t.Fatal(err)
		}
		cat, _ := minions.LoadCatalog("testdata/minions")
		e := minions.NewEngine(dc, cat, minions.EngineOptions{VSRoot: f.vsroot, DBSRoot: f.dbroot, State: &minions.StateStore{Dir: t.TempDir()}})
		_, err = e.Summon(ctx, testMinion, "", nil, nil)
		if err == nil || !strings.Contains(err.Error(), "is the Docker daemon running?") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestSecondSummonWhileOneRuns(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	inside, hold := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	var once sync.Once
	go func() {
		_, err := f.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": f.port}, func(string) {
			once.Do(func() { // park the first summon at its first step
				close(inside)
				<-hold
			})
		})
		first <- err
	}()
	<-inside
	_, err := f.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": f.port}, nil)
	close(hold)
	if !errors.Is(err, minions.ErrBusy) || !strings.Contains(err.Error(), "already in progress") {
		t.Fatalf("second summon: %v, want 'already in progress'", err)
	}
	if err := <-first; err != nil {
		t.Fatalf("first summon: %v", err)
	}
}

// composeSeesIt checks that `docker compose ls` and `ps` list the stack,
// so people who know compose can use it on what Summoner made.
func composeSeesIt(t *testing.T) {
	t.Helper()
	if err := exec.Command("docker", "compose", "version").Run(); err != nil {
		if itgate.On() {
			t.Fatal("docker compose v2 is missing (bash .ci/docker.sh compose installs it)")
		}
		t.Log("skipping the docker compose check: no docker compose v2 here")
		return
	}
	out, err := exec.Command("docker", "compose", "ls", "--format", "json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"Name":"testmin"`) || !strings.Contains(string(out), "running(2)") {
		t.Fatalf("docker compose ls does not show the minion: %v\n%s", err, out)
	}
	out, err = exec.Command("docker", "compose", "-p", testMinion, "ps", "--format", "{{.Service}}").CombinedOutput()
	if err != nil || strings.Fields(string(out)) == nil || len(strings.Fields(string(out))) != 2 {
		t.Fatalf("docker compose ps: %v\n%s", err, out)
	}
}

// running lists the minion's containers as name -> ID, failing unless
// each runs.
func (f *fixture) running(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, c := range f.d.Containers(t, testMinion) {
		name := strings.TrimPrefix(c.Names[0], "/")
		if c.State != container.StateRunning {
			t.Errorf("%s is %s", name, c.State)
		}
		out[name] = c.ID
	}
	return out
}

func (f *fixture) stateFile(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(filepath.Dir(f.vsroot), "state", testMinion, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// A change that fails leaves the very containers that ran before running,
// with their data, and Summoner remembers the old settings.
func TestFailedChangeKeepsTheSameContainers(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, f *fixture) error
		want   []string
	}{
		{
			name: "re-summon on a port another program holds",
			change: func(t *testing.T, f *fixture) error {
				taken, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer taken.Close()
				_, port, _ := net.SplitHostPort(taken.Addr().String())
				_, err = f.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": port}, nil)
				return err
			},
			want: []string{"The change to testmin failed, so I put back what ran before: testmin runs again as before.", "already taken on this server (port "},
		},
		{
			name: "update to a version that exits at once",
			change: func(t *testing.T, f *fixture) error {
				_, err := f.e.Update(ctx, testMinion, "1.2", nil)
				var ue *minions.UpdateError
				if !errors.As(err, &ue) || !ue.Result.RolledBack || ue.Result.Version != "1.0" {
					t.Errorf("want an *UpdateError rolled back to 1.0, got %v", err)
				}
				return err
			},
			want: []string{"Updating testmin failed, so I rolled it back to 1.0, which is running again.", "config error"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.summon(t, "1.0")
			f.psql(t, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept through a failed change')")
			before, state := f.running(t), f.stateFile(t)

			err := tt.change(t, f)
			var um interface{ UserMessage() string }
			if !errors.As(err, &um) {
				t.Fatalf("error %v has no message for the user", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(um.UserMessage(), w) {
					t.Errorf("the message lacks %q:\n%s", w, um.UserMessage())
				}
			}
			if after := f.running(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Fatalf("containers after the failed change %v, want the same as before %v", after, before)
			}
			if got := f.psql(t, "SELECT body FROM notes"); got != "kept through a failed change" {
				t.Fatalf("the row is %q after the failed change", got)
			}
			if got := f.stateFile(t); got != state {
				t.Fatalf("the state file changed:\n%s\nwant:\n%s", got, state)
			}
			f.answers(t)
		})
	}
}

// A database Docker restarted once (its process died) is kept as it is
// and does not make every later summon fail.
func TestDatabaseRestartedByDocker(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.summon(t, "")
	before := f.running(t)
	db := before["postgres-testmin-it.summoner.test"]
	if db == "" {
		t.Fatalf("no database container among %v", before)
	}
	// postgres runs as PID 1, which ignores signals it has no handler for
	// (SIGKILL from inside); SIGQUIT makes it stop at once, and the restart
	// policy brings it back.
	if out, code := f.d.Exec(t, db, nil, "sh", "-c", `kill -QUIT "$(head -1 "$PGDATA/postmaster.pid")"`); code != 0 {
		t.Fatalf("killing postgres: exit %d: %s", code, out)
	}
	waitFor(t, 60*time.Second, "Docker to restart the database and its health check to pass", func() bool {
		c, err := f.d.Client.ContainerInspect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		return c.RestartCount >= 1 && c.State.Running && c.State.Health != nil && c.State.Health.Status == container.Healthy
	})

	res, _ := f.summon(t, "")
	if !res.Unchanged {
		t.Fatalf("summon of the unchanged minion: %+v, want unchanged", res)
	}
	f.port = freePort(t)
	if _, err := f.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": f.port}, nil); err != nil {
		t.Fatalf("summon with a new port after Docker restarted the database: %v", err)
	}
	after := f.running(t)
	if len(after) != 2 || after["postgres-testmin-it.summoner.test"] != db || after["testmin-it.summoner.test"] == before["testmin-it.summoner.test"] {
		t.Fatalf("containers %v; want the same database and a new web app (before %v)", after, before)
	}
	f.answers(t)
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %s waiting for %s", timeout, what)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		}
	}
}
