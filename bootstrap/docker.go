package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// Defaults of the docker step.
const (
	DefaultDockerHost         = "unix:///var/run/docker.sock"
	DefaultDaemonJSON         = "/etc/docker/daemon.json"
	DefaultDockerdLog         = "/var/log/summoner-dockerd.log"
	DefaultDockerPidFile      = "/var/run/docker.pid" // dockerd writes it itself
	DefaultContainerdPidFile  = "/var/run/docker/containerd/containerd.pid"
	DefaultSystemdDir         = "/run/systemd/system" // exists when systemd runs the machine
	DefaultDockerStartTimeout = 60 * time.Second
)

// Which packages install the engine (--docker-packages).
const (
	DockerIO   = "docker.io" // the distribution's
	DockerCE   = "docker-ce" // Docker's own, from download.docker.com
	DockerNone = "none"      // install and start nothing: use the engine that is there
)

// LogRotation is what the docker step merges into daemon.json's log-opts
// (json-file keeps every line of every container forever otherwise).
var LogRotation = map[string]string{"max-size": "10m", "max-file": "3"}

// System is what the docker step needs of the machine.
type System interface {
	LookPath(file string) (string, error)
	// Run runs a program to its end and returns its combined output.
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
	// Background starts a program in its own session, with stdin from
	// /dev/null, stdout and stderr appended to logPath and no other open
	// files, and returns at once; exited receives once, when it ends.
	Background(name string, args []string, logPath string) (pid int, exited <-chan error, err error)
	// ProcessName is the command name of a live process (not a zombie),
	// or "" if there is none with that pid.
	ProcessName(pid int) string
}

// Pinger asks a Docker engine for its version.
type Pinger interface {
	Version(ctx context.Context, host string) (string, error)
}

// DockerStep installs the Docker engine, merges log rotation into
// daemon.json and starts the engine, unless it already answers with log
// rotation configured. It never restarts a running engine.
type DockerStep struct {
	// Host is the engine's address (docker.host, else DOCKER_HOST); ""
	// is DefaultDockerHost. Bootstrap installs and starts an engine only
	// for the local default socket: any other address must answer.
	Host string
	// Packages is DockerIO (""), DockerCE or DockerNone.
	Packages   string
	DaemonJSON string // "" is DefaultDaemonJSON
	DockerdLog string // where a background dockerd logs; "" is DefaultDockerdLog
	// PidFile and ContainerdPidFile are the engine's own pid files,
	// cleaned when stale; "" are the defaults.
	PidFile           string
	ContainerdPidFile string
	SystemdDir        string        // "" is DefaultSystemdDir
	StartTimeout      time.Duration // the wait for the socket; 0 is 60 s
	PingTimeout       time.Duration // one ping; 0 is 3 s
	Poll              time.Duration // between pings; 0 is 250 ms

	Sys  System // nil: this machine
	Ping Pinger // nil: the Docker Engine API

	now func() time.Time // names the backup of daemon.json
}

// Name implements Step.
func (s *DockerStep) Name() string { return "docker" }

// Title implements Step.
func (s *DockerStep) Title() string { return "Install and start the Docker engine" }

// Timeout implements Timeouter: installing packages takes minutes.
func (s *DockerStep) Timeout() time.Duration { return 15 * time.Minute }

// Done is true when the engine answers and, for the local engine,
// daemon.json already rotates logs.
func (s *DockerStep) Done(ctx context.Context) (bool, string, error) {
	ver, err := s.ping(ctx)
	if err != nil {
		if !s.canStart() {
			return false, "", s.unavailable(err)
		}
		return false, "", nil
	}
	where := fmt.Sprintf("Docker %s answers on %s", ver, displayHost(s.host()))
	if !s.local() {
		return true, where, nil
	}
	_, added, err := s.readMerge()
	if err != nil {
		return false, "", err
	}
	if len(added) > 0 {
		return false, where + "; " + s.daemonJSON() + " lacks log rotation", nil
	}
	return true, where + ", logs rotate", nil
}

