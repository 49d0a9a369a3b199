package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/mmtest"
	"github.com/summoner-bot/summoner/notifications"
)

const genericSecret = "generic-hmac-key-for-the-tests-1"

// generic sends a generic event signed at "at", as a script would.
func (b *hookBot) generic(t *testing.T, body []byte, at time.Time) int {
	return b.send(t, "/hooks/alerts", notifications.Sign(genericSecret, body, at), body)
}

// TestWebhookRepeats: a repeated event is not a replay. The same generic
// alert signed at four times is posted four times, and a slack one sent
// twice twice; the same signed request again, and a GitHub or GitLab body
// resent under a new delivery id, run their recipe once.
func TestWebhookRepeats(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	b := startHookBot(t, e, t.TempDir(), nil,
		"    - {name: alerts, source: alerts, actions: [{post: {channel: "+ch.Name+", template: \"ALERT {{.Title}}\"}}]}\n"+
			"    - {name: gh-push, source: gh, events: [push], actions: [{post: {channel: "+ch.Name+", template: \"GHPUSH {{.Ref}}\"}}]}\n"+
			"    - {name: gl-pipeline, source: gl, events: [pipeline], actions: [{post: {channel: "+ch.Name+", template: \"GLPIPE {{.Ref}} {{.Status}}\"}}]}\n"+
			"    - {name: relay, source: tool, actions: [{post: {channel: "+ch.Name+", template: \"{{.Text}}\"}}]}\n")
	waitHealthy(t, b.addr)
	run := newID()

	alert, _ := json.Marshal(map[string]string{"type": "alert", "title": "disk full on db1 " + run})
	now := time.Now()
	for i := range 4 {
		if code := b.generic(t, alert, now.Add(-time.Duration(i)*time.Second)); code != http.StatusAccepted {
			t.Fatalf("generic alert %d: HTTP %d, want 202", i+1, code)
		}
	}
	if code := b.generic(t, alert, now); code != http.StatusOK {
		t.Errorf("the same signed generic request again: HTTP %d, want 200 (duplicate)", code)
	}

	push := payload(t, "github_doc_push_branch.json", map[string]any{"ref": "refs/heads/gh-" + run})
	if code := b.github(t, "push", push, newID()); code != http.StatusAccepted {
		t.Fatalf("github push: HTTP %d, want 202", code)
	}
	if code := b.github(t, "push", push, newID()); code != http.StatusOK {
		t.Errorf("the same github body under a new delivery id: HTTP %d, want 200 (duplicate)", code)
	}
	pipeline := payload(t, "gitlab_pipeline.json", map[string]any{"object_attributes.ref": "gl-" + run, "object_attributes.status": "success"})
	if code := b.gitlab(t, "Pipeline Hook", pipeline, newID()); code != http.StatusAccepted {
		t.Fatalf("gitlab pipeline: HTTP %d, want 202", code)
	}
	if code := b.gitlab(t, "Pipeline Hook", pipeline, newID()); code != http.StatusOK {
		t.Errorf("the same gitlab body under a new delivery id: HTTP %d, want 200 (duplicate)", code)
	}
	for range 2 {
		if code := b.slack(t, "backup failed "+run); code != http.StatusAccepted {
			t.Fatalf("slack message: HTTP %d, want 202", code)
		}
	}

	// Events are handled in order: once the mark is posted, all before it are.
	b.slack(t, "MARK "+run)
	c := e.Client(t, e.Member)
	posts := waitBotPost(t, c, e, ch.Id, "MARK "+run, time.Minute)
	for want, n := range map[string]int{
		"ALERT disk full on db1 " + run: 4,
		"GHPUSH gh-" + run:              1,
		"GLPIPE gl-" + run + " success": 1,
		"backup failed " + run:          2,
	} {
		if got := count(posts, want); got != n {
			t.Errorf("%d posts of %q, want %d: %q", got, want, n, posts)
		}
	}
}

