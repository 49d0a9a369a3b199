// Package acmetest gives integration tests the local ACME server that
// .ci/pebble.sh starts: Pebble, which validates challenges for real, and
// pebble-challtestsrv, the DNS server Pebble asks.
//
// Without SUMMONER_IT_ACME_DIR the tests skip, unless SUMMONER_INTEGRATION=1
// (as in CI), where a missing server is a failure.
//
// Pebble resolves every name to 127.0.0.1 (IPv4 only) unless a test sets
// another address with Resolve, and validates HTTP-01 on HTTPPort and
// TLS-ALPN-01 on TLSPort of that address: the gateway under test listens
// there. Certificates it issues chain to RootsPEM (the chain it serves holds
// the intermediate); Pebble's own HTTPS uses another root, CARootFile.
package acmetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/itgate"
)

// Env is the running Pebble and its DNS server.
type Env struct {
	Directory  string // ACME directory URL
	CARootFile string // PEM file to trust for Pebble's own HTTPS (the minica root)
	// RootsPEM is the root that signs issued certificates (GET <mgmt>/roots/0).
	// Pebble makes a new one each time it starts.
	RootsPEM []byte
	// IntermediatesPEM is the intermediate between RootsPEM and issued
	// certificates (GET <mgmt>/intermediates/0); Pebble also serves it in the
	// certificate chain.
	IntermediatesPEM []byte
	HTTPPort         int    // where Pebble validates HTTP-01: the gateway under test listens there
	TLSPort          int    // where Pebble validates TLS-ALPN-01
	Management       string // Pebble's management API, https://127.0.0.1:15000
	ChallTest        string // pebble-challtestsrv's management API, http://127.0.0.1:8055
	DNS              string // pebble-challtestsrv's DNS server, 127.0.0.1:8053 (what Pebble asks)

	client *http.Client // trusts CARootFile
}

const hint = "run `bash .ci/pebble.sh start` and source /var/tmp/summoner-ci/pebble.env"

// Require returns the ACME server, or skips (fails, in CI) without one.
func Require(t testing.TB) *Env {
	t.Helper()
	dir := os.Getenv("SUMMONER_IT_ACME_DIR")
	if dir == "" {
		itgate.Skip(t, "SUMMONER_IT_ACME_DIR is not set (no ACME test server): %s", hint)
	}
	e := &Env{
		Directory:  dir,
		CARootFile: os.Getenv("SUMMONER_IT_ACME_CA_ROOT"),
		Management: strings.TrimSuffix(os.Getenv("SUMMONER_IT_ACME_MGMT"), "/"),
		ChallTest:  strings.TrimSuffix(os.Getenv("SUMMONER_IT_ACME_CHALLTEST"), "/"),
		DNS:        os.Getenv("SUMMONER_IT_ACME_DNS"),
	}
	if e.DNS == "" {
		e.DNS = "127.0.0.1:8053"
	}
	for name, v := range map[string]string{"SUMMONER_IT_ACME_CA_ROOT": e.CARootFile, "SUMMONER_IT_ACME_MGMT": e.Management, "SUMMONER_IT_ACME_CHALLTEST": e.ChallTest} {
		if v == "" {
			t.Fatalf("SUMMONER_IT_ACME_DIR is set but %s is not: %s", name, hint)
		}
	}
	var err error
	if e.HTTPPort, err = port("SUMMONER_IT_ACME_HTTP_PORT", 5002); err != nil {
		t.Fatal(err)
	}
	if e.TLSPort, err = port("SUMMONER_IT_ACME_TLS_PORT", 5001); err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(e.CARootFile)
	if err != nil {
		t.Fatalf("Pebble's HTTPS root: %v (%s)", err, hint)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("Pebble's HTTPS root %s: no certificate in it", e.CARootFile)
	}
	e.client = &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{Proxy: nil, TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	t.Cleanup(e.client.CloseIdleConnections)
	if e.RootsPEM, err = e.get(e.Management + "/roots/0"); err != nil {
		t.Fatalf("Pebble's issuing root: %v (%s)", err, hint)
	}
	if e.IntermediatesPEM, err = e.get(e.Management + "/intermediates/0"); err != nil {
		t.Fatalf("Pebble's intermediate: %v", err)
	}
	return e
}

func port(name string, def int) (int, error) {
	v := os.Getenv(name)
	if v == "" {
		return def, nil
	}
	p, err := strconv.Atoi(v)
	if err != nil || p <= 0 || p > 65535 {
		return 0, fmt.Errorf("%s=%q: not a port", name, v)
	}
	return p, nil
}

func (e *Env) get(url string) ([]byte, error) {
	resp, err := e.client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// HTTPClient is a client that trusts Pebble's own HTTPS certificate (for
// the directory and the management API), not the certificates it issues.
func (e *Env) HTTPClient() *http.Client { return e.client }

// Resolve makes Pebble's DNS answer ipv4 for host (A records only; there
// are no AAAA answers at all), until the test ends.
func (e *Env) Resolve(t testing.TB, host, ipv4 string) {
	t.Helper()
	fqdn := strings.TrimSuffix(host, ".") + "."
	if err := e.challtest("/add-a", map[string]any{"host": fqdn, "addresses": []string{ipv4}}); err != nil {
		t.Fatalf("Resolve %s: %v", host, err)
	}
	t.Cleanup(func() {
		if err := e.challtest("/clear-a", map[string]any{"host": fqdn}); err != nil {
			t.Logf("clearing the A record of %s: %v", host, err)
		}
	})
}

func (e *Env) challtest(path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.ChallTest+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", e.ChallTest+path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// RootPool holds the root that signs the certificates Pebble issues: trust
// it to reach the gateway under test over HTTPS.
func (e *Env) RootPool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(e.RootsPEM) {
		t.Fatal("Pebble's issuing root: no certificate in RootsPEM")
	}
	return pool
}
