package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/bootstrap"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/internal/golden"
	"github.com/summoner-bot/summoner/internal/itgate"
	"github.com/summoner-bot/summoner/internal/privsep"
)

// The gateway's systemd unit, as bootstrap writes it, pinned: its own
// user, the one capability to bind 80 and 443, no new privileges, a
// read-only system but for its folder, a private /tmp, and its settings on
// standard input from a file only root reads.
func TestGatewayUnitGolden(t *testing.T) {
	cfg := config.Defaults()
	cfg.Gateway.Dir = "/var/lib/summoner-gateway"
	m := newMission(bootstrapOptions{cfg: cfg, domain: "example.com", configPath: "/etc/summoner/config.yml", stateDir: "/var/lib/summoner"})
	var unit string
	for _, s := range m.steps() {
		if svc, ok := s.(*bootstrap.Service); ok && s.Name() == "gateway" {
			unit = svc.UnitText()
		}
	}
	if unit == "" {
		t.Fatal("no gateway step")
	}
	golden.Assert(t, "summoner-gateway.service", []byte(unit))
	for _, line := range []string{"User=summoner-gateway", "AmbientCapabilities=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "PrivateTmp=yes", "ReadWritePaths=/var/lib/summoner-gateway", "StandardInput=file:/etc/summoner/gateway.json"} {
		if !slices.Contains(strings.Split(unit, "\n"), line) {
			t.Errorf("the unit has no line %q", line)
		}
	}
}

// The gateway's settings carry nothing of the configuration's secrets,
// and its environment nothing but the allow-list.
func TestGatewaySettingsHoldNoSecret(t *testing.T) {
	cfg := config.Defaults()
	cfg.Chat.Token = "chat-token-that-must-stay-home"
	cfg.Chat.SlashToken = "slash-token-that-must-stay-home"
	cfg.Notifications.Sources = []config.HookSource{{Name: "ci", Kind: "github", Secret: "hook-secret-that-must-stay-home"}}
	root := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.ACMECARoot = root
	s, err := newGatewaySettings(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s)
	for _, secret := range []string{"chat-token", "slash-token", "hook-secret"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the gateway's settings hold %s: %s", secret, b)
		}
	}
	if !strings.Contains(s.ACMECARoot, "BEGIN CERTIFICATE") || s.AdminSocket != filepath.Join(cfg.Gateway.Dir, "gateway.sock") {
		t.Errorf("settings: %+v", s)
	}

	env := map[string]string{"TZ": "Europe/Paris", "SUMMONER_CHAT_TOKEN": "x", "HOME": "/root", "PATH": "/root/bin:/usr/bin", "SSL_CERT_DIR": "/etc/ssl/certs"}
	got := privsep.Env(func(k string) (string, bool) { v, ok := env[k]; return v, ok }, gatewayEnvKeep...)
	want := []string{"PATH=" + privsep.Path, "TZ=Europe/Paris", "SSL_CERT_DIR=/etc/ssl/certs"}
	if !slices.Equal(got, want) {
		t.Errorf("environment %q, want %q", got, want)
	}
}

// openDir makes a folder every user may enter, outside the root-only test
// tree, removed at the end.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "summoner-gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Started by someone who is not root, `summoner gateway` runs the gateway
// as that same user, and the log says that the separation is off and why.
func TestGatewayNotRootSaysSeparationIsOff(t *testing.T) {
	itgate.NeedRoot(t, "to run the binary as another user")
	dir := openDir(t)
	bin := filepath.Join(dir, "summoner")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody = 65534
	cfgFile := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgFile, []byte("gateway:\n  http_listen: "+freePort(t)+"\n  https_listen: "+freePort(t)+"\n  dir: "+filepath.Join(dir, "gw")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfgFile, "gateway")
	cmd.Env = []string{"PATH=" + privsep.Path, "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	done := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("the gateway did not stop on SIGTERM")
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "gateway listening") {
		select {
		case <-done:
			t.Fatalf("summoner gateway ended: %v\n%s", waitErr, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway does not listen after 30 s:\n%s", out)
		}
	}
	log := out.String()
	if !strings.Contains(log, "privilege separation is off: summoner does not run as root") {
		t.Errorf("the log does not say the separation is off and why:\n%s", log)
	}
	child := childPID(t, cmd.Process.Pid)
	if uid := statusIDs(t, child, "Uid"); uid[0] != strconv.Itoa(nobody) {
		t.Errorf("the gateway runs as uid %v, want the same user (%d)", uid, nobody)
	}
}

// childPID is the one child process of pid that serves the gateway.
func childPID(t *testing.T, parent int) int {
	t.Helper()
	var pid int
	waitFor(t, "the gateway process", 30*time.Second, func() bool {
		pid = gatewayChildOf(parent)
		return pid != 0
	})
	return pid
}

// gatewayChildOf finds a child of parent running `summoner gateway`.
func gatewayChildOf(parent int) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		stat, err := os.ReadFile(dir + "/stat")
		if err != nil {
			continue
		}
		// The parent's pid is the fourth field, after "(comm)".
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(parent) {
			continue
		}
		cmdline, _ := os.ReadFile(dir + "/cmdline")
		if bytes.Contains(cmdline, []byte("\x00gateway\x00")) {
			pid, _ := strconv.Atoi(filepath.Base(dir))
			return pid
		}
	}
	return 0
}

// statusIDs reads a line of /proc/<pid>/status (Uid, Gid, Groups, CapEff).
func statusIDs(t *testing.T, pid int, field string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return nil
}
