package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// Service is a long-running Summoner process that bootstrap installs: the
// gateway, the bot. With systemd it becomes a unit that starts at boot;
// without it (a container, this CI machine) it is started in the
// background in its own session, with a pid file, and the user is told how
// to keep it running.
type Service struct {
	StepName  string // "gateway", "bot"
	StepTitle string
	Unit      string   // "summoner-gateway": the unit's name and the pid/log file names
	Args      []string // after the binary: ["--config", "/etc/summoner/config.yml", "gateway"]
	// Binary is where the summoner binary is installed (/usr/local/bin/
	// summoner); bootstrap copies itself there, so a unit never points at
	// a build folder that may go away.
	Binary   string
	StateDir string // pid and log files when there is no systemd
	// Healthy says whether the running service answers, and what it says.
	Healthy func(ctx context.Context) (bool, string)
	// Ports must be free before the service starts (a gateway's :80 and
	// :443); a taken one fails the step at once with a clear line. A
	// function: an address may be known only once earlier steps ran.
	Ports func() []string
	// Wait bounds how long Apply waits for Healthy after starting.
	Wait time.Duration
	// Systemd: nil asks the machine (/run/systemd/system exists).
	Systemd *bool
	// UnitDir holds unit files (/etc/systemd/system); tests change it.
	UnitDir string
	Sys     System // runs systemctl and starts the background process; nil: HostSystem
	// Sandbox, when set, runs the systemd unit as its own unprivileged
	// user; without systemd the program drops its privileges itself.
	Sandbox *Sandbox

	exited <-chan error // the background process's end, once started
}

// Sandbox is how a service that faces the internet runs under systemd:
// as its own system user, on a read-only system where it may write only
// its folder, with no capability but binding ports below 1024 if it binds
// them itself, and its settings on standard input from a file only root
// reads.
type Sandbox struct {
	User string
	Dir  string   // its own folder (ReadWritePaths), owned by User
	Args []string // the command under systemd, after the binary
	// SettingsFile (mode 0600) holds what Settings returns; systemd opens
	// it as root and hands it over as standard input.
	SettingsFile string
	Settings     func() ([]byte, error)
	BindPorts    bool // AmbientCapabilities=CAP_NET_BIND_SERVICE, and nothing else
	// Prepare makes User and Dir before the unit starts.
	Prepare func(ctx context.Context) error
}

func (s *Service) Name() string  { return s.StepName }
func (s *Service) Title() string { return s.StepTitle }

// Timeout covers a binary copy, a start and the wait for health.
func (s *Service) Timeout() time.Duration { return s.Wait + 2*time.Minute }

func (s *Service) systemd() bool {
	if s.Systemd != nil {
		return *s.Systemd
	}
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

func (s *Service) sys() System {
	if s.Sys != nil {
		return s.Sys
	}
	return HostSystem{}
}

func (s *Service) pidFile() string { return filepath.Join(s.StateDir, s.Unit+".pid") }
func (s *Service) logFile() string { return filepath.Join(s.StateDir, s.Unit+".log") }
func (s *Service) unitFile() string {
	dir := s.UnitDir
	if dir == "" {
		dir = "/etc/systemd/system"
	}
	return filepath.Join(dir, s.Unit+".service")
}

// Done: the binary is installed as it is now, and the service answers.
func (s *Service) Done(ctx context.Context) (bool, string, error) {
	if same, _ := s.binaryCurrent(); !same {
		return false, "", nil
	}
	ok, what := s.Healthy(ctx)
	return ok, what, nil
}

func (s *Service) Plan(ctx context.Context) string {
	how, args := "in the background (no systemd here)", s.Args
	if s.systemd() {
		how = "as the systemd unit " + s.Unit
		if s.Sandbox != nil {
			how += " (user " + s.Sandbox.User + ")"
			args = s.Sandbox.Args
		}
	}
	return fmt.Sprintf("would install %s and start `summoner %s` %s", s.Binary, strings.Join(args, " "), how)
}

func (s *Service) Apply(ctx context.Context, say func(string, ...any)) error {
	changed, err := s.installBinary()
	if err != nil {
		return err
	}
	if changed {
		say("installed %s", s.Binary)
	}
	// A running service on the old binary is restarted so it runs the new
	// one; one that answers is otherwise left alone.
	running, _ := s.Healthy(ctx)
	if !running {
		var ports []string
		if s.Ports != nil {
			ports = s.Ports()
		}
		for _, p := range ports {
			if err := portFree(p); err != nil {
				return Failf("stop the program that holds it (`ss -ltnp` names it) or set another address in the config, then run `summoner bootstrap` again",
					"%s is taken by another program: %v", describePort(p), err)
			}
		}
	}
	if s.systemd() {
		err = s.applySystemd(ctx, say, running && changed)
	} else {
		err = s.applyBackground(ctx, say, running && changed)
	}
	if err != nil {
		return err
	}
	return s.waitHealthy(ctx, say)
}

func describePort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return "port " + port + " (" + addr + ")"
}

