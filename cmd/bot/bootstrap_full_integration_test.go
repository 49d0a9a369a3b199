package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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

// run runs bootstrap to its end, its stdout and stderr in one.
func (b *fullBootstrap) run(t *testing.T, extra ...string) (out string, code int, took time.Duration) {
	t.Helper()
	cmd := exec.Command(binary, b.args(extra...)...)
	cmd.Env = b.env
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
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
// first changes nothing; a run that stops after the Mattermost step and
// before the accounts step leaves no public route and no account, and is
// finished by the next; strangers can neither register nor join the team;
// a last run changes nothing and says so for every step; uninstall keeps
// the config as a dated .bak.
func TestBootstrap(t *testing.T) {
	d := dockertest.Require(t)
	a := acmetest.Require(t)
	d.RemoveMinion(t, "mattermost")
	t.Cleanup(func() { d.RemoveMinion(t, "mattermost") })
	b := newFullBootstrap(t, a, "")

	// --dry-run on a fresh state changes nothing.
	out, code, _ := b.run(t, "--dry-run")
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

	// A run that stops after the Mattermost step, before the accounts
	// step (the steps up to mattermost, so the stop is exactly there: a
	// SIGINT sent on a line of output would race with the accounts step)...
	c := resolvingClient(t, a)
	chatHTTPS := "https://chat.example.test:" + strconv.Itoa(a.TLSPort)
	interrupt := os.Getenv("SUMMONER_BENCH_BOOTSTRAP") == ""
	var first []string
	if interrupt {
		first = []string{"--only", "os,docker,dirs,config,gateway,mattermost"}
	}
	out1, code, took1 := b.run(t, first...)
	t.Logf("first run: exit %d in %v\n%s", code, took1.Round(100*time.Millisecond), out1)
	if code != 0 || !strings.Contains(out1, "] mattermost: done") {
		t.Fatalf("the first run did not finish the Mattermost step (exit %d)", code)
	}
	if interrupt {
		// ...leaves no public route: a stranger's registration through
		// the gateway fails (no route: a TLS error, a 404 or a 503)...
		code, body, err := postJSON(c, chatHTTPS+"/api/v4/users", `{"email":"first@example.test","username":"first","password":"First-pass-123"}`)
		t.Logf("unclaimed Mattermost through the gateway: status %d, err %v", code, err)
		if err == nil && code != http.StatusNotFound && code != http.StatusServiceUnavailable {
			t.Fatalf("POST /api/v4/users through the gateway before the accounts step: %d %q; want a connection or TLS error, 404 or 503", code, body)
		}
		// ...and no account was made (asked on loopback).
		if none := mmNoAccounts(t, "http://127.0.0.1:"+b.chatPort); !none {
			t.Fatal("Mattermost has an account before the accounts step")
		}
	}
	// ...is finished by the next one.
	out2, code, took2 := b.run(t)
	t.Logf("second run: exit %d in %v\n%s", code, took2.Round(100*time.Millisecond), out2)
	if code != 0 {
		t.Fatalf("the second run failed")
	}
	t.Logf("bootstrap from Docker running to bot answering: %v", (took1 + took2).Round(100*time.Millisecond))

	// Mattermost answers over HTTPS at chat.example.test.
	code, body, _, err := fetch(c, chatHTTPS+"/api/v4/system/ping")
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

	// Claimed: a stranger cannot register through the gateway, and an
	// account that is not in the team (made by the admin) cannot join it.
	code, body, err = postJSON(c, chatHTTPS+"/api/v4/users", `{"email":"stranger@example.test","username":"stranger","password":"Stranger-pass-1"}`)
	if err != nil || code != http.StatusForbidden {
		t.Errorf("a stranger's registration through the gateway: %d %q %v; want 403", code, body, err)
	}
	if _, _, err := admin.GetUserByUsername("stranger", ""); err == nil {
		t.Error("the stranger's account exists")
	}
	outsider, _, err := admin.CreateUser(&model.User{Username: "outsider", Email: "outsider@example.test", Password: "Outsider-pass-1"})
	if err != nil {
		t.Fatalf("creating a non-member: %v", err)
	}
	oc := model.NewAPIv4Client(e.URL)
	if _, _, err := oc.Login("outsider", "Outsider-pass-1"); err != nil {
		t.Fatal(err)
	}
	if _, resp, err := oc.AddTeamMember(team.Id, outsider.Id); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a non-member joining team %s: %v (status %d); want 403", team.Name, err, respStatus(resp))
	}
	if _, _, err := admin.GetTeamMember(team.Id, outsider.Id, ""); err == nil {
		t.Error("the non-member is in the team")
	}
	if ops.Type != model.ChannelTypePrivate {
		t.Errorf("the ops channel is of type %q, want private", ops.Type)
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
	out3, code, took3 := b.run(t)
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

	// --uninstall removes what bootstrap made, except data, and keeps the
	// config as config.yml.<date>.bak.
	cfgBytes, err := os.ReadFile(b.config)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, unit := range []string{"summoner", "summoner-gateway"} {
		data, err := os.ReadFile(filepath.Join(b.state, unit+".pid"))
		if err != nil {
			t.Fatalf("no pid file for %s: %v", unit, err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		pids = append(pids, pid)
	}
	out4, code, _ := b.run(t, "--uninstall", "--yes")
	if code != 0 {
		t.Fatalf("uninstall: exit %d\n%s", code, out4)
	}
	if n := len(d.Containers(t, "mattermost")); n != 0 {
		t.Errorf("%d Mattermost containers after uninstall", n)
	}
	if _, err := os.Stat(b.config); err == nil {
		t.Error("the config file is still there")
	}
	baks, _ := filepath.Glob(b.config + ".*.bak")
	if len(baks) != 1 || !regexp.MustCompile(`/config\.yml\.\d{4}-\d{2}-\d{2}\.bak$`).MatchString(baks[0]) {
		t.Fatalf("backups of the config after uninstall: %v; want one config.yml.<date>.bak", baks)
	}
	if got, err := os.ReadFile(baks[0]); err != nil || !bytes.Equal(got, cfgBytes) {
		t.Errorf("%s does not hold the config's bytes (%v)", baks[0], err)
	}
	if fi, err := os.Stat(baks[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %v, %v; want 0600", baks[0], fi.Mode(), err)
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

// postJSON posts a JSON body with no credentials.
func postJSON(c *http.Client, url, body string) (int, string, error) {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), nil
}

// mmNoAccounts asks Mattermost, without logging in, whether it has no
// accounts yet.
func mmNoAccounts(t *testing.T, url string) bool {
	t.Helper()
	cfg, _, err := model.NewAPIv4Client(url).GetOldClientConfig("")
	if err != nil {
		t.Fatalf("asking Mattermost on loopback whether it has accounts: %v", err)
	}
	return cfg["NoAccounts"] == "true"
}

func respStatus(r *model.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}
