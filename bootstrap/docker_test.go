package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEngine is the machine and its engine: the pinger and the System.
type fakeEngine struct {
	mu        sync.Mutex
	up        bool
	version   string
	paths     map[string]bool // programs on PATH
	runs      []string
	run       func(cmd string) ([]byte, error) // nil: success, no output
	procs     map[int]string
	started   int
	onStart   func(e *fakeEngine) (exited <-chan error) // nil: the engine comes up
	installed []string                                  // what apt-get install makes appear
}

func (e *fakeEngine) Version(ctx context.Context, host string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.up {
		return "", errors.New("connect: connection refused")
	}
	return e.version, nil
}

func (e *fakeEngine) LookPath(file string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.paths[file] {
		return "/usr/sbin/" + file, nil
	}
	return "", errors.New(file + ": not found")
}

func (e *fakeEngine) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := strings.Join(append([]string{name}, args...), " ")
	e.mu.Lock()
	e.runs = append(e.runs, cmd)
	run := e.run
	e.mu.Unlock()
	var out []byte
	var err error
	if run != nil {
		out, err = run(cmd)
	}
	if err == nil && strings.HasPrefix(cmd, "apt-get install") {
		if !strings.Contains(strings.Join(env, " "), "DEBIAN_FRONTEND=noninteractive") {
			return nil, errors.New("apt-get run interactively")
		}
		e.mu.Lock()
		for _, p := range e.installed {
			e.paths[p] = true
		}
		e.mu.Unlock()
	}
	if err == nil && cmd == "systemctl enable --now docker" {
		e.mu.Lock()
		e.up = true
		e.mu.Unlock()
	}
	return out, err
}

func (e *fakeEngine) Background(name string, args []string, logPath string) (int, <-chan error, error) {
	e.mu.Lock()
	e.started++
	onStart := e.onStart
	e.mu.Unlock()
	if name != "dockerd" {
		return 0, nil, errors.New("unexpected " + name)
	}
	if onStart != nil {
		return 4242, onStart(e), nil
	}
	go func() {
		time.Sleep(30 * time.Millisecond)
		e.mu.Lock()
		e.up = true
		e.mu.Unlock()
	}()
	return 4242, make(chan error), nil
}

func (e *fakeEngine) ProcessName(pid int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.procs[pid]
}

func (e *fakeEngine) ran() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.runs...)
}

// newDockerStep is a step whose every path is in a temporary folder.
func newDockerStep(t *testing.T, e *fakeEngine) *DockerStep {
	t.Helper()
	dir := t.TempDir()
	if e.paths == nil {
		e.paths = map[string]bool{}
	}
	if e.procs == nil {
		e.procs = map[int]string{}
	}
	if e.version == "" {
		e.version = "20.10.24"
	}
	return &DockerStep{
		DaemonJSON:        filepath.Join(dir, "etc", "docker", "daemon.json"),
		DockerdLog:        filepath.Join(dir, "dockerd.log"),
		PidFile:           filepath.Join(dir, "docker.pid"),
		ContainerdPidFile: filepath.Join(dir, "containerd.pid"),
		SystemdDir:        filepath.Join(dir, "no-systemd"),
		StartTimeout:      2 * time.Second,
		Poll:              5 * time.Millisecond,
		Sys:               e,
		Ping:              e,
		now:               func() time.Time { return time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC) },
	}
}

// apply runs the step as the runner does: Done, Apply, Done.
func apply(t *testing.T, s *DockerStep) (said string, err error) {
	t.Helper()
	ctx := context.Background()
	done, _, err := s.Done(ctx)
	if err != nil || done {
		return "", err
	}
	var b strings.Builder
	err = s.Apply(ctx, func(f string, a ...any) {
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(sprintf(f, a...), "\n", " ")) + "\n")
	})
	if err != nil {
		return b.String(), err
	}
	done, what, err := s.Done(ctx)
	if err != nil || !done {
		t.Fatalf("not done after Apply: %v, %q\n%s", err, what, b.String())
	}
	return b.String(), nil
}

