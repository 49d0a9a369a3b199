package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/acmetest"
	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

// fullBootstrap is a bootstrap run's machine: everything under one
// folder, the gateway on Pebble's challenge ports, the images from the
// local registry.
type fullBootstrap struct {
	dir, config, state, chatPort, botPort string
	open                                  string // the binary and the gateway's folder: the gateway's user reaches them
	env                                   []string
	a                                     *acmetest.Env
}

func newFullBootstrap(t *testing.T, a *acmetest.Env, httpsListen string) *fullBootstrap {
	t.Helper()
	dir := t.TempDir()
	_, chatPort, _ := strings.Cut(freePort(t), ":")
	b := &fullBootstrap{dir: dir, config: filepath.Join(dir, "etc", "config.yml"), state: filepath.Join(dir, "state"),
		chatPort: chatPort, a: a, open: openDir(t)}
	_, b.botPort, _ = strings.Cut(freePort(t), ":")
	if httpsListen == "" {
		httpsListen = "127.0.0.1:" + strconv.Itoa(a.TLSPort)
	}
	b.env = []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"SUMMONER_VSROOT=" + filepath.Join(dir, "volumes"), "SUMMONER_DBSROOT=" + filepath.Join(dir, "databases"),
		"SUMMONER_DOCKER_STATE_DIR=" + filepath.Join(dir, "minions"), "SUMMONER_CHAT_STATE_FILE=" + filepath.Join(dir, "chat", "chat-state.json"),
		"SUMMONER_GATEWAY_HTTP_LISTEN=127.0.0.1:" + strconv.Itoa(a.HTTPPort), "SUMMONER_GATEWAY_HTTPS_LISTEN=" + httpsListen,
		"SUMMONER_GATEWAY_DIR=" + filepath.Join(b.open, "gateway"),
		"SUMMONER_GATEWAY_ACME_CA=" + a.Directory, "SUMMONER_GATEWAY_ACME_CA_ROOT=" + a.CARootFile,
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		b.env = append(b.env, "DOCKER_HOST="+h)
	}
	t.Cleanup(func() { b.stopServices(t) })
	return b
}

func (b *fullBootstrap) args(extra ...string) []string {
	return append([]string{"--config", b.config, "bootstrap", "--domain", "example.test", "--registry-mirror", os.Getenv("SUMMONER_IT_REGISTRY"),
		"--state-dir", b.state, "--bin", filepath.Join(b.open, "bin", "summoner"), "--chat-port", b.chatPort,
		"--daemon-json", filepath.Join(b.dir, "daemon.json"), "--docker-packages", "none", "--bot-port", b.botPort}, extra...)
}

// run runs bootstrap to its end; stop, when set, is called on each output
// line and may interrupt the run (SIGINT) by returning true.
func (b *fullBootstrap) run(t *testing.T, stop func(line string) bool, extra ...string) (out string, code int, took time.Duration) {
	t.Helper()
	cmd := exec.Command(binary, b.args(extra...)...)
	cmd.Env = b.env
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	var buf bytes.Buffer
	var wg sync.WaitGroup
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		interrupted := false
		for sc.Scan() {
			buf.WriteString(sc.Text() + "\n")
			if stop != nil && !interrupted && stop(sc.Text()) {
				interrupted = true
				_ = cmd.Process.Signal(syscall.SIGINT)
			}
		}
	}()
	err := cmd.Wait()
	took = time.Since(start)
	pw.Close()
	wg.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return buf.String(), code, took
}