// portFree tries to listen on addr.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Err != nil {
			return op.Err
		}
		return err
	}
	return ln.Close()
}

// UnitText is the unit file systemd gets.
func (s *Service) UnitText() string {
	var b strings.Builder
	fmt.Fprintf(&b, `[Unit]
Description=Summoner %s
After=network-online.target docker.service
Wants=network-online.target

[Service]
`, s.StepName)
	if sb := s.Sandbox; sb != nil {
		fmt.Fprintf(&b, "ExecStart=%s %s\n", s.Binary, strings.Join(sb.Args, " "))
		fmt.Fprintf(&b, "# Its settings (no secret), opened by systemd as root: the user cannot read the file.\n")
		fmt.Fprintf(&b, "StandardInput=file:%s\nStandardOutput=journal\nStandardError=journal\n", sb.SettingsFile)
		fmt.Fprintf(&b, "User=%s\n", sb.User)
		if sb.BindPorts {
			b.WriteString("# It binds ports 80 and 443 itself: that right, and no other.\n")
			b.WriteString("AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\n")
		} else {
			b.WriteString("CapabilityBoundingSet=\n")
		}
		fmt.Fprintf(&b, "NoNewPrivileges=yes\nProtectSystem=strict\nProtectHome=yes\nPrivateTmp=yes\nPrivateDevices=yes\nUMask=0077\nReadWritePaths=%s\n", sb.Dir)
	} else {
		fmt.Fprintf(&b, "ExecStart=%s %s\n", s.Binary, strings.Join(s.Args, " "))
		b.WriteString("# Secrets are in the config file (mode 0600), never on this command line.\n")
	}
	b.WriteString(`Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
`)
	return b.String()
}

func (s *Service) applySystemd(ctx context.Context, say func(string, ...any), restart bool) error {
	unit := s.UnitText()
	if sb := s.Sandbox; sb != nil {
		if err := sb.Prepare(ctx); err != nil {
			return Failf("read the line above, then run `summoner bootstrap` again", "preparing the user %s: %v", sb.User, err)
		}
		settings, err := sb.Settings()
		if err != nil {
			return Failf("check the config file", "the settings of %s: %v", s.Unit, err)
		}
		if old, _ := os.ReadFile(sb.SettingsFile); !bytes.Equal(old, settings) {
			if err := atomicfile.Write(sb.SettingsFile, settings, 0o600); err != nil {
				return Failf("run as root", "cannot write %s: %v", sb.SettingsFile, err)
			}
			say("wrote %s", sb.SettingsFile)
			restart = true
		}
	}
	old, _ := os.ReadFile(s.unitFile())
	if string(old) != unit {
		if err := atomicfile.Write(s.unitFile(), []byte(unit), 0o644); err != nil {
			return Failf("check that /etc/systemd/system is writable (run as root)", "cannot write %s: %v", s.unitFile(), err)
		}
		say("wrote %s", s.unitFile())
		restart = true
	}
	steps := [][]string{{"daemon-reload"}, {"enable", "--now", s.Unit}}
	if restart {
		steps = append(steps, []string{"restart", s.Unit})
	}
	for _, args := range steps {
		if out, err := s.sys().Run(ctx, nil, "systemctl", args...); err != nil {
			return Failf("see `journalctl -u "+s.Unit+"`", "systemctl %s failed: %v: %s", strings.Join(args, " "), err, lastLines(out, 3))
		}
	}
	say("started the systemd unit %s (it starts again at boot)", s.Unit)
	return nil
}

func (s *Service) applyBackground(ctx context.Context, say func(string, ...any), restart bool) error {
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return Failf("check the state folder", "cannot create %s: %v", s.StateDir, err)
	}
	if pid := s.livePID(); pid > 0 {
		if !restart {
			say("%s runs (pid %d) but does not answer yet", s.Unit, pid)
			return nil
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		waitGone(ctx, pid, 20*time.Second)
	}
	// Its own session, no inherited files (a caller's lock): it outlives
	// this command and our terminal, as the docker step's dockerd does.
	pid, exited, err := s.sys().Background(s.Binary, s.Args, s.logFile())
	if err != nil {
		return Failf("check "+s.Binary, "cannot start %s: %v", s.Binary, err)
	}
	s.exited = exited
	if err := atomicfile.Write(s.pidFile(), []byte(strconv.Itoa(pid)+"\n"), 0o600); err != nil {
		return Failf("check the state folder", "cannot write %s: %v", s.pidFile(), err)
	}
	say("started `summoner %s` in the background (pid %d, log %s)", s.Args[len(s.Args)-1], pid, s.logFile())
	say("no systemd here: it runs until the next reboot; start `%s %s` from your init system to keep it running", s.Binary, strings.Join(s.Args, " "))
	return nil
}

