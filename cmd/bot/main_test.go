package main

import (
	"bytes"
	"context"
	"encoding/json"
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

	"github.com/summoner-bot/summoner/internal/itgate"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

var binary string

func TestMain(m *testing.M) {
	if os.Getenv("SUMMONER_TRY_OPEN") != "" {
		os.Exit(m.Run()) // TestHelperTryOpen, as another user: no build
	}
	dir, err := os.MkdirTemp("", "summoner-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Open to every user: the gateway's own user runs it too.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "summoner")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building summoner: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// summoner runs the binary with only the given environment (plus PATH and
// HOME) and returns its output and exit code.
func summoner(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running summoner: %v", err)
	}
	return o.String(), e.String(), 0
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const secretToken = "s3cr3t-t0ken-that-must-never-print"

func TestConfigProblemsExitTwoWithOneLine(t *testing.T) {
	mmURL := "http://127.0.0.1:1" // the token checks below need a real server
	if os.Getenv("SUMMONER_IT_MM_URL") != "" || itgate.On() {
		mmURL = mmtest.FromEnv(t).URL
	}
	tests := []struct {
		name      string
		config    string // "" for none
		env       []string
		want      string
		needsMM   bool
		otherLine bool
	}{
		{
			name:   "unknown key",
			config: "chat:\n  url: https://chat.example.com\n  token: " + secretToken + "\n  tokn: x\n",
			want:   "config.yml:4: chat.tokn: unknown key (did you mean token?)",
		},
		{
			name:   "bad url",
			config: "chat:\n  url: chat.example.com\n  token: " + secretToken + "\n",
			want:   "config.yml:2: chat.url: should start with https://",
		},
		{
			name: "missing token",
			env:  []string{"SUMMONER_CHAT_URL=https://chat.example.com"},
			want: "chat.token: missing; set it in the config file, SUMMONER_CHAT_TOKEN or SUMMONER_CHAT_TOKEN_FILE",
		},
		{
			name:    "wrong token",
			env:     []string{"SUMMONER_CHAT_URL=" + mmURL, "SUMMONER_CHAT_TOKEN=" + secretToken},
			want:    "chat.token: the Mattermost server at " + mmURL + " rejected the token",
			needsMM: true,
		},
		{
			name:   "config readable by others",
			config: "chat:\n  url: https://chat.example.com\n  token: " + secretToken + "\n",
			want:   "is readable by other users; run: chmod 600 ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.needsMM && strings.HasSuffix(mmURL, ":1") {
				itgate.Skip(t, "no Mattermost server (SUMMONER_IT_MM_URL) to check the token against")
			}
			args := []string{"run"}
			if tt.config != "" {
				p := writeConfig(t, tt.config)
				if tt.name == "config readable by others" {
					if err := os.Chmod(p, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				args = []string{"--config", p, "run"}
			}
			env := append([]string{"SUMMONER_CHAT_STATE_FILE=" + filepath.Join(t.TempDir(), "state.json"), "SUMMONER_HTTP_LISTEN="}, tt.env...)
			stdout, stderr, code := summoner(t, env, "", args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr:\n%s\nwant one line containing %q", stderr, tt.want)
			}
			if strings.Contains(stdout+stderr, secretToken) {
				t.Errorf("the token appears in the output:\n%s%s", stdout, stderr)
			}
		})
	}
}

func TestShellAnswersHelpFromStdin(t *testing.T) {
	stdout, stderr, code := summoner(t, nil, "help\nhlep\n", "shell")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"Commands (type `help <command>` for details):", "`ping`: check that I am listening", "Did you mean `help`?"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
}

func TestOneShotCommands(t *testing.T) {
	tests := []struct {
		args []string
		out  string
		code int
	}{
		{[]string{"ping"}, "pong", 0},
		{[]string{"whoami"}, "admin rights", 0},
		{[]string{"version"}, "Summoner ", 0},
		{[]string{"help", "ping"}, "`ping`: check that I am listening", 0},
		{[]string{"frobnicate"}, "I don't know `frobnicate`", 2},
		{[]string{"--help"}, "summoner [--config FILE] run", 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := summoner(t, nil, "", tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %d and %q", code, stdout, stderr, tt.code, tt.out)
			}
		})
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// daemon is a running `summoner run`.
type daemon struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

func startDaemon(t *testing.T, env []string) *daemon {
	t.Helper()
	cmd := exec.Command(binary, "run")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	d := &daemon{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = d.stderr, d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("summoner run exited with %v after SIGTERM\n%s", err, d.stderr)
		}
	case <-time.After(40 * time.Second):
		_ = d.cmd.Process.Kill()
		t.Errorf("summoner run did not stop within 40 s of SIGTERM\n%s", d.stderr)
	}
}

// lockedBuffer collects the daemon's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func healthz(addr string) (int, map[string]any) {
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func waitHealthy(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := healthz(addr)
		if code == http.StatusOK && body["chat"] == "connected" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz never reported connected (last %d %v)", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDaemonAnswersOnceAcrossRestarts(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	member := e.Client(t, e.Member)
	addr := freePort(t)
	env := []string{
		"SUMMONER_CHAT_URL=" + e.URL, "SUMMONER_CHAT_TOKEN=" + e.BotToken, "SUMMONER_CHAT_TEAM=" + e.Team,
		"SUMMONER_CHAT_OPS_CHANNEL=" + e.OpsChannel, "SUMMONER_HTTP_LISTEN=" + addr,
		"SUMMONER_CHAT_STATE_FILE=" + filepath.Join(t.TempDir(), "state.json"),
		"SUMMONER_PERMISSIONS_OPERATORS=" + e.Operator.Username,
	}
	started := time.Now()
	d := startDaemon(t, env)
	waitHealthy(t, addr)

	ping := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" ping")
	if r := mmtest.WaitReply(t, member, ping, 30*time.Second); r.Message != "pong" {
		t.Fatalf("reply %q", r.Message)
	}
	op := e.Client(t, e.Operator)
	who := mmtest.Post(t, op, ch.Id, "", "@"+e.BotUsername+" whoami")
	if r := mmtest.WaitReply(t, op, who, 30*time.Second); !strings.Contains(r.Message, "operator rights") {
		t.Fatalf("operator's whoami: %q", r.Message)
	}

	d.stop(t)
	if code, _ := healthz(addr); code != 0 {
		t.Fatalf("/healthz still answers %d after the bot stopped", code)
	}
	missed := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" whoami")

	for i := range 2 {
		d = startDaemon(t, env)
		r := mmtest.WaitReply(t, member, missed, 30*time.Second)
		if !strings.Contains(r.Message, "You are @"+e.Member.Username) {
			t.Fatalf("start %d: reply %q", i+2, r.Message)
		}
		sync := mmtest.Post(t, member, ch.Id, "", "@"+e.BotUsername+" ping")
		mmtest.WaitReply(t, member, sync, 30*time.Second)
		d.stop(t)
		if strings.Contains(d.stderr.String(), e.BotToken) {
			t.Fatalf("the token appears in the log")
		}
	}
	if rs := mmtest.Replies(t, member, missed); len(rs) != 1 {
		t.Fatalf("the command posted while the bot was stopped got %d replies, want exactly 1", len(rs))
	}
	if rs := mmtest.Replies(t, member, ping); len(rs) != 1 {
		t.Fatalf("the first command got %d replies after restarts, want 1", len(rs))
	}

	// Each start announced itself in the ops channel.
	opsCh, _, err := member.GetChannelByNameForTeamName(e.OpsChannel, e.Team, "")
	if err != nil {
		t.Fatal(err)
	}
	list, _, err := member.GetPostsSince(opsCh.Id, started.UnixMilli(), false)
	if err != nil {
		t.Fatal(err)
	}
	ups := 0
	for _, p := range list.Posts {
		if strings.HasPrefix(p.Message, "Summoner ") && strings.HasSuffix(p.Message, " is up.") && p.CreateAt >= started.UnixMilli() {
			ups++
		}
	}
	if ups < 3 {
		t.Fatalf("%d start-up notices in ~%s, want 3", ups, e.OpsChannel)
	}
}

func TestUnwritableStateFileIsAConfigProblem(t *testing.T) {
	blocker := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := summoner(t, []string{
		"SUMMONER_CHAT_URL=http://127.0.0.1:1", "SUMMONER_CHAT_TOKEN=" + secretToken,
		"SUMMONER_CHAT_STATE_FILE=" + filepath.Join(blocker, "state.json"),
	}, "", "run")
	if code != 2 || !strings.Contains(stderr, "chat.state_file: cannot create ") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// TestScheduleFromTheTerminal: the one-shot CLI lists the schedules as
// the bot keeps them and leaves changes to chat.
func TestScheduleFromTheTerminal(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, "backups:\n  destinations:\n    - name: disk\n      local: {path: "+filepath.Join(dir, "backups")+"}\n"+
		"maintenance:\n  dump: \"0 3 * * *\"\n  digest: \"off\"\n")
	env := []string{"SUMMONER_CONFIG=" + cfg, "SUMMONER_CHAT_STATE_FILE=" + filepath.Join(dir, "state", "chat.json"),
		"SUMMONER_DOCKER_STATE_DIR=" + filepath.Join(dir, "minions")}
	stdout, stderr, code := summoner(t, env, "", "schedule")
	if code != 0 || !strings.Contains(stdout, "| dump | `0 3 * * *` | in ") || !strings.Contains(stdout, "| digest | `off` |") {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	stdout, _, code = summoner(t, env, "", "schedule", "off", "dump")
	if code != 1 || !strings.Contains(stdout, "schedules are changed in chat") {
		t.Fatalf("schedule off from the terminal: exit %d: %s", code, stdout)
	}
}
