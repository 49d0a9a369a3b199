package acmetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/acme"
)

func TestDirectory(t *testing.T) {
	e := Require(t)
	resp, err := e.HTTPClient().Get(e.Directory)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatalf("directory %s: %v", e.Directory, err)
	}
	for _, k := range []string{"newAccount", "newNonce", "newOrder"} {
		if _, ok := dir[k].(string); !ok {
			t.Errorf("directory %s has no %s: %v", e.Directory, k, dir)
		}
	}
	if e.RootPool(t) == nil || len(e.IntermediatesPEM) == 0 {
		t.Fatal("no issuing root or intermediate")
	}
}

func TestResolve(t *testing.T) {
	e := Require(t)
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, e.DNS)
	}}
	lookup := func(host string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ips, err := r.LookupHost(ctx, host)
		if err != nil {
			t.Fatalf("lookup %s on %s: %v", host, e.DNS, err)
		}
		return fmt.Sprint(ips)
	}
	const host = "resolve.acmetest.summoner.test"
	if got := lookup(host); got != "[127.0.0.1]" {
		t.Fatalf("default answer for %s: %s, want [127.0.0.1]", host, got)
	}
	t.Run("set", func(t *testing.T) {
		e.Resolve(t, host, "127.0.0.2")
		if got := lookup(host); got != "[127.0.0.2]" {
			t.Fatalf("after Resolve: %s, want [127.0.0.2]", got)
		}
	})
	if got := lookup(host); got != "[127.0.0.1]" {
		t.Fatalf("after the cleanup: %s, want [127.0.0.1]", got)
	}
}

// TestIssue gets a certificate by HTTP-01 on e.HTTPPort, as a gateway
// would, and checks that it chains to RootPool.
func TestIssue(t *testing.T) {
	e := Require(t)
	const host = "issue.acmetest.summoner.test"
	e.Resolve(t, host, "127.0.0.1")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &acme.Client{Key: key, DirectoryURL: e.Directory, HTTPClient: e.HTTPClient()}
	if _, err := c.Register(ctx, &acme.Account{}, acme.AcceptTOS); err != nil {
		t.Fatalf("register: %v", err)
	}

	var tokens sync.Map // path -> key authorization
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", e.HTTPPort))
	if err != nil {
		t.Fatalf("HTTP-01 port: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v, ok := tokens.Load(r.URL.Path); ok && strings.TrimSuffix(r.Host, fmt.Sprintf(":%d", e.HTTPPort)) == host {
			_, _ = w.Write([]byte(v.(string))) // a lost answer fails the challenge, which the test sees
			return
		}
		http.NotFound(w, r)
	})}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("HTTP-01 server: %v", err)
		}
	}()
	defer srv.Close()

	order, err := c.AuthorizeOrder(ctx, acme.DomainIDs(host))
	if err != nil {
		t.Fatalf("new order: %v", err)
	}
	for _, u := range order.AuthzURLs {
		z, err := c.GetAuthorization(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		if z.Status == acme.StatusValid {
			continue
		}
		var chal *acme.Challenge
		for _, ch := range z.Challenges {
			if ch.Type == "http-01" {
				chal = ch
			}
		}
		if chal == nil {
			t.Fatalf("no http-01 challenge in %v", z.Challenges)
		}
		resp, err := c.HTTP01ChallengeResponse(chal.Token)
		if err != nil {
			t.Fatal(err)
		}
		tokens.Store(c.HTTP01ChallengePath(chal.Token), resp)
		if _, err := c.Accept(ctx, chal); err != nil {
			t.Fatalf("accept: %v", err)
		}
		if _, err := c.WaitAuthorization(ctx, u); err != nil {
			t.Fatalf("authorization: %v", err)
		}
	}
	// WaitOrder's answer has no URI (no Location header): keep order's.
	if o, err := c.WaitOrder(ctx, order.URI); err != nil {
		t.Fatalf("order: %v", err)
	} else if o.FinalizeURL != "" {
		order.FinalizeURL = o.FinalizeURL
	}
	certKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}}, certKey)
	if err != nil {
		t.Fatal(err)
	}
	der, _, err := c.CreateOrderCert(ctx, order.FinalizeURL, csr, true)
	if err != nil {
		// Pebble answers the finalize request with a "processing" order
		// and no Location header, so x/crypto/acme cannot poll it by
		// itself: poll the order we know, then fetch the certificate.
		o, werr := c.WaitOrder(ctx, order.URI)
		if werr != nil {
			t.Fatalf("finalize: %v; order: %v", err, werr)
		}
		if der, err = c.FetchCert(ctx, o.CertURL, true); err != nil {
			t.Fatalf("certificate: %v", err)
		}
	}
	leaf, err := x509.ParseCertificate(der[0])
	if err != nil {
		t.Fatal(err)
	}
	inter := x509.NewCertPool()
	for _, b := range der[1:] {
		ic, err := x509.ParseCertificate(b)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: e.RootPool(t), Intermediates: inter}); err != nil {
		t.Fatalf("issued certificate does not chain to RootPool: %v", err)
	}
	t.Logf("issued %v by %s, valid until %s", leaf.DNSNames, leaf.Issuer.CommonName, leaf.NotAfter.Format(time.RFC3339))
}