const rotated = `{"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}`

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestDockerAlreadyDone(t *testing.T) {
	e := &fakeEngine{up: true, paths: map[string]bool{"dockerd": true}}
	s := newDockerStep(t, e)
	writeFile(t, s.DaemonJSON, rotated, 0o644)
	done, what, err := s.Done(context.Background())
	if err != nil || !done || what != "Docker 20.10.24 answers on /var/run/docker.sock, logs rotate" {
		t.Fatalf("Done = %v, %q, %v", done, what, err)
	}
	if len(e.ran()) != 0 || e.started != 0 {
		t.Errorf("Done acted: %v", e.ran())
	}
}

func TestDockerRunningEngineGetsRotationWithoutRestart(t *testing.T) {
	e := &fakeEngine{up: true, paths: map[string]bool{"dockerd": true}}
	s := newDockerStep(t, e)
	writeFile(t, s.DaemonJSON, `{"data-root": "/data/docker"}`, 0o600)
	said, err := apply(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(e.ran()) != 0 || e.started != 0 {
		t.Errorf("touched the running engine: %v, %d starts", e.ran(), e.started)
	}
	for _, w := range []string{"kept the old " + s.DaemonJSON + " as " + s.DaemonJSON + ".before-summoner-20261130-100000",
		"merged log rotation into", "applies to containers created after its next restart"} {
		if !strings.Contains(said, w) {
			t.Errorf("progress lacks %q:\n%s", w, said)
		}
	}
	got, _ := os.ReadFile(s.DaemonJSON)
	if !strings.Contains(string(got), `"data-root": "/data/docker"`) || !strings.Contains(string(got), `"max-size": "10m"`) {
		t.Errorf("daemon.json:\n%s", got)
	}
	if info, _ := os.Stat(s.DaemonJSON); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want the old 0600", info.Mode().Perm())
	}
	if old, _ := os.ReadFile(s.DaemonJSON + ".before-summoner-20261130-100000"); string(old) != `{"data-root": "/data/docker"}` {
		t.Errorf("backup %q", old)
	}
}

func TestDockerNoneStillMergesRotation(t *testing.T) {
	e := &fakeEngine{up: true}
	s := newDockerStep(t, e)
	s.Packages = DockerNone
	said, err := apply(t, s)
	if err != nil || len(e.ran()) != 0 || e.started != 0 || !strings.Contains(said, "merged log rotation") {
		t.Errorf("err %v, ran %v, %d starts:\n%s", err, e.ran(), e.started, said)
	}
}

func TestDockerInstallsAndStartsInTheBackground(t *testing.T) {
	e := &fakeEngine{installed: []string{"dockerd", "docker"}}
	s := newDockerStep(t, e)
	writeFile(t, s.PidFile, "31337\n", 0o644)           // a dockerd that died
	writeFile(t, s.ContainerdPidFile, "31338\n", 0o644) // its containerd, dead too
	said, err := apply(t, s)
	if err != nil {
		t.Fatalf("%v\n%s", err, said)
	}
	want := []string{"apt-get update -q", "apt-get install -y -q --no-install-recommends docker.io"}
	if got := e.ran(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("ran %q, want %q", got, want)
	}
	if e.started != 1 {
		t.Errorf("dockerd started %d times", e.started)
	}
	for _, f := range []string{s.PidFile, s.ContainerdPidFile} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("stale %s left", f)
		}
	}
	for _, w := range []string{"installing docker.io with apt-get", "removing the stale " + s.PidFile,
		"no systemd here: starting dockerd in the background (log: " + s.DockerdLog + ")",
		"Docker 20.10.24 answers on /var/run/docker.sock", "until the next reboot: add it to your init system"} {
		if !strings.Contains(said, w) {
			t.Errorf("progress lacks %q:\n%s", w, said)
		}
	}
	// daemon.json was written before the install, so the engine starts with it.
	if _, err := os.Stat(s.DaemonJSON); err != nil {
		t.Error(err)
	}
}

