package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/itgate"
)

type running struct {
	client            *Client
	socket            string
	httpAddr, tlsAddr string
	g                 *gateway
	storage           string
	stop              func() // stops the gateway and waits for Run to return
}

// startGateway runs a gateway on loopback ports with a CA that does not
// answer (certificates fail; routing does not depend on them).
func startGateway(t *testing.T, o Options) *running {
	t.Helper()
	dir := t.TempDir()
	if o.AdminSocket == "" {
		o.AdminSocket = filepath.Join(dir, "gateway.sock")
	}
	if o.StorageDir == "" {
		o.StorageDir = filepath.Join(dir, "certs")
	}
	if o.CA == "" {
		o.CA = "https://127.0.0.1:1/directory"
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr, o.HTTPSAddr = "127.0.0.1:0", "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = testLogger(t)
	}
	r := &running{socket: o.AdminSocket, storage: o.StorageDir}
	ready := make(chan struct{})
	o.ready = func(h, s net.Addr, g *gateway) {
		r.httpAddr, r.tlsAddr, r.g = h.String(), s.String(), g
		close(ready)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(r.stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	r.client = NewClient(o.AdminSocket)
	ctx2, c2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer c2()
	if err := r.client.Health(ctx2); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestAdminRoundTrip(t *testing.T) {
	backend := newBackend(t, "wekan")
	r := startGateway(t, Options{})
	ctx := context.Background()

	fi, err := os.Stat(r.socket)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
	}

	routes := []Route{
		{Host: "wekan.example.com", Aliases: []string{"boards.example.com"}, Minion: "wekan", Backend: backend, State: StateUp},
		{Host: "broken.example.com", Minion: "broken", Backend: "nowhere", State: StateUp},
		{Host: "WEKAN.example.com", Minion: "copycat", Backend: backend, State: StateUp},
	}
	res, err := r.client.SetRoutes(ctx, routes)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(res.Accepted, ",") != "wekan.example.com,boards.example.com" {
		t.Errorf("accepted %q", res.Accepted)
	}
	if len(res.Rejected) != 2 || !strings.Contains(res.Rejected["broken.example.com"], "backend") || !strings.Contains(res.Rejected["wekan.example.com"], "already served for minion wekan") {
		t.Errorf("rejected %q", res.Rejected)
	}
	got, err := r.client.Routes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Minion != "wekan" {
		t.Errorf("GET /routes = %+v", got)
	}

	// The certificate is tried (and fails: no CA); it says so.
	deadline := time.Now().Add(10 * time.Second)
	var certs []CertStatus
	for {
		certs, err = r.client.Certs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(certs) == 2 && certs[0].Status == CertFailed && certs[1].Status == CertFailed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("certs never failed: %+v", certs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if certs[0].Host != "boards.example.com" || certs[0].Error == "" || certs[0].NextTry.IsZero() {
		t.Errorf("certs %+v", certs)
	}

	// The same table again starts nothing new at the CA.
	if _, err := r.client.SetRoutes(ctx, routes); err != nil {
		t.Fatal(err)
	}
	r.g.certs.mu.Lock()
	starts := r.g.certs.starts
	r.g.certs.mu.Unlock()
	if starts != 2 {
		t.Errorf("%d obtain loops started for 2 hosts after the same table twice", starts)
	}

	// An empty table removes everything.
	if _, err := r.client.SetRoutes(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if certs, _ := r.client.Certs(ctx); len(certs) != 0 {
		t.Errorf("certs after an empty table: %+v", certs)
	}
}

func TestRedirectListener(t *testing.T) {
	r := startGateway(t, Options{})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.httpAddr+"/login?next=/", nil)
	req.Host = "wekan.example.com"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(r.tlsAddr)
	want := "https://wekan.example.com:" + port + "/login?next=/"
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("%d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

func TestAdminSocket(t *testing.T) {
	t.Run("stale socket is replaced", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "gw.sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close() // the file stays, nobody answers: a crashed gateway's
		if _, err := os.Stat(sock); err != nil {
			t.Fatal(err)
		}
		startGateway(t, Options{AdminSocket: sock})
	})
	t.Run("live gateway is not displaced", func(t *testing.T) {
		r := startGateway(t, Options{})
		err := Run(context.Background(), Options{HTTPAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0", AdminSocket: r.socket, StorageDir: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "another gateway") {
			t.Errorf("second Run on a live socket: %v", err)
		}
		if err := r.client.Health(context.Background()); err != nil {
			t.Errorf("first gateway after the attempt: %v", err)
		}
	})
	t.Run("a file that is not a socket is left alone", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "notasocket")
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := listenUnix(p); err == nil {
			t.Error("listened over a regular file")
		}
	})
}

func TestStoragePermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	sub := filepath.Join(dir, "certificates", "ca", "wekan.example.com")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(sub, "wekan.example.com.key")
	if err := os.WriteFile(key, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	startGateway(t, Options{StorageDir: dir})
	for p, want := range map[string]os.FileMode{dir: 0o700, sub: 0o700, key: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// TestRoutesSurviveRestart: a restarted gateway serves the last table at
// once, before the bot sends it again.
func TestRoutesSurviveRestart(t *testing.T) {
	backend := newBackend(t, "wekan")
	storage := filepath.Join(t.TempDir(), "certs")
	r := startGateway(t, Options{StorageDir: storage})
	if _, err := r.client.SetRoutes(context.Background(), []Route{{Host: "wekan.example.com", Minion: "wekan", Backend: backend, State: StateUp}}); err != nil {
		t.Fatal(err)
	}
	r2 := startGateway(t, Options{StorageDir: storage})
	got, err := r2.client.Routes(context.Background())
	if err != nil || len(got) != 1 || got[0].Host != "wekan.example.com" {
		t.Errorf("routes after restart: %+v %v", got, err)
	}
}

// TestNoDockerSocket: nothing in the gateway links the Docker client, and
// a running gateway holds no file descriptor on a Docker socket.
func TestNoDockerSocket(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		itgate.Skip(t, "no go tool to list the package's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "github.com/caddyserver/certmagic") {
		t.Fatalf("go list -deps does not list certmagic: %q", deps)
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/docker/") || strings.HasPrefix(d, "github.com/moby/") {
			t.Errorf("the gateway depends on %s", d)
		}
	}
	startGateway(t, Options{})
	if n, err := openDockerFDs("self"); err != nil {
		t.Fatal(err)
	} else if n > 0 {
		t.Errorf("%d descriptors on docker.sock", n)
	}
}

// openDockerFDs counts a process's descriptors on a docker.sock, or on any
// socket whose peer path is one (read from /proc).
func openDockerFDs(pid string) (int, error) {
	dir := "/proc/" + pid + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if strings.Contains(target, "docker.sock") {
			n++
		}
	}
	// Unix socket fds read as socket:[inode]; /proc/net/unix names the
	// path of each bound inode (a connecting client's side has none: that
	// case is covered by the build-info check and by the integration test,
	// which runs the gateway where no Docker socket exists).
	unix, err := os.ReadFile("/proc/" + pid + "/net/unix")
	if err != nil {
		return n, nil
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(unix), "\n") {
		f := strings.Fields(line)
		if len(f) >= 8 && strings.Contains(f[7], "docker.sock") {
			inodes[f[6]] = true
		}
	}
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		if strings.HasPrefix(target, "socket:[") && inodes[strings.Trim(target[len("socket:"):], "[]")] {
			n++
		}
	}
	return n, nil
}

// Listeners handed over by a parent are the ones served: the gateway binds
// nothing itself, and the redirect names the configured HTTPS port.
func TestHandedOverListeners(t *testing.T) {
	httpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := startGateway(t, Options{HTTPAddr: ":80", HTTPSAddr: ":443", HTTPListener: httpLn, HTTPSListener: tlsLn})
	if r.httpAddr != httpLn.Addr().String() || r.tlsAddr != tlsLn.Addr().String() {
		t.Fatalf("serving %s and %s, want the listeners handed over: %s and %s", r.httpAddr, r.tlsAddr, httpLn.Addr(), tlsLn.Addr())
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.httpAddr+"/x", nil)
	req.Host = "wekan.example.com"
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Location"); got != "https://wekan.example.com/x" {
		t.Errorf("redirect to %q, want the configured port 443 (no port in the URL)", got)
	}
}