// procStatus reads a field of /proc/<pid>/status in KiB.
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatalf("reading the bot's status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestWebhookMemory: strangers cannot make the bot hold their bodies. 500
// connections from one address to one generic source each send all but
// the last 100 bytes of a 1 MiB body and wait; the bot (built without
// -race, its own process) reads a few of them, refuses the others with 503
// at once, stays within 64 MiB of its idle RSS, and still accepts a
// signed event from another address meanwhile.
func TestWebhookMemory(t *testing.T) {
	const conns, size = 500, 1 << 20
	e := mmtest.FromEnv(t)
	b := startHookBot(t, e, t.TempDir(), nil, "    []\n")
	waitHealthy(t, b.addr)
	pid := b.d.cmd.Process.Pid
	idleRSS, idleHWM := procStatus(t, pid, "VmRSS"), procStatus(t, pid, "VmHWM")

	head := fmt.Sprintf("POST /hooks/alerts HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"+
		"%s: %d\r\n%s: sha256=%s\r\nContent-Length: %d\r\n\r\n",
		b.addr, notifications.HeaderTimestamp, time.Now().Unix(), notifications.HeaderSignature, strings.Repeat("0", 64), size)
	body := []byte(`{"type":"alert","text":"` + strings.Repeat("a", size-100) + `"}`)[:size-100]

	type result struct {
		status     int
		retryAfter string
	}
	results := make([]result, conns)
	var sent, answered sync.WaitGroup // sent: written, or answered
	var open atomic.Int32             // not answered yet
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i := range conns {
		sent.Add(1)
		answered.Add(1)
		open.Add(1)
		go func() {
			defer answered.Done()
			defer open.Add(-1)
			var once sync.Once
			done := func() { once.Do(sent.Done) }
			defer done()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", b.addr)
			if err != nil {
				t.Errorf("connection %d: %v", i, err)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
			// Read the answer while writing: a refusal comes before the body.
			got := make(chan result, 1)
			go func() {
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					got <- result{}
					return
				}
				resp.Body.Close()
				got <- result{resp.StatusCode, resp.Header.Get("Retry-After")}
			}()
			if _, err := c.Write([]byte(head)); err == nil {
				_, _ = c.Write(body)
			}
			done()
			results[i] = <-got
		}()
	}
	sent.Wait()

	// Meanwhile, a correctly signed event from another address.
	signed, _ := json.Marshal(map[string]string{"type": "alert", "title": "meanwhile " + newID()})
	heldNow := open.Load()
	from := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 10 * time.Second}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: from.DialContext}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+b.addr+"/hooks/alerts", strings.NewReader(string(signed)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = notifications.Sign(genericSecret, signed, time.Now())
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("the signed event from 127.0.0.2: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Errorf("the signed event from 127.0.0.2 while the strangers wait: HTTP %d, want 2xx", resp.StatusCode)
	}
	duringRSS, duringHWM := procStatus(t, pid, "VmRSS"), procStatus(t, pid, "VmHWM")

	answered.Wait()
	peak := procStatus(t, pid, "VmHWM")
	refused, held, noRetryAfter := 0, 0, 0
	statuses := map[int]int{}
	for _, r := range results {
		statuses[r.status]++
		if r.status == http.StatusServiceUnavailable {
			refused++
			if r.retryAfter == "" {
				noRetryAfter++
			}
		} else {
			held++ // read until cut off (408), or closed
		}
	}
	t.Logf("idle: VmRSS %d KiB (VmHWM %d KiB); while %d of %d connections were still open and the signed event was accepted: VmRSS %d KiB, VmHWM %d KiB",
		idleRSS, idleHWM, heldNow, conns, duringRSS, duringHWM)
	t.Logf("peak VmHWM %d KiB, %.1f MiB above idle RSS; held (read, then cut off) %d, refused with 503 %d; answers by status (0 = none): %v",
		peak, float64(peak-idleRSS)/1024, held, refused, statuses)
	if grew := peak - idleRSS; grew >= 64<<10 {
		t.Errorf("the bot's peak RSS grew by %d KiB, want under 64 MiB", grew)
	}
	if refused == 0 || held == 0 {
		t.Errorf("held %d, refused %d: want some of each", held, refused)
	}
	if noRetryAfter > 0 {
		t.Errorf("%d answers 503 without Retry-After", noRetryAfter)
	}
}