func TestDockerStartsWithSystemd(t *testing.T) {
	e := &fakeEngine{paths: map[string]bool{"dockerd": true}}
	s := newDockerStep(t, e)
	s.SystemdDir = t.TempDir()
	writeFile(t, s.DaemonJSON, rotated, 0o644)
	said, err := apply(t, s)
	if err != nil {
		t.Fatalf("%v\n%s", err, said)
	}
	if got := e.ran(); len(got) != 1 || got[0] != "systemctl enable --now docker" || e.started != 0 {
		t.Errorf("ran %q, %d background starts", got, e.started)
	}
}

func TestDockerWaitsForALiveDockerd(t *testing.T) {
	e := &fakeEngine{paths: map[string]bool{"dockerd": true}, procs: map[int]string{777: "dockerd"}}
	s := newDockerStep(t, e)
	writeFile(t, s.DaemonJSON, rotated, 0o644)
	writeFile(t, s.PidFile, "777\n", 0o644)
	time.AfterFunc(30*time.Millisecond, func() { e.mu.Lock(); e.up = true; e.mu.Unlock() })
	said, err := apply(t, s)
	if err != nil {
		t.Fatalf("%v\n%s", err, said)
	}
	if e.started != 0 || !strings.Contains(said, "dockerd (pid 777) runs but does not answer yet: waiting") {
		t.Errorf("%d starts:\n%s", e.started, said)
	}
	if _, err := os.Stat(s.PidFile); err != nil {
		t.Error("removed a live dockerd's pid file")
	}
}

func TestDockerFailures(t *testing.T) {
	tests := []struct {
		name    string
		engine  *fakeEngine
		setup   func(t *testing.T, s *DockerStep)
		why     string
		next    string
		said    string
		noTouch bool // nothing ran, nothing started
	}{
		{
			name:   "socket unavailable at DOCKER_HOST",
			engine: &fakeEngine{paths: map[string]bool{"dockerd": true}},
			setup:  func(t *testing.T, s *DockerStep) { s.Host = "unix:///tmp/nothing.sock" },
			why:    "the Docker socket /tmp/nothing.sock does not answer: connect: connection refused",
			next:   "start the engine at unix:///tmp/nothing.sock, or unset DOCKER_HOST", noTouch: true,
		},
		{
			name:   "socket unavailable and told not to install",
			engine: &fakeEngine{},
			setup:  func(t *testing.T, s *DockerStep) { s.Packages = DockerNone },
			why:    "the Docker socket /var/run/docker.sock does not answer: connect: connection refused",
			next:   "start the engine (systemctl start docker, or dockerd &)", noTouch: true,
		},
		{
			name:   "invalid daemon.json",
			engine: &fakeEngine{up: true, paths: map[string]bool{"dockerd": true}},
			setup:  func(t *testing.T, s *DockerStep) { writeFile(t, s.DaemonJSON, `{"debug": true,}`, 0o644) },
			why:    "daemon.json is not valid: not a JSON object", next: "fix ", noTouch: true,
		},
		{
			name: "dockerd exits at once",
			engine: &fakeEngine{paths: map[string]bool{"dockerd": true}, onStart: func(e *fakeEngine) <-chan error {
				ch := make(chan error, 1)
				ch <- errors.New("exit status 1")
				return ch
			}},
			setup: func(t *testing.T, s *DockerStep) {
				writeFile(t, s.DockerdLog, "time=\"…\" level=info msg=\"Starting up\"\nfailed to start daemon: Error initializing network controller: iptables not found\n", 0o640)
			},
			why:  "dockerd exited during startup: failed to start daemon: Error initializing network controller: iptables not found",
			next: "see ", said: "│ time=",
		},
		{
			name:   "the socket never answers",
			engine: &fakeEngine{paths: map[string]bool{"dockerd": true}, onStart: func(e *fakeEngine) <-chan error { return make(chan error) }},
			setup:  func(t *testing.T, s *DockerStep) { s.StartTimeout = 100 * time.Millisecond },
			why:    "the Docker socket /var/run/docker.sock did not answer within 100ms", next: "see ",
		},
		{
			name: "apt-get install fails",
			engine: &fakeEngine{run: func(cmd string) ([]byte, error) {
				if strings.HasPrefix(cmd, "apt-get install") {
					return []byte("Reading package lists...\nE: Unable to locate package docker.io\n"), errors.New("exit status 100")
				}
				return nil, nil
			}},
			why: "installing docker.io failed: E: Unable to locate package docker.io", next: "see the apt-get lines above",
		},
		{
			name: "docker-ce without its repository",
			engine: &fakeEngine{run: func(cmd string) ([]byte, error) {
				if strings.HasPrefix(cmd, "apt-cache policy") {
					return []byte("docker-ce:\n  Installed: (none)\n  Candidate: (none)\n"), nil
				}
				return nil, errors.New("must not run " + cmd)
			}},
			setup: func(t *testing.T, s *DockerStep) { s.Packages = DockerCE },
			why:   "Docker's own packages (docker-ce) are not available from apt here", next: "add Docker's apt repository",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newDockerStep(t, tt.engine)
			if tt.setup != nil {
				tt.setup(t, s)
			}
			var before []byte
			if b, err := os.ReadFile(s.DaemonJSON); err == nil {
				before = b
			}
			said, err := apply(t, s)
			var se *StepError
			if !errors.As(err, &se) {
				t.Fatalf("err %v, want a StepError\n%s", err, said)
			}
			if !strings.Contains(se.Why, tt.why) || !strings.HasPrefix(se.Next, tt.next) || strings.Contains(se.Why, "\n") {
				t.Errorf("why %q\nnext %q\nwant %q, next starting %q", se.Why, se.Next, tt.why, tt.next)
			}
			if !strings.Contains(said, tt.said) {
				t.Errorf("progress lacks %q:\n%s", tt.said, said)
			}
			if tt.noTouch {
				if len(tt.engine.ran()) != 0 || tt.engine.started != 0 {
					t.Errorf("acted: ran %v, %d starts", tt.engine.ran(), tt.engine.started)
				}
				if after, _ := os.ReadFile(s.DaemonJSON); string(after) != string(before) {
					t.Errorf("daemon.json changed to %q", after)
				}
			}
		})
	}
}