// Plan implements Planner.
func (s *DockerStep) Plan(ctx context.Context) string {
	var parts []string
	if _, err := s.sys().LookPath("dockerd"); err != nil {
		parts = append(parts, "install "+strings.Join(s.packages(), " ")+" with apt-get")
	}
	if _, added, err := s.readMerge(); err == nil && len(added) > 0 {
		parts = append(parts, "merge log rotation ("+strings.Join(added, ", ")+") into "+s.daemonJSON())
	}
	if _, err := s.ping(ctx); err != nil {
		if s.systemd() {
			parts = append(parts, "start the engine with systemctl enable --now docker")
		} else {
			parts = append(parts, "start dockerd in the background (no systemd here)")
		}
	}
	return strings.Join(parts, ", then ")
}

// Apply merges log rotation into daemon.json (first, so a freshly
// installed engine starts with it), installs the packages if dockerd is
// missing, and starts the engine if it does not answer.
func (s *DockerStep) Apply(ctx context.Context, say func(string, ...any)) error {
	_, pingErr := s.ping(ctx)
	running := pingErr == nil
	if !running && !s.canStart() { // Done said so already
		return s.unavailable(pingErr)
	}
	changed, err := s.writeRotation(say)
	if err != nil {
		return err
	}
	if changed && running {
		say("the engine keeps running (a restart would stop your apps): log rotation applies to containers created after its next restart")
	}
	if running {
		return nil
	}
	if _, err := s.sys().LookPath("dockerd"); err != nil {
		if err := s.install(ctx, say); err != nil {
			return err
		}
		if _, err := s.ping(ctx); err == nil { // the package started it
			say("the package started the engine")
			return nil
		}
	}
	return s.start(ctx, say)
}

