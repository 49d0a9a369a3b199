package bootstrap

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A port another program holds fails the step at once with one clear
// line naming it, before anything starts.
func TestServiceRefusesATakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	no := false
	var ran []string
	s := &Service{StepName: "gateway", Unit: "summoner-gateway", Args: []string{"gateway"}, Binary: filepath.Join(t.TempDir(), "summoner"),
		StateDir: t.TempDir(), Ports: func() []string { return []string{ln.Addr().String()} }, Systemd: &no, Wait: time.Second,
		Healthy: func(context.Context) (bool, string) { return false, "no answer" },
		Sys:     runOnly(func(name string, args []string) { ran = append(ran, name) })}
	err = s.Apply(context.Background(), func(string, ...any) {})
	var se *StepError
	if !errors.As(err, &se) || !strings.Contains(se.Why, "port") || !strings.Contains(se.Why, "is taken by another program") || se.Next == "" {
		t.Fatalf("err = %#v, want a StepError naming the port", err)
	}
	if len(ran) != 0 || s.livePID() != 0 {
		t.Errorf("something was started: %v", ran)
	}
}

// With systemd, the step installs the binary, writes the unit (no secret
// on its command line) and enables it; a second Apply with nothing changed
// does not restart it.
func TestServiceWithSystemd(t *testing.T) {
	yes := true
	dir := t.TempDir()
	var calls []string
	healthy := false
	s := &Service{StepName: "bot", Unit: "summoner", Args: []string{"--config", "/etc/summoner/config.yml", "run"},
		Binary: filepath.Join(dir, "bin", "summoner"), StateDir: dir, UnitDir: dir, Systemd: &yes, Wait: time.Second,
		Healthy: func(context.Context) (bool, string) { return healthy, "the bot answers" },
		Sys: runOnly(func(name string, args []string) {
			calls = append(calls, name+" "+strings.Join(args, " "))
			if len(args) > 0 && args[0] == "enable" {
				healthy = true
			}
		})}
	ctx := context.Background()
	if done, _, _ := s.Done(ctx); done {
		t.Fatal("done before anything was installed")
	}
	if err := s.Apply(ctx, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	unit, err := os.ReadFile(filepath.Join(dir, "summoner.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart="+s.Binary+" --config /etc/summoner/config.yml run") || !strings.Contains(string(unit), "Restart=always") {
		t.Fatalf("unit: %s %v", unit, err)
	}
	if got := strings.Join(calls, "; "); got != "systemctl daemon-reload; systemctl enable --now summoner; systemctl restart summoner" {
		t.Errorf("systemctl calls: %s", got)
	}
	if done, what, _ := s.Done(ctx); !done || what != "the bot answers" {
		t.Errorf("Done after Apply = %v %q", done, what)
	}
	calls = nil
	if err := s.Apply(ctx, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(calls, ";"), "restart") {
		t.Errorf("an unchanged service was restarted: %v", calls)
	}
}

// runOnly is a System that records what it is asked to run; it starts
// nothing.
type runOnly func(name string, args []string)

func (runOnly) LookPath(file string) (string, error) { return file, nil }
func (f runOnly) Run(_ context.Context, _ []string, name string, args ...string) ([]byte, error) {
	f(name, args)
	return nil, nil
}
func (f runOnly) Background(name string, args []string, _ string) (int, <-chan error, error) {
	f(name, args)
	return 0, nil, errors.New("runOnly starts nothing")
}
func (runOnly) ProcessName(int) string { return "" }

// A sandboxed service: its user and folder are prepared, its settings
// written 0600 for systemd to hand over, and changed settings restart it.
func TestServiceSandboxWithSystemd(t *testing.T) {
	yes := true
	dir := t.TempDir()
	var calls []string
	prepared := 0
	settings := "{\"dir\":\"/var/lib/summoner-gateway\"}\n"
	s := &Service{StepName: "gateway", Unit: "summoner-gateway", Args: []string{"--config", "/etc/summoner/config.yml", "gateway"},
		Binary: filepath.Join(dir, "bin", "summoner"), StateDir: dir, UnitDir: dir, Systemd: &yes, Wait: time.Second,
		Healthy: func(context.Context) (bool, string) { return len(calls) > 0, "the gateway answers" },
		Sys:     runOnly(func(name string, args []string) { calls = append(calls, name+" "+strings.Join(args, " ")) }),
		Sandbox: &Sandbox{User: "summoner-gateway", Dir: "/var/lib/summoner-gateway", Args: []string{"gateway", "--settings", "-"},
			SettingsFile: filepath.Join(dir, "gateway.json"), BindPorts: true,
			Settings: func() ([]byte, error) { return []byte(settings), nil },
			Prepare:  func(context.Context) error { prepared++; return nil }},
	}
	ctx := context.Background()
	if plan := s.Plan(ctx); !strings.Contains(plan, "`summoner gateway --settings -` as the systemd unit summoner-gateway (user summoner-gateway)") {
		t.Errorf("plan: %s", plan)
	}
	if err := s.Apply(ctx, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Sandbox.SettingsFile)
	if err != nil || fi.Mode().Perm() != 0o600 || prepared != 1 {
		t.Fatalf("settings file %v %v, prepared %d times", fi, err, prepared)
	}
	unit, _ := os.ReadFile(filepath.Join(dir, "summoner-gateway.service"))
	if !strings.Contains(string(unit), "ExecStart="+s.Binary+" gateway --settings -\n") || strings.Contains(string(unit), "--config") {
		t.Errorf("unit:\n%s", unit)
	}
	calls = calls[:1] // healthy: an unchanged service is left alone
	if err := s.Apply(ctx, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.Join(calls, ";"), "restart") {
		t.Errorf("unchanged settings restarted it: %v", calls)
	}
	settings = "{\"dir\":\"/srv/gateway\"}\n"
	if err := s.Apply(ctx, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(calls, ";"), "restart summoner-gateway") {
		t.Errorf("changed settings did not restart it: %v", calls)
	}
	if err := s.Stop(ctx, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Sandbox.SettingsFile); !os.IsNotExist(err) {
		t.Errorf("the settings file stays after Stop: %v", err)
	}
}
