package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/summoner-bot/summoner/internal/acmetest"
	"github.com/summoner-bot/summoner/internal/privsep"
)

// gwMinions copies the gateway test minion under each name, so several
// can run side by side.
func gwMinions(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		copyMinion(t, "testgw", dir, name)
	}
	copyMinion(t, "testtaiga", dir, "testtaiga")
	return dir
}

// resolvingClient is `curl --resolve HOST:PORT:127.0.0.1` with the CA's
// root as the only trusted one, and no redirect following.
func resolvingClient(t *testing.T, a *acmetest.Env) *http.Client {
	t.Helper()
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: a.RootPool(t)},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func fetch(c *http.Client, url string) (int, string, http.Header, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(body), resp.Header, nil
}

// TestGatewayServesMinions: with the gateway on, against Pebble, two test
// minions get certificates and answer over HTTPS with a chain to Pebble's
// root; plain HTTP redirects; a third minion whose web service is down
// shows the 503 page while the other two keep working; banishing removes
// a route at once; the web port is bound to loopback only; and the
// gateway process holds no Docker socket.
func TestGatewayServesMinions(t *testing.T) {
	e, d, dir := minionEnv(t)
	a := acmetest.Require(t)
	names := []string{"testgw", "testgw2", "testgw3"}
	for _, n := range append(names, "testtaiga", "statik") {
		d.RemoveMinion(t, n)
		t.Cleanup(func() { d.RemoveMinion(t, n) })
	}
	const domain = "gw.summoner.test"
	httpAddr := "127.0.0.1:" + strconv.Itoa(a.HTTPPort)
	httpsAddr := "127.0.0.1:" + strconv.Itoa(a.TLSPort)
	// The bot's files and the gateway's folder under one every user may
	// enter, as /etc and /var/lib are: only their own modes keep the
	// gateway out. An older install's certificates are moved in.
	open := openDir(t)
	// The bot makes its state folder itself.
	gwDir, oldCerts, state := filepath.Join(open, "gateway"), filepath.Join(open, "old", "certs"), filepath.Join(open, "state")
	if err := os.MkdirAll(oldCerts, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(oldCerts, "from-before"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(open, "config.yml")
	if err := os.WriteFile(cfg, []byte("gateway:\n  enabled: true\n"+
		"  http_listen: "+httpAddr+"\n  https_listen: "+httpsAddr+"\n"+
		"  dir: "+gwDir+"\n  storage_dir: "+oldCerts+"\n"+
		"  acme_ca: "+a.Directory+"\n  acme_ca_root: "+a.CARootFile+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ops := e.NewChannel(t)
	addr := freePort(t)
	bot := startDaemon(t, append(minionDaemonEnv(t, e, d, dir, domain),
		"SUMMONER_CONFIG="+cfg, "SUMMONER_HTTP_LISTEN="+addr, "SUMMONER_CHAT_OPS_CHANNEL="+ops.Name,
		"SUMMONER_DOCKER_MINIONS_DIR="+gwMinions(t, names...),
		"SUMMONER_CHAT_STATE_FILE="+filepath.Join(state, "chat.json"), "SUMMONER_DOCKER_STATE_DIR="+filepath.Join(state, "minions"),
		"TZ=Europe/Paris", "SSL_CERT_DIR=/etc/ssl/certs", "LANG=C.UTF-8",
		"SUMMONER_PERMISSIONS_OPERATORS="+e.Operator.Username, "SUMMONER_PERMISSIONS_ADMINS="+e.Admin.Username))
	waitHealthy(t, addr)
	gw := gatewayPID(t, bot)
	checkGatewaySeparated(t, gw, []string{"PATH=" + privsep.Path, "TZ=Europe/Paris", "SSL_CERT_DIR=/etc/ssl/certs"},
		map[string]string{"the main config file": cfg, "the bot's state folder": state, "the chat state": filepath.Join(state, "chat.json"),
			"the Docker socket": strings.TrimPrefix(d.Client.DaemonHost(), "unix://")})
	if _, err := os.Stat(filepath.Join(gwDir, "certs", "from-before")); err != nil {
		t.Errorf("the certificates of before were not moved into the gateway's folder: %v", err)
	}
	op := e.Client(t, e.Operator)
	say := sayer(t, e, op, ops.Id, 3*time.Minute)
	for _, n := range names {
		_, port, _ := strings.Cut(freePort(t), ":")
		r := say("summon "+n+" HTTP_PORT="+port, " is up", "wrong", "failed")
		// Truthful: the https URL only once the gateway serves it.
		if !strings.Contains(r, "https://"+n+"."+domain) {
			t.Fatalf("summon %s: %q, want its https URL", n, r)
		}
	}

	c := resolvingClient(t, a)
	url := func(n, path string) string {
		return "https://" + n + "." + domain + ":" + strconv.Itoa(a.TLSPort) + path
	}
	for _, n := range names[:2] {
		code, body, h, err := fetch(c, url(n, "/hello"))
		if err != nil || code != 200 || !strings.Contains(body, "service=web") || !strings.Contains(body, "host="+n+"."+domain) || !strings.Contains(body, "proto=https") {
			t.Fatalf("%s over HTTPS: %d %q %v", n, code, body, err)
		}
		if h.Get("Strict-Transport-Security") == "" {
			t.Errorf("%s: no HSTS header", n)
		}
	}
	// Plain HTTP redirects to HTTPS.
	code, _, h, err := fetch(c, "http://testgw."+domain+":"+strconv.Itoa(a.HTTPPort)+"/x?y=1")
	if err != nil || code/100 != 3 || !strings.HasPrefix(h.Get("Location"), "https://testgw."+domain) {
		t.Fatalf("plain HTTP: %d, Location %q, %v", code, h.Get("Location"), err)
	}

	// A catalog web minion (statik, its nginx stood in for by the echo
	// program) is served too, and publishes its web port on loopback only,
	// as the test minion does.
	_, port, _ := strings.Cut(freePort(t), ":")
	if r := say("summon statik HTTP_PORT="+port, " is up", "wrong", "failed"); !strings.Contains(r, "https://statik."+domain) {
		t.Fatalf("summon statik: %q", r)
	}
	if code, body, _, err := fetch(c, url("statik", "/")); err != nil || code != 200 || !strings.Contains(body, "service=statik") {
		t.Fatalf("statik over HTTPS: %d %q %v", code, body, err)
	}
	for _, ctr := range append(d.Containers(t, "testgw"), d.Containers(t, "statik")...) {
		info, err := d.Client.ContainerInspect(t.Context(), ctr.ID)
		if err != nil {
			t.Fatal(err)
		}
		for port, bindings := range info.HostConfig.PortBindings {
			for _, b := range bindings {
				if b.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %s on %q, want 127.0.0.1 only", ctr.Names, port, b.HostIP)
				}
			}
		}
	}

	// Websockets pass through.
	wsEcho(t, a, "wss://testgw."+domain+":"+strconv.Itoa(a.TLSPort)+"/ws", "web")
	// A 1 GiB upload streams through with the gateway's memory flat.
	before := vmKiB(t, gw, "VmHWM")
	n, err := upload(c, url("testgw", "/upload"), 1<<30)
	if err != nil || n != 1<<30 {
		t.Fatalf("1 GiB upload: %d bytes arrived, %v", n, err)
	}
	after := vmKiB(t, gw, "VmHWM")
	t.Logf("gateway peak RSS %d KiB before a 1 GiB upload, %d KiB after (+%d KiB)", before, after, after-before)
	if after-before > 64<<10 {
		t.Errorf("the gateway's peak RSS grew by %d KiB during a 1 GiB upload: it buffers", after-before)
	}

	// Taiga-like paths: /api and /events reach their own services.
	_, port, _ = strings.Cut(freePort(t), ":")
	if r := say("summon testtaiga HTTP_PORT="+port, " is up", "wrong", "failed"); !strings.Contains(r, " is up") {
		t.Fatalf("summon testtaiga: %q", r)
	}
	for path, service := range map[string]string{"/": "front", "/api/v1/projects": "back", "/api": "back", "/apiary": "front", "/admin": "front"} {
		code, body, _, err := fetch(c, url("testtaiga", path))
		if err != nil || code != 200 || !strings.Contains(body, "service="+service+" ") {
			t.Errorf("testtaiga %s: %d %q %v, want the %s service", path, code, body, err, service)
		}
	}
	wsEcho(t, a, "wss://testtaiga."+domain+":"+strconv.Itoa(a.TLSPort)+"/events", "events")

	// A broken third minion shows the 503 page; the others keep working.
	for _, ctr := range d.Containers(t, "testgw3") {
		if err := d.Client.ContainerKill(t.Context(), ctr.ID, "KILL"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the 503 page of testgw3", time.Minute, func() bool {
		code, body, _, err := fetch(c, url("testgw3", "/"))
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "testgw3") && !strings.Contains(body, "service=web")
	})
	for _, n := range names[:2] {
		if code, body, _, err := fetch(c, url(n, "/still")); err != nil || code != 200 || !strings.Contains(body, "service=web") {
			t.Fatalf("%s while testgw3 is down: %d %q %v", n, code, body, err)
		}
	}

	// Banishing removes the route at once: the old host answers 404 or
	// the 503 page, never another minion's content.
	if r := say("banish testgw2", "banished", "wrong"); !strings.Contains(r, "banished") {
		t.Fatalf("banish: %q", r)
	}
	code, body, _, err := fetch(c, url("testgw2", "/"))
	if err != nil || strings.Contains(body, "service=") || (code != http.StatusNotFound && code != http.StatusServiceUnavailable) {
		t.Fatalf("testgw2 after banish: %d %q %v, want 404 or 503 (over valid TLS)", code, body, err)
	}

	// certs lists the certificates with their issuer and expiry.
	r := say("certs", "| host |", "cannot", "off")
	for _, n := range []string{"testgw", "testgw3"} {
		if !strings.Contains(r, "| "+n+"."+domain+" | ✅ valid |") {
			t.Errorf("certs does not show %s valid:\n%s", n, r)
		}
	}

	// The gateway process holds no Docker socket.
	checkNoDockerSocket(t, gw)
}

// gatewayPID finds the gateway process the bot started.
func gatewayPID(t *testing.T, bot *daemon) int {
	t.Helper()
	return childPID(t, bot.cmd.Process.Pid)
}

// checkGatewaySeparated: the gateway runs as a user of its own (not root,
// no supplementary group, no capability), its environment is exactly env,
// and that user can open none of denied: a copy of this test binary runs
// as that uid and tries (TestHelperTryOpen).
func checkGatewaySeparated(t *testing.T, pid int, env []string, denied map[string]string) {
	t.Helper()
	uids, gids := statusIDs(t, pid, "Uid"), statusIDs(t, pid, "Gid")
	t.Logf("gateway pid %d: Uid %v, Gid %v", pid, uids, gids)
	for _, id := range append(uids, gids...) {
		if id == "0" {
			t.Fatalf("the gateway runs with a root id: Uid %v, Gid %v", uids, gids)
		}
	}
	if g := statusIDs(t, pid, "Groups"); len(g) != 0 {
		t.Errorf("the gateway has supplementary groups %v", g)
	}
	if c := statusIDs(t, pid, "CapEff"); len(c) != 1 || strings.Trim(c[0], "0") != "" {
		t.Errorf("the gateway has capabilities %v", c)
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	if !slices.Equal(got, env) {
		t.Errorf("the gateway's environment is %q, want exactly %q", got, env)
	}

	uid, _ := strconv.Atoi(uids[0])
	gid, _ := strconv.Atoi(gids[0])
	dir := openDir(t)
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(dir, "helper.test")
	if err := os.WriteFile(helper, self, 0o755); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, p := range denied {
		paths = append(paths, p)
	}
	cmd := exec.Command(helper, "-test.run=^TestHelperTryOpen$")
	cmd.Env = []string{"SUMMONER_TRY_OPEN=" + strings.Join(paths, "\n")}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the helper as uid %d: %v\n%s", uid, err, out)
	}
	t.Logf("as uid %d:\n%s", uid, out)
	for what, p := range denied {
		line := "denied " + p + "\n"
		if !strings.Contains(string(out), line) {
			t.Errorf("uid %d can open %s (%s):\n%s", uid, what, p, out)
		}
	}
}

// TestHelperTryOpen is not a test: run as another user by
// checkGatewaySeparated, it tries to open each path of SUMMONER_TRY_OPEN
// (a socket by connecting) and prints "denied PATH" for each refusal.
func TestHelperTryOpen(t *testing.T) {
	list := os.Getenv("SUMMONER_TRY_OPEN")
	if list == "" { // not run by checkGatewaySeparated: nothing to do, in CI too
		t.Skip("a helper run by another test")
	}
	for _, p := range strings.Split(list, "\n") {
		f, err := os.Open(p)
		if err == nil {
			_, err = f.Readdirnames(1)
			if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, io.EOF) {
				err = nil
			}
			f.Close()
		} else if errors.Is(err, syscall.ENXIO) { // a socket: connect
			var c net.Conn
			if c, err = net.Dial("unix", p); err == nil {
				c.Close()
			}
		}
		switch {
		case errors.Is(err, fs.ErrPermission):
			fmt.Printf("denied %s\n", p)
		case err != nil:
			fmt.Printf("error %s: %v\n", p, err)
		default:
			fmt.Printf("opened %s\n", p)
		}
	}
}

// checkNoDockerSocket reads the process's descriptors: none may be the
// Docker socket, and every unix socket must be one it serves (a bound
// path: its admin socket), since a client connection to the Docker socket
// shows no path of its own.
func checkNoDockerSocket(t *testing.T, pid int) {
	t.Helper()
	bound := map[string]string{} // inode -> path
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 7 {
			path := ""
			if len(f) >= 8 {
				path = f[7]
			}
			bound[f[6]] = path
		}
	}
	fds, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/fd/*")
	if err != nil || len(fds) == 0 {
		t.Fatalf("reading the gateway's descriptors: %v", err)
	}
	for _, fd := range fds {
		target, err := os.Readlink(fd)
		if err != nil {
			continue
		}
		if strings.Contains(target, "docker.sock") {
			t.Fatalf("the gateway has %s open", target)
		}
		inode, ok := strings.CutPrefix(target, "socket:[")
		if !ok {
			continue
		}
		inode = strings.TrimSuffix(inode, "]")
		if path, unix := bound[inode]; unix && (path == "" || strings.Contains(path, "docker")) {
			t.Fatalf("the gateway holds a unix socket that is not its own (%q): a client connection, perhaps to Docker", path)
		}
	}
	t.Logf("gateway pid %d: %d descriptors, none on the Docker socket", pid, len(fds))
}

// wsEcho opens a websocket through the gateway and checks the echo and
// which service answered.
func wsEcho(t *testing.T, a *acmetest.Env, url, service string) {
	t.Helper()
	dialer := websocket.Dialer{
		TLSClientConfig:  &tls.Config{RootCAs: a.RootPool(t)},
		HandshakeTimeout: 10 * time.Second,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
		},
	}
	conn, resp, err := dialer.DialContext(t.Context(), url, nil)
	if err != nil {
		t.Fatalf("websocket %s: %v", url, err)
	}
	defer conn.Close()
	if got := resp.Header.Get("X-Echo-Service"); got != service {
		t.Errorf("websocket %s reached %q, want %q", url, got, service)
	}
	if err := conn.WriteMessage(websocket.TextMessage, []byte("ping through the gateway")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	if err != nil || string(msg) != "ping through the gateway" {
		t.Fatalf("websocket echo: %q, %v", msg, err)
	}
}

// upload POSTs size bytes of zeros and returns how many the echo service
// says arrived.
func upload(c *http.Client, url string, size int64) (int64, error) {
	req, err := http.NewRequest(http.MethodPost, url, io.LimitReader(zeros{}, size))
	if err != nil {
		return 0, err
	}
	req.ContentLength = size
	client := *c
	client.Timeout = 5 * time.Minute
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var n int64
	_, err = fmt.Sscanf(strings.TrimSpace(string(body)), "bytes=%d", &n)
	return n, err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// vmKiB reads a Vm* line of /proc/<pid>/status, in KiB.
func vmKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