func (s *Service) waitHealthy(ctx context.Context, say func(string, ...any)) error {
	deadline := time.Now().Add(s.Wait)
	for {
		ok, what := s.Healthy(ctx)
		if ok {
			say("%s", what)
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return Failf("read "+s.logFile()+" (or `journalctl -u "+s.Unit+"`)", "%s did not answer within %s: %s", s.Unit, s.Wait, what)
		}
		select {
		case <-ctx.Done():
		case <-s.exited: //nolint:errcheck // nil (never ready) unless we started it in the background; the log's last lines say more than an exit status
			return Failf("read "+s.logFile(), "%s stopped right after starting: %s", s.Unit, lastLines(readTail(s.logFile()), 2))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// livePID is the background process's pid if it still runs.
func (s *Service) livePID() int {
	data, err := os.ReadFile(s.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 || syscall.Kill(pid, 0) != nil {
		return 0
	}
	// A reused pid is not ours: it must run our binary.
	if exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe"); err != nil || !sameFile(exe, s.Binary) {
		return 0
	}
	return pid
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(strings.TrimSuffix(a, " (deleted)"))
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func waitGone(ctx context.Context, pid int, d time.Duration) {
	deadline := time.Now().Add(d)
	for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the background process or the unit and removes what this
// step installed (uninstall); the binary and data stay.
func (s *Service) Stop(ctx context.Context, say func(string, ...any)) error {
	if s.systemd() {
		_, _ = s.sys().Run(ctx, nil, "systemctl", "disable", "--now", s.Unit)
		if err := os.Remove(s.unitFile()); err == nil {
			say("removed %s", s.unitFile())
		}
		if s.Sandbox != nil {
			if err := os.Remove(s.Sandbox.SettingsFile); err == nil {
				say("removed %s", s.Sandbox.SettingsFile)
			}
		}
		_, _ = s.sys().Run(ctx, nil, "systemctl", "daemon-reload")
		return nil
	}
	if pid := s.livePID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		waitGone(ctx, pid, 30*time.Second)
		say("stopped %s (pid %d)", s.Unit, pid)
	}
	_ = os.Remove(s.pidFile())
	return nil
}

// binaryCurrent says whether Binary holds the running binary's bytes.
func (s *Service) binaryCurrent() (bool, error) {
	self, err := os.Executable()
	if err != nil {
		return false, err
	}
	if sameFile(self, s.Binary) {
		return true, nil
	}
	a, err := fileSum(self)
	if err != nil {
		return false, err
	}
	b, err := fileSum(s.Binary)
	if err != nil {
		return false, nil
	}
	return bytes.Equal(a, b), nil
}

func fileSum(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// installBinary copies the running binary to Binary unless it is there.
func (s *Service) installBinary() (bool, error) {
	if same, err := s.binaryCurrent(); err != nil {
		return false, Failf("run the summoner binary itself, not through a wrapper", "cannot read my own binary: %v", err)
	} else if same {
		return false, nil
	}
	self, _ := os.Executable()
	data, err := os.ReadFile(self)
	if err != nil {
		return false, Failf("check that the binary is readable", "cannot read %s: %v", self, err)
	}
	if err := os.MkdirAll(filepath.Dir(s.Binary), 0o755); err != nil {
		return false, Failf("run bootstrap as root", "cannot create %s: %v", filepath.Dir(s.Binary), err)
	}
	// A new file renamed over the old one: a running process keeps its
	// own copy, and no one sees a half-written binary.
	if err := atomicfile.Write(s.Binary, data, 0o755); err != nil {
		return false, Failf("run bootstrap as root", "cannot install %s: %v", s.Binary, err)
	}
	return true, nil
}

func readTail(path string) []byte {
	data, _ := os.ReadFile(path)
	if len(data) > 4096 {
		data = data[len(data)-4096:]
	}
	return data
}

// lastLines is the last n non-empty lines of out, joined on one line.
func lastLines(out []byte, n int) string {
	if lines := tail(out, n); len(lines) > 0 {
		return strings.Join(lines, " / ")
	}
	return "(no output)"
}
