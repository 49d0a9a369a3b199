package gateway

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/acmetest"
)

// TestACMEWithPebble runs the gateway where Pebble validates challenges
// and checks, with certificates Pebble really issued: each host answers
// its own backend over HTTPS, plain HTTP redirects, a minion that is down
// gives the 503 page under a valid certificate, a removed host answers
// 404, and a host whose DNS points elsewhere fails in plain words while
// the others stay valid.
func TestACMEWithPebble(t *testing.T) {
	e := acmetest.Require(t)
	const (
		wekan  = "wekan.gw.summoner.test"
		statik = "statik.gw.summoner.test"
		kibana = "kibana.gw.summoner.test"
		broken = "broken.gw.summoner.test"
	)
	for _, h := range []string{wekan, statik, kibana} {
		e.Resolve(t, h, "127.0.0.1")
	}
	e.Resolve(t, broken, "127.0.0.2") // nothing of ours listens there
	httpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.HTTPPort))
	tlsAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(e.TLSPort))
	waitFree(t, httpAddr, tlsAddr)

	r := startGateway(t, Options{HTTPAddr: httpAddr, HTTPSAddr: tlsAddr, CA: e.Directory, CARootFile: e.CARootFile, Email: "ops@summoner.test"})
	ctx := context.Background()
	routes := []Route{
		{Host: wekan, Minion: "wekan", Backend: newBackend(t, "wekan"), State: StateUp},
		{Host: statik, Minion: "statik", Backend: newBackend(t, "statik"), State: StateUp},
		{Host: kibana, Minion: "kibana", Backend: newBackend(t, "kibana"), State: "down"},
	}
	start := time.Now()
	res, err := r.client.SetRoutes(ctx, routes)
	if err != nil || len(res.Rejected) > 0 {
		t.Fatalf("SetRoutes: %+v %v", res, err)
	}
	waitCerts(t, r.client, 90*time.Second, map[string]string{wekan: CertValid, statik: CertValid, kibana: CertValid})
	t.Logf("three certificates from Pebble in %v", time.Since(start).Round(time.Millisecond))
	certs, _ := r.client.Certs(ctx)
	for _, c := range certs {
		if !strings.Contains(c.Issuer, "Pebble") || time.Until(c.NotAfter) < 24*time.Hour {
			t.Errorf("certificate %+v: want Pebble's issuer and a NotAfter ahead", c)
		}
	}

	// Like curl --resolve: every name goes to the gateway's ports.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		target := tlsAddr
		if port == "80" {
			target = httpAddr
		}
		var d net.Dialer
		return d.DialContext(ctx, network, target)
	}
	client := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     &http.Transport{Proxy: nil, DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: e.RootPool(t)}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(client.CloseIdleConnections)
	fetch := func(url string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	for _, h := range []string{wekan, statik} {
		resp, body := fetch("https://" + h + "/hello")
		name := strings.SplitN(h, ".", 2)[0]
		if resp.StatusCode != 200 || !strings.Contains(body, `"Name":"`+name+`"`) {
			t.Errorf("%s: %d %s", h, resp.StatusCode, body)
		}
		if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
			t.Errorf("%s: no verified chain to Pebble's root", h)
		}
		if resp.Header.Get("Strict-Transport-Security") == "" {
			t.Errorf("%s: no HSTS", h)
		}
	}
	resp, _ := fetch("http://" + wekan + "/login?x=1")
	if want := "https://" + wekan + ":" + strconv.Itoa(e.TLSPort) + "/login?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	resp, body := fetch("https://" + kibana + "/app/home")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "kibana is down") || strings.Contains(body, "wekan") {
		t.Errorf("down minion: %d %s", resp.StatusCode, body)
	}

	// Banish statik: its host answers 404 at once (under its old
	// certificate, no longer renewed), never another minion's content.
	if _, err := r.client.SetRoutes(ctx, []Route{routes[0], routes[2]}); err != nil {
		t.Fatal(err)
	}
	resp, body = fetch("https://" + statik + "/hello")
	if resp.StatusCode != http.StatusNotFound || strings.Contains(body, "wekan") || strings.Contains(body, "statik") {
		t.Errorf("removed host: %d %s", resp.StatusCode, body)
	}

	// A host whose DNS points elsewhere fails, in plain words; the others
	// stay valid and served.
	withBroken := []Route{routes[0], routes[2], {Host: broken, Minion: "broken", Backend: newBackend(t, "broken"), State: StateUp}}
	if _, err := r.client.SetRoutes(ctx, withBroken); err != nil {
		t.Fatal(err)
	}
	got := waitCerts(t, r.client, 90*time.Second, map[string]string{wekan: CertValid, kibana: CertValid, broken: CertFailed})
	b := got[broken]
	t.Logf("failing host: %+v", b)
	if !strings.Contains(b.Error, "is not reachable from the CA for "+broken) {
		t.Errorf("failure not in plain words: %q", b.Error)
	}
	if b.NextTry.Before(time.Now()) {
		t.Errorf("no next try ahead: %v", b.NextTry)
	}
	if resp, body := fetch("https://" + wekan + "/"); resp.StatusCode != 200 {
		t.Errorf("wekan after the failure: %d %s", resp.StatusCode, body)
	}
	// Sending the same table again does not start another obtain loop.
	r.g.certs.mu.Lock()
	before := r.g.certs.starts
	r.g.certs.mu.Unlock()
	if _, err := r.client.SetRoutes(ctx, withBroken); err != nil {
		t.Fatal(err)
	}
	r.g.certs.mu.Lock()
	after := r.g.certs.starts
	r.g.certs.mu.Unlock()
	if after != before {
		t.Errorf("the same table again started %d obtain loops", after-before)
	}
	if n, err := openDockerFDs("self"); err != nil || n > 0 {
		t.Errorf("descriptors on docker.sock: %d %v", n, err)
	}

	// A restarted gateway serves the saved table with the stored
	// certificates at once: no new order at the CA.
	r.stop()
	start = time.Now()
	r2 := startGateway(t, Options{HTTPAddr: httpAddr, HTTPSAddr: tlsAddr, CA: e.Directory, CARootFile: e.CARootFile, StorageDir: r.storage})
	waitCerts(t, r2.client, 10*time.Second, map[string]string{wekan: CertValid, kibana: CertValid})
	t.Logf("after a restart, certificates loaded from storage in %v", time.Since(start).Round(time.Millisecond))
	r2.g.certs.mu.Lock()
	for _, h := range []string{wekan, kibana} {
		if n := r2.g.certs.hosts[h].attempts; n != 0 {
			t.Errorf("%s: %d orders after a restart, want none (the certificate is stored)", h, n)
		}
	}
	r2.g.certs.mu.Unlock()
	client.CloseIdleConnections()
	if resp, body := fetch("https://" + wekan + "/"); resp.StatusCode != 200 || !strings.Contains(body, `"Name":"wekan"`) {
		t.Errorf("wekan after a restart: %d %s", resp.StatusCode, body)
	}
}

// waitCerts polls /certs until each named host has the wanted status.
func waitCerts(t *testing.T, c *Client, within time.Duration, want map[string]string) map[string]CertStatus {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		certs, err := c.Certs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]CertStatus{}
		for _, cs := range certs {
			got[cs.Host] = cs
		}
		ok := true
		for h, s := range want {
			ok = ok && got[h].Status == s
		}
		if ok {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("certificates after %v: %+v, want %v", within, certs, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitFree waits until the challenge ports are free (another test using
// Pebble may hold them for a moment).
func waitFree(t *testing.T, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for _, a := range addrs {
		for {
			ln, err := net.Listen("tcp", a)
			if err == nil {
				ln.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s stays taken: %v", a, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
}
