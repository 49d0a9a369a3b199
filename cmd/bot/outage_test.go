package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

// freezeDocker stops the Docker daemon's process (SIGSTOP) until the
// returned function, or the test's end, lets it go on.
func freezeDocker(t *testing.T) (thaw func()) {
	t.Helper()
	pid := processID(t, "dockerd")
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("freezing dockerd: %v", err)
	}
	thawed := false
	thaw = func() {
		if !thawed {
			thawed = true
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("thawing dockerd: %v", err)
			}
		}
	}
	t.Cleanup(thaw)
	return thaw
}

// processID finds a running program by name in /proc.
func processID(t *testing.T, name string) int {
	t.Helper()
	pids := pidsOf(name)
	if len(pids) == 0 {
		t.Fatalf("no %s process", name)
	}
	return pids[0]
}

// pidsOf lists the processes running a program of that name on this
// machine, in a container or not (their processes show in /proc too).
func pidsOf(name string) []int {
	var out []int
	comms, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, c := range comms {
		if data, err := os.ReadFile(c); err == nil && strings.TrimSpace(string(data)) == name {
			if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(c))); err == nil {
				out = append(out, pid)
			}
		}
	}
	return out
}

// TestStatusWithDockerFrozen: a frozen daemon makes status end with a clear
// timeout within its deadline, and everything works once it thaws.
func TestStatusWithDockerFrozen(t *testing.T) {
	d := dockertest.Require(t)
	env := []string{"SUMMONER_DOCKER_STATE_DIR=" + t.TempDir(), "SUMMONER_VSROOT=" + t.TempDir(), "SUMMONER_DBSROOT=" + t.TempDir()}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		env = append(env, "DOCKER_HOST="+h)
	}
	thaw := freezeDocker(t)
	start := time.Now()
	stdout, stderr, code := summoner(t, env, "", "status")
	took := time.Since(start)
	thaw()
	if code != 1 || !strings.Contains(stdout, "⏱️ `status` ran out of time: it did not finish within 20 seconds") {
		t.Fatalf("exit %d after %v\nstdout: %s\nstderr: %s", code, took, stdout, stderr)
	}
	t.Logf("status with Docker frozen answered in %v: %s", took.Round(time.Millisecond), strings.TrimSpace(stdout))

	if _, err := d.Client.Ping(t.Context()); err != nil {
		t.Fatalf("Docker after the thaw: %v", err)
	}
	stdout, stderr, code = summoner(t, env, "", "status")
	if code != 0 || strings.Contains(stdout, "ran out of time") {
		t.Fatalf("status after the thaw: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
}

// mattermostCtl runs the services script's stop-mattermost or
// start-mattermost, found beside the restart command the tests are given.
func mattermostCtl(t *testing.T, what string) {
	t.Helper()
	restart := os.Getenv("SUMMONER_IT_MM_RESTART")
	if !strings.Contains(restart, "restart-mattermost") {
		t.Fatalf("SUMMONER_IT_MM_RESTART=%q does not name the services script", restart)
	}
	cmd := strings.Replace(restart, "restart-mattermost", what+"-mattermost", 1)
	if out, err := exec.Command("bash", "-c", cmd).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

// outageMinion copies the test minion under another name, so two bots can
// summon at once without sharing containers.
func outageMinion(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	copyMinion(t, minion, dir, name)
	return dir
}

// copyMinion copies the test minion from (under minions/testdata) into
// dir as name.
func copyMinion(t *testing.T, from, dir, name string) {
	t.Helper()
	src, err := filepath.Abs("../../minions/testdata/minions/" + from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"compose.yml", "minion.yml"} {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "minion.yml" {
			data = []byte(strings.Replace(string(data), "name: "+from, "name: "+name, 1))
		}
		if err := os.WriteFile(filepath.Join(dir, name, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFinalReplySurvivesAChatOutage: Mattermost stops while a summon runs
// and comes back three minutes later; the final reply appears exactly once.
// Two bots run at once: one stays up through the outage, the other is
// restarted in the middle of it.
func TestFinalReplySurvivesAChatOutage(t *testing.T) {
	e, d, dir := minionEnv(t)
	const other = "testmo" // the second bot's minion
	d.RemoveMinion(t, other)
	t.Cleanup(func() { d.RemoveMinion(t, other) })
	t.Cleanup(func() { mattermostCtl(t, "start") }) // whatever happens below
	ch := e.NewChannel(t)
	op := e.Client(t, e.Operator)

	type bot struct {
		name, minion, addr string
		env                []string
		d                  *daemon
		post               *model.Post
	}
	bots := []*bot{
		{name: e.BotUsername, minion: minion},
		{name: e.OtherBotUsername, minion: other},
	}
	for i, b := range bots {
		b.addr = freePort(t)
		bdir := filepath.Join(dir, b.minion)
		b.env = append(minionDaemonEnv(t, e, d, bdir, "outage.summoner.test"),
			"SUMMONER_HTTP_LISTEN="+b.addr, "SUMMONER_PERMISSIONS_OPERATORS="+e.Operator.Username)
		if i == 1 {
			b.env = append(b.env, "SUMMONER_CHAT_TOKEN="+e.OtherBotToken, "SUMMONER_DOCKER_MINIONS_DIR="+outageMinion(t, other))
		}
		b.d = startDaemon(t, b.env)
		waitHealthy(t, b.addr)
	}

	// With Docker frozen the summons cannot finish before Mattermost is
	// down: both bots hold a running command, then the server stops.
	thaw := freezeDocker(t)
	for _, b := range bots {
		_, port, _ := strings.Cut(freePort(t), ":")
		b.post = mmtest.Post(t, op, ch.Id, "", "@"+b.name+" summon "+b.minion+" HTTP_PORT="+port)
	}
	for _, b := range bots {
		waitFor(t, b.name+" to run the summon", 30*time.Second, func() bool {
			_, body := healthz(b.addr)
			return body["commands_running"] == float64(1)
		})
	}
	mattermostCtl(t, "stop")
	down := time.Now()
	thaw()

	for _, b := range bots {
		waitFor(t, b.minion+" to be up", 2*time.Minute, func() bool {
			_, body := healthz(b.addr)
			return body["commands_running"] == float64(0)
		})
		if n := len(d.Containers(t, b.minion)); n != 2 {
			t.Fatalf("%s has %d containers after the summon, want 2", b.minion, n)
		}
	}
	// The second bot restarts while the server is still down.
	b := bots[1]
	b.d.stop(t)
	b.d = startDaemon(t, b.env)
	waitFor(t, "the restarted bot's health endpoint", 30*time.Second, func() bool {
		code, _ := healthz(b.addr)
		return code == http.StatusServiceUnavailable
	})

	// The outage lasts three minutes: longer than any retry inside a call.
	time.Sleep(time.Until(down.Add(3 * time.Minute)))
	mattermostCtl(t, "start")
	op = e.Client(t, e.Operator)
	for _, b := range bots {
		r := mmtest.WaitReply(t, op, b.post, time.Minute)
		final := mmtest.WaitEdited(t, op, r.Id, time.Minute, func(s string) bool { return strings.Contains(s, " is up: ") || strings.Contains(s, "wrong") })
		if !strings.Contains(final.Message, b.minion+" 1.0 is up: plain HTTP on 127.0.0.1:") {
			t.Fatalf("%s's final reply: %q", b.name, final.Message)
		}
		// A command answered after the outage proves everything before it
		// was delivered: count once the bot has caught up.
		sync := mmtest.Post(t, op, ch.Id, "", "@"+b.name+" ping")
		mmtest.WaitReply(t, op, sync, time.Minute)
		if rs := mmtest.Replies(t, op, b.post); len(rs) != 1 {
			var texts []string
			for _, r := range rs {
				texts = append(texts, r.Message)
			}
			t.Fatalf("%s answered the summon %d times, want exactly once: %q", b.name, len(rs), texts)
		}
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