func (s *DockerStep) install(ctx context.Context, say func(string, ...any)) error {
	pkgs := s.packages()
	if s.Packages == DockerCE {
		out, err := s.sys().Run(ctx, nil, "apt-cache", "policy", DockerCE)
		if err != nil || !bytes.Contains(out, []byte("Candidate:")) || bytes.Contains(out, []byte("Candidate: (none)")) {
			return Failf("add Docker's apt repository (https://docs.docker.com/engine/install/) and run again, or use --docker-packages=docker.io",
				"Docker's own packages (docker-ce) are not available from apt here: its repository is not configured or not reachable")
		}
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	say("installing %s with apt-get", strings.Join(pkgs, " "))
	if out, err := s.sys().Run(ctx, env, "apt-get", "update", "-q"); err != nil {
		sayTail(say, out, 5)
		return Failf("check the network and the apt sources (apt-get update), then run `summoner bootstrap` again",
			"apt-get update failed: %s", errLine(err, out))
	}
	// No recommends: they pull needrestart (which may restart services on
	// every later apt run) and apparmor.
	args := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if out, err := s.sys().Run(ctx, env, "apt-get", args...); err != nil {
		sayTail(say, out, 10)
		return Failf("see the apt-get lines above, fix the cause, and run `summoner bootstrap` again",
			"installing %s failed: %s", strings.Join(pkgs, " "), errLine(err, out))
	}
	if _, err := s.sys().LookPath("dockerd"); err != nil {
		return Failf("check that the package installs /usr/sbin/dockerd, then run `summoner bootstrap` again",
			"dockerd is still missing after installing %s", strings.Join(pkgs, " "))
	}
	say("installed %s", strings.Join(pkgs, " "))
	return nil
}

func (s *DockerStep) start(ctx context.Context, say func(string, ...any)) error {
	if s.systemd() {
		say("starting the engine: systemctl enable --now docker")
		if out, err := s.sys().Run(ctx, nil, "systemctl", "enable", "--now", "docker"); err != nil {
			if jl, _ := s.sys().Run(ctx, nil, "journalctl", "-u", "docker", "-n", "10", "--no-pager"); len(jl) > 0 {
				sayTail(say, jl, 10)
			}
			return Failf("see `journalctl -u docker`, fix the cause, and run `summoner bootstrap` again",
				"systemctl enable --now docker failed: %s", errLine(err, out))
		}
		return s.wait(ctx, say, 0, nil, "`journalctl -u docker`")
	}
	log := s.dockerdLog()
	if pid := s.livePid(s.pidFile(), "dockerd"); pid > 0 {
		say("dockerd (pid %d) runs but does not answer yet: waiting", pid)
		return s.wait(ctx, say, pid, nil, log)
	}
	// Leftovers of a dockerd that died: dockerd refuses to start while its
	// pid file names any live process (pids get reused), and would wait
	// for a "still running" containerd that is not one. A live containerd
	// it left behind is reused.
	for _, f := range []struct{ path, comm string }{{s.pidFile(), "dockerd"}, {s.containerdPidFile(), "containerd"}} {
		if _, err := os.Stat(f.path); err == nil && s.livePid(f.path, f.comm) == 0 {
			say("removing the stale %s", f.path)
			if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return Failf("remove it by hand and run `summoner bootstrap` again", "cannot remove the stale %s: %v", f.path, err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(log), 0o755); err != nil {
		return err
	}
	say("no systemd here: starting dockerd in the background (log: %s)", log)
	pid, exited, err := s.sys().Background("dockerd", nil, log)
	if err != nil {
		return Failf("check that dockerd runs (dockerd --version), then run `summoner bootstrap` again", "cannot start dockerd: %v", err)
	}
	if err := s.wait(ctx, say, 0, exited, log); err != nil {
		return err
	}
	if p := s.livePid(s.pidFile(), "dockerd"); p > 0 {
		pid = p // dockerd's own pid file is the truth
	}
	say("dockerd (pid %d) runs in the background until the next reboot: add it to your init system to keep it running", pid)
	return nil
}

// wait pings until the engine answers, dockerd exits (exited, or pid
// gone), or the start timeout passes.
func (s *DockerStep) wait(ctx context.Context, say func(string, ...any), pid int, exited <-chan error, logName string) error {
	timeout := s.StartTimeout
	if timeout <= 0 {
		timeout = DefaultDockerStartTimeout
	}
	poll := s.Poll
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(poll)
	defer tick.Stop()
	next := fmt.Sprintf("see %s, fix the cause, and run `summoner bootstrap` again", logName)
	for {
		ver, err := s.ping(wctx)
		if err == nil {
			say("Docker %s answers on %s", ver, displayHost(s.host()))
			return nil
		}
		gone := pid > 0 && s.sys().ProcessName(pid) != "dockerd"
		select {
		case <-exited: //nolint:errcheck // an exit status says less than dockerd's last log line, shown below
			gone = true
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			last := s.sayLog(say)
			return Failf(next, "the Docker socket %s did not answer within %s%s", displayHost(s.host()), timeout, prefixed(": dockerd's last line: ", last))
		case <-tick.C:
		}
		if gone {
			last := s.sayLog(say)
			return Failf(next, "dockerd exited during startup%s", prefixed(": ", last))
		}
	}
}

// sayLog shows the last lines of the background dockerd's log and
// returns the last one.
func (s *DockerStep) sayLog(say func(string, ...any)) string {
	if s.systemd() {
		return ""
	}
	b, err := os.ReadFile(s.dockerdLog())
	if err != nil {
		return ""
	}
	return sayTail(say, b, 10)
}

// writeRotation merges log rotation into daemon.json, keeping every key
// there and a backup of the old file, and says what it did.
func (s *DockerStep) writeRotation(say func(string, ...any)) (bool, error) {
	path := s.daemonJSON()
	merged, added, err := s.readMerge()
	if err != nil || len(added) == 0 {
		return false, err
	}
	mode := fs.FileMode(0o644)
	if info, err := os.Stat(path); err == nil {
		mode = info.Mode().Perm()
		old, err := os.ReadFile(path)
		if err != nil {
			return false, err
		}
		now := time.Now
		if s.now != nil {
			now = s.now
		}
		backup := path + ".before-summoner-" + now().UTC().Format("20060102-150405")
		if err := atomicfile.Write(backup, old, mode); err != nil {
			return false, Failf("check that "+filepath.Dir(path)+" is writable, then run `summoner bootstrap` again", "cannot keep a backup of %s: %v", path, err)
		}
		say("kept the old %s as %s", path, backup)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	if err := atomicfile.Write(path, merged, mode); err != nil {
		return false, Failf("check that "+filepath.Dir(path)+" is writable, then run `summoner bootstrap` again", "cannot write %s: %v", path, err)
	}
	say("merged log rotation into %s (%s)", path, strings.Join(added, ", "))
	return true, nil
}

// readMerge reads daemon.json (absent is empty) and merges log rotation.
func (s *DockerStep) readMerge() ([]byte, []string, error) {
	path := s.daemonJSON()
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, Failf("check its permissions, then run `summoner bootstrap` again", "cannot read %s: %v", path, err)
	}
	merged, added, err := MergeLogRotation(old)
	if err != nil {
		return nil, nil, Failf("fix "+path+" (or move it away) and run `summoner bootstrap` again; it was left as it is",
			"%s is not valid: %v", path, err)
	}
	return merged, added, nil
}

// MergeLogRotation merges log rotation into the content of a daemon.json
// (empty for none), keeping every key there: "log-driver": "json-file"
// only when no driver is set, and LogRotation's log-opts only for the keys
// missing, and only when the driver is json-file or local (other drivers
// refuse these options). added lists what it set, sorted; none means
// merged is old, unchanged.
func MergeLogRotation(old []byte) (merged []byte, added []string, err error) {
	cfg := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(old)) > 0 {
		if err := json.Unmarshal(old, &cfg); err != nil {
			return nil, nil, fmt.Errorf("not a JSON object: %w", err)
		}
		if cfg == nil { // "null"
			cfg = map[string]json.RawMessage{}
		}
	}
	driver := "json-file"
	if raw, ok := cfg["log-driver"]; ok {
		if err := json.Unmarshal(raw, &driver); err != nil {
			return nil, nil, fmt.Errorf("log-driver is not a string: %s", raw)
		}
	} else {
		cfg["log-driver"] = json.RawMessage(`"json-file"`)
		added = append(added, `log-driver "json-file"`)
	}
	if driver == "json-file" || driver == "local" {
		opts := map[string]json.RawMessage{}
		if raw, ok := cfg["log-opts"]; ok {
			if err := json.Unmarshal(raw, &opts); err != nil {
				return nil, nil, fmt.Errorf("log-opts is not an object: %s", raw)
			}
			if opts == nil {
				opts = map[string]json.RawMessage{}
			}
		}
		keys := make([]string, 0, len(LogRotation))
		for k := range LogRotation {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		n := len(added)
		for _, k := range keys {
			if _, ok := opts[k]; !ok {
				opts[k], _ = json.Marshal(LogRotation[k])
				added = append(added, fmt.Sprintf("log-opts %s %q", k, LogRotation[k]))
			}
		}
		if len(added) > n {
			cfg["log-opts"], _ = json.Marshal(opts)
		}
	}
	if len(added) == 0 {
		return old, nil, nil
	}
	merged, err = json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	return append(merged, '\n'), added, nil
}

func (s *DockerStep) ping(ctx context.Context) (string, error) {
	t := s.PingTimeout
	if t <= 0 {
		t = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, t)
	defer cancel()
	p := s.Ping
	if p == nil {
		p = EnginePinger{}
	}
	return p.Version(ctx, s.host())
}

// unavailable is the failure when the engine does not answer and
// bootstrap may not start one.
func (s *DockerStep) unavailable(err error) error {
	next := "start the engine (systemctl start docker, or dockerd &), or drop --docker-packages=none to let bootstrap start it, and run `summoner bootstrap` again"
	if !s.local() {
		next = "start the engine at " + s.host() + ", or unset DOCKER_HOST (and docker.host) so bootstrap installs and starts one on /var/run/docker.sock"
	}
	why := "does not answer"
	if err != nil {
		why += ": " + err.Error()
	}
	return Failf(next, "the Docker socket %s %s", displayHost(s.host()), why)
}

func (s *DockerStep) host() string {
	if s.Host == "" {
		return DefaultDockerHost
	}
	return s.Host
}

// local is true for the local default socket, the one engine bootstrap
// may install and start.
func (s *DockerStep) local() bool {
	h := s.host()
	return h == DefaultDockerHost || h == "unix:///run/docker.sock"
}

func (s *DockerStep) canStart() bool { return s.local() && s.Packages != DockerNone }

func (s *DockerStep) packages() []string {
	if s.Packages == DockerCE {
		return []string{"docker-ce", "docker-ce-cli", "containerd.io"}
	}
	return []string{"docker.io"}
}

func (s *DockerStep) systemd() bool {
	dir := s.SystemdDir
	if dir == "" {
		dir = DefaultSystemdDir
	}
	info, err := os.Stat(dir)
	return err == nil && info.IsDir()
}

func (s *DockerStep) sys() System {
	if s.Sys == nil {
		return HostSystem{}
	}
	return s.Sys
}

func (s *DockerStep) daemonJSON() string { return orDefault(s.DaemonJSON, DefaultDaemonJSON) }
func (s *DockerStep) dockerdLog() string { return orDefault(s.DockerdLog, DefaultDockerdLog) }
func (s *DockerStep) pidFile() string    { return orDefault(s.PidFile, DefaultDockerPidFile) }
func (s *DockerStep) containerdPidFile() string {
	return orDefault(s.ContainerdPidFile, DefaultContainerdPidFile)
}

// livePid is the pid in path if a live process named comm has it, else 0.
func (s *DockerStep) livePid(path, comm string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || s.sys().ProcessName(pid) != comm {
		return 0
	}
	return pid
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func displayHost(h string) string { return strings.TrimPrefix(h, "unix://") }

func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// sayTail says the last n non-empty lines of out, indented as progress,
// and returns the last one.
func sayTail(say func(string, ...any), out []byte, n int) string {
	lines := tail(out, n)
	for _, l := range lines {
		say("│ %s", l)
	}
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

func tail(out []byte, n int) []string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// errLine is the last line of a failed command's output, or its error.
func errLine(err error, out []byte) string {
	if l := tail(out, 1); len(l) == 1 {
		return l[0]
	}
	return err.Error()
}

// EnginePinger asks the Docker Engine API for the version.
type EnginePinger struct{}

// Version implements Pinger. For a unix socket it dials first, so the
// error says why ("no such file or directory", "connection refused")
// rather than the client's "Cannot connect to the Docker daemon".
func (EnginePinger) Version(ctx context.Context, host string) (string, error) {
	if path, ok := strings.CutPrefix(host, "unix://"); ok {
		var d net.Dialer
		c, err := d.DialContext(ctx, "unix", path)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Err != nil {
				return "", op.Err // "connect: connection refused"
			}
			return "", err
		}
		c.Close()
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return "", err
	}
	defer cli.Close()
	v, err := cli.ServerVersion(ctx)
	if err != nil {
		return "", err
	}
	return v.Version, nil
}

// HostSystem is this machine.
type HostSystem struct{}

// LookPath implements System; sbin folders count, as for root.
func (HostSystem) LookPath(file string) (string, error) {
	if p, err := exec.LookPath(file); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/local/sbin", "/usr/sbin", "/sbin"} {
		p := filepath.Join(dir, file)
		if info, err := os.Stat(p); err == nil && !info.IsDir() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found", file)
}

// Run implements System.
func (h HostSystem) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	path, err := h.LookPath(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// Background implements System.
func (h HostSystem) Background(name string, args []string, logPath string) (int, <-chan error, error) {
	path, err := h.LookPath(name)
	if err != nil {
		return 0, nil, err
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return 0, nil, err
	}
	defer f.Close()
	CloseInheritedFiles()
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f // stdin: /dev/null
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return cmd.Process.Pid, exited, nil
}

// CloseInheritedFiles marks every descriptor above stderr close-on-exec:
// Go opens its own files so, but not those this process inherited (a
// caller's lock on fd 9), which a background dockerd would hold forever.
func CloseInheritedFiles() {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			syscall.CloseOnExec(fd)
		}
	}
}

// ProcessName implements System from /proc.
func (HostSystem) ProcessName(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ""
	}
	if st := b[i+2]; st == 'Z' || st == 'X' {
		return ""
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(comm))
}