// stopServices stops what bootstrap started in the background.
func (b *fullBootstrap) stopServices(t *testing.T) {
	for _, unit := range []string{"summoner", "summoner-gateway"} {
		data, err := os.ReadFile(filepath.Join(b.state, unit+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
			_ = syscall.Kill(pid, syscall.SIGTERM)
			for i := 0; i < 300 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
}

func (b *fullBootstrap) accounts(t *testing.T) (admin, password string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(b.state, "accounts.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		AdminUsername string `json:"admin_username"`
		AdminPassword string `json:"admin_password"`
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	return st.AdminUsername, st.AdminPassword
}

// TestBootstrap: from "Docker running, images in the mirror, no
// Mattermost" to Mattermost over HTTPS and a bot that answers; a dry run
// first changes nothing; a run interrupted after the Mattermost step is
// finished by the next; a last run changes nothing and says so for every
// step.
func TestBootstrap(t *testing.T) {
	d := dockertest.Require(t)
	a := acmetest.Require(t)
	d.RemoveMinion(t, "mattermost")
	t.Cleanup(func() { d.RemoveMinion(t, "mattermost") })
	b := newFullBootstrap(t, a, "")

	// --dry-run on a fresh state changes nothing.
	out, code, _ := b.run(t, nil, "--dry-run")
	if code != 0 || !strings.Contains(out, "accounts") || !strings.Contains(out, "would") {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	for _, p := range []string{b.config, b.state, filepath.Join(b.open, "bin")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("the dry run created %s", p)
		}
	}
	if n := len(d.Containers(t, "mattermost")); n != 0 {
		t.Fatalf("the dry run made %d containers", n)
	}

	// A run interrupted once Mattermost is up...
	interrupt := os.Getenv("SUMMONER_BENCH_BOOTSTRAP") == ""
	mmDone := false
	out1, code, took1 := b.run(t, func(line string) bool {
		if strings.Contains(line, "] mattermost:") && (strings.Contains(line, "done") || strings.Contains(line, "✓")) {
			mmDone = true
		}
		return interrupt && mmDone && strings.Contains(line, "] accounts")
	})
	t.Logf("first run: exit %d in %v\n%s", code, took1.Round(100*time.Millisecond), out1)
	if interrupt && (code == 0 || !mmDone) {
		t.Fatalf("the first run was not interrupted after the Mattermost step (exit %d)", code)
	}
	// ...is finished by the next one.
	out2, code, took2 := b.run(t, nil)
	t.Logf("second run: exit %d in %v\n%s", code, took2.Round(100*time.Millisecond), out2)
	if code != 0 {
		t.Fatalf("the second run failed")
	}
	t.Logf("bootstrap from Docker running to bot answering: %v", (took1 + took2).Round(100*time.Millisecond))

	// Mattermost answers over HTTPS at chat.example.test.
	c := resolvingClient(t, a)
	code, body, _, err := fetch(c, "https://chat.example.test:"+strconv.Itoa(a.TLSPort)+"/api/v4/system/ping")
	if err != nil || code != 200 || !strings.Contains(body, `"status":"OK"`) {
		t.Fatalf("Mattermost over HTTPS: %d %q %v", code, body, err)
	}
	// The config file holds the token, mode 0600.
	if st, err := os.Stat(b.config); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v %v", st, err)
	}
	// The bot is online: a member's `@summoner status` in the ops channel
	// is answered, and so is `/summon ping` through the slash command.
	e := &mmtest.Env{URL: "http://127.0.0.1:" + b.chatPort}
	adminName, adminPass := b.accounts(t)
	admin := model.NewAPIv4Client(e.URL)
	if _, _, err := admin.Login(adminName, adminPass); err != nil {
		t.Fatalf("admin login: %v", err)
	}
	team, _, err := admin.GetTeamByName("team", "")
	if err != nil {
		t.Fatal(err)
	}
	ops, _, err := admin.GetChannelByName("ops", team.Id, "")
	if err != nil {
		t.Fatal(err)
	}
	member, _, err := admin.CreateUser(&model.User{Username: "member1", Email: "member1@example.test", Password: "Member-pass-1"})
	if err != nil {
		t.Fatalf("creating a member: %v", err)
	}
	if _, _, err := admin.AddTeamMember(team.Id, member.Id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.AddChannelMember(ops.Id, member.Id); err != nil {
		t.Fatal(err)
	}
	mc := model.NewAPIv4Client(e.URL)
	if _, _, err := mc.Login("member1", "Member-pass-1"); err != nil {
		t.Fatal(err)
	}
	p := mmtest.Post(t, mc, ops.Id, "", "@summoner status")
	if r := mmtest.WaitReply(t, mc, p, time.Minute); !strings.Contains(r.Message, "mattermost") {
		t.Errorf("status reply: %q", r.Message)
	}
	resp, _, err := mc.ExecuteCommand(ops.Id, "/summon ping")
	if err != nil || resp == nil || !strings.Contains(strings.ToLower(resp.Text), "pong") {
		t.Fatalf("/summon ping: %+v %v", resp, err)
	}

	// Once more: nothing changes, and every step says so.
	out3, code, took3 := b.run(t, nil)
	t.Logf("no-op run: exit %d in %v\n%s", code, took3.Round(10*time.Millisecond), out3)
	if code != 0 {
		t.Fatal("the no-op run failed")
	}
	for _, line := range strings.Split(strings.TrimSpace(out3), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "[") && !strings.Contains(line, "already done") {
			t.Errorf("a step of the no-op run did something: %s", line)
		}
	}
	users, _, err := admin.GetUsers(0, 200, "")
	if err != nil {
		t.Fatal(err)
	}
	admins, bots := 0, 0
	for _, u := range users {
		if strings.Contains(u.Roles, "system_admin") {
			admins++
		}
		if u.IsBot {
			bots++
		}
	}
	if admins != 1 || bots != 1 {
		t.Errorf("%d admins and %d bots after three runs, want one each", admins, bots)
	}

	// --uninstall removes what bootstrap made, except data.
	var pids []int
	for _, unit := range []string{"summoner", "summoner-gateway"} {
		data, err := os.ReadFile(filepath.Join(b.state, unit+".pid"))
		if err != nil {
			t.Fatalf("no pid file for %s: %v", unit, err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		pids = append(pids, pid)
	}
	out4, code, _ := b.run(t, nil, "--uninstall", "--yes")
	if code != 0 {
		t.Fatalf("uninstall: exit %d\n%s", code, out4)
	}
	if n := len(d.Containers(t, "mattermost")); n != 0 {
		t.Errorf("%d Mattermost containers after uninstall", n)
	}
	if _, err := os.Stat(b.config); err == nil {
		t.Error("the config file is still there")
	}
	if _, err := os.Stat(filepath.Join(b.dir, "databases", "mattermost")); err != nil {
		t.Errorf("Mattermost's database folder is gone: %v", err)
	}
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d (the bot or the gateway) still runs after uninstall", pid)
		}
	}
}