func TestDockerPlan(t *testing.T) {
	e := &fakeEngine{}
	s := newDockerStep(t, e)
	want := `install docker.io with apt-get, then merge log rotation (log-driver "json-file", log-opts max-file "3", log-opts max-size "10m") into ` + s.DaemonJSON + `, then start dockerd in the background (no systemd here)`
	if got := s.Plan(context.Background()); got != want {
		t.Errorf("plan %q\nwant %q", got, want)
	}
	if len(e.ran()) != 0 {
		t.Errorf("the plan ran %v", e.ran())
	}
}

// TestHostSystemProcessName reads this process and a pid that is not there.
func TestHostSystemProcessName(t *testing.T) {
	var h HostSystem
	if got := h.ProcessName(os.Getpid()); got == "" {
		t.Error("no name for this process")
	}
	if got := h.ProcessName(1 << 30); got != "" {
		t.Errorf("a name for a pid that is not there: %q", got)
	}
}

// TestEnginePingerSaysWhy: a socket that is not there is named plainly.
func TestEnginePingerSaysWhy(t *testing.T) {
	_, err := EnginePinger{}.Version(context.Background(), "unix://"+filepath.Join(t.TempDir(), "nothing.sock"))
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") || strings.Contains(err.Error(), "Cannot connect") {
		t.Errorf("err %v", err)
	}
}

// TestHostSystemBackground: the program runs in its own session, with its
// output in the log and the exit reported.
func TestHostSystemBackground(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	var h HostSystem
	_, exited, err := h.Background("sh", []string{"-c", "echo sid=$(ps -o sid= -p $$ | tr -d ' ') pid=$$; exit 3"}, log)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Errorf("exit %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit")
	}
	b, _ := os.ReadFile(log)
	var sid, pid string
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "sid="); ok {
			sid = v
		}
		if v, ok := strings.CutPrefix(f, "pid="); ok {
			pid = v
		}
	}
	if sid == "" || sid != pid {
		t.Errorf("not a session leader: %q", b)
	}
}
