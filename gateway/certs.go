package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3/acme"
)

// CertStatus is the certificate of one host.
type CertStatus struct {
	Host     string    `json:"host"`
	Issuer   string    `json:"issuer,omitempty"` // the certificate's issuer CN
	NotAfter time.Time `json:"not_after,omitempty"`
	// Status is "valid" (a certificate is served), "obtaining" or
	// "failed". A valid certificate with an Error is one whose last
	// renewal failed: it is still served, and renewal is retried.
	Status string `json:"status"`
	// Error is for humans: "DNS for wekan.example.com does not point
	// here", "port 80 is not reachable from the CA", "the CA's rate
	// limit", or the CA's own words.
	Error   string    `json:"error,omitempty"`
	NextTry time.Time `json:"next_try,omitempty"`
}

// Certificate states.
const (
	CertValid     = "valid"
	CertObtaining = "obtaining"
	CertFailed    = "failed"
)

// retryIntervals mirrors certmagic's backoff (async.go, unexported) to
// tell when the next attempt after a failure comes.
var retryIntervals = []time.Duration{
	1 * time.Minute, 2 * time.Minute, 2 * time.Minute, 5 * time.Minute,
	10 * time.Minute, 10 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 20 * time.Minute, 20 * time.Minute, 20 * time.Minute,
	30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute, 30 * time.Minute,
	time.Hour, time.Hour, time.Hour, 2 * time.Hour, 2 * time.Hour, 3 * time.Hour, 3 * time.Hour,
	6 * time.Hour,
}

// hostState is what the events told about one managed host.
type hostState struct {
	cancel   context.CancelFunc // stops its obtain loop
	status   string             // obtaining or failed, when no certificate is cached
	err      string
	failures int
	attempts int // cert_obtaining events: orders started at the CA
	nextTry  time.Time
}

// certManager keeps certificates for exactly the hosts of the route table.
//
// certmagic's ManageAsync queues an obtain job that retries with
// exponential backoff for up to 30 days, and (for obtains) does not
// de-duplicate jobs: calling it again for a host whose certificate is
// failing would start a second loop. So each host is managed once, under
// its own context, until it leaves the table; then its loop is cancelled
// and its certificate leaves maintenance.
type certManager struct {
	cfg    *certmagic.Config
	cache  *certmagic.Cache
	issuer *certmagic.ACMEIssuer
	log    *slog.Logger
	ports  challengePorts

	mu      sync.Mutex
	base    context.Context
	hosts   map[string]*hostState
	retired map[string]retiredCert // hosts removed from the table, whose certificate still answers 404 over TLS
	starts  int                    // ManageAsync calls, for tests
}

// retiredCert is a removed host's certificate, kept unmanaged in the cache.
type retiredCert struct {
	hash     string
	notAfter time.Time
}

type challengePorts struct {
	host            string
	httpPort, tlsPt int
}

func newCertManager(ctx context.Context, o Options, ports challengePorts) (*certManager, error) {
	zl := newZapLogger(o.baseLogger.With("component", "certmagic"))
	m := &certManager{
		log:     o.Logger,
		ports:   ports,
		base:    ctx,
		hosts:   map[string]*hostState{},
		retired: map[string]retiredCert{},
	}
	var roots *x509.CertPool
	pem, where := o.CARootPEM, "the CA's root"
	if o.CARootFile != "" {
		var err error
		if pem, err = os.ReadFile(o.CARootFile); err != nil {
			return nil, fmt.Errorf("reading the CA's root: %w", err)
		}
		where = o.CARootFile
	}
	if len(pem) > 0 {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no PEM certificate in %s", where)
		}
	}
	var cfg *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zl,
	})
	cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.StorageDir},
		OnEvent: m.onEvent,
		Logger:  zl,
	})
	m.issuer = certmagic.NewACMEIssuer(cfg, certmagic.ACMEIssuer{
		CA:             o.CA,
		Email:          o.Email,
		Agreed:         true,
		TrustedRoots:   roots,
		ListenHost:     ports.host,
		AltHTTPPort:    ports.httpPort,
		AltTLSALPNPort: ports.tlsPt,
		Logger:         zl,
	})
	cfg.Issuers = []certmagic.Issuer{m.issuer}
	m.cfg = cfg
	return m, nil
}

// stop ends maintenance; the obtain loops end with the base context.
func (m *certManager) stop() { m.cache.Stop() }

// sync manages the hosts new to the table and unmanages those that left.
// Hosts already managed are left alone, so an unchanged table sent again
// starts nothing at the CA.
func (m *certManager) sync(names []string) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for h, st := range m.hosts {
		if want[h] {
			continue
		}
		st.cancel()
		delete(m.hosts, h)
		m.retire(h)
	}
	for h, rc := range m.retired {
		if time.Now().After(rc.notAfter) {
			m.cache.Remove([]string{rc.hash}) // never serve an expired certificate
			delete(m.retired, h)
		}
	}
	for _, h := range names {
		if _, ok := m.hosts[h]; ok {
			continue
		}
		if rc, ok := m.retired[h]; ok {
			m.cache.Remove([]string{rc.hash})
			delete(m.retired, h)
		}
		ctx, cancel := context.WithCancel(m.base)
		m.hosts[h] = &hostState{cancel: cancel, status: CertObtaining}
		m.starts++
		if err := m.cfg.ManageAsync(ctx, []string{h}); err != nil {
			m.hosts[h].status, m.hosts[h].err = CertFailed, err.Error()
			m.log.Error("managing certificate", "host", h, "err", err)
		}
	}
}

// retire takes a host's certificate out of maintenance (no renewal, no
// CA traffic) but keeps serving it, unmanaged, until it expires, so the
// host answers the 404 page over valid TLS rather than a handshake error.
func (m *certManager) retire(h string) {
	var keep *certmagic.Certificate
	for _, c := range m.cache.AllMatchingCertificates(h) {
		if c.Leaf != nil && time.Now().Before(c.Leaf.NotAfter) && containsName(c.Names, h) {
			c := c
			keep = &c
			break
		}
	}
	m.cache.RemoveManaged([]certmagic.SubjectIssuer{{Subject: h}})
	if keep == nil {
		return
	}
	hash, err := m.cfg.CacheUnmanagedTLSCertificate(m.base, keep.Certificate, []string{"retired"})
	if err != nil {
		m.log.Warn("keeping a retired certificate", "host", h, "err", err)
		return
	}
	m.retired[h] = retiredCert{hash: hash, notAfter: keep.Leaf.NotAfter}
}

func containsName(names []string, h string) bool {
	for _, n := range names {
		if strings.EqualFold(n, h) {
			return true
		}
	}
	return false
}

// onEvent keeps the per-host status from certmagic's events. It is
// called synchronously by certmagic: it only takes a lock and returns.
func (m *certManager) onEvent(_ context.Context, event string, data map[string]any) error {
	host, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining", "cert_obtained", "cert_failed":
	default:
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st, ok := m.hosts[host]
	if !ok {
		return nil // not (or no longer) in the table
	}
	switch event {
	case "cert_obtaining":
		st.status = CertObtaining
		st.attempts++
		m.log.Info("obtaining certificate", "host", host, "renewal", data["renewal"] == true)
	case "cert_obtained":
		st.status, st.err, st.failures, st.nextTry = CertValid, "", 0, time.Time{}
		m.log.Info("certificate obtained", "host", host, "renewal", data["renewal"] == true)
	case "cert_failed":
		err, _ := data["error"].(error)
		if errors.Is(err, context.Canceled) {
			return nil
		}
		st.status = CertFailed
		st.err = plainCertError(host, err)
		st.nextTry = time.Now().Add(retryIntervals[min(st.failures, len(retryIntervals)-1)])
		st.failures++
		m.log.Warn("certificate failed", "host", host, "why", st.err, "next_try", st.nextTry, "err", err)
	}
	return nil
}

// statuses reports every managed host: valid ones with their issuer and
// expiry from the cache, the others with what the events said.
func (m *certManager) statuses() []CertStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]CertStatus, 0, len(m.hosts))
	for h, st := range m.hosts {
		cs := CertStatus{Host: h, Status: st.status, Error: st.err, NextTry: st.nextTry}
		if leaf := m.servedLeaf(h); leaf != nil {
			cs.Status, cs.Issuer, cs.NotAfter = CertValid, leaf.Issuer.CommonName, leaf.NotAfter
		} else if cs.Status == CertValid {
			cs.Status = CertObtaining // obtained, not yet in the cache
		}
		out = append(out, cs)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out
}

// servedLeaf is the newest unexpired managed certificate for h.
func (m *certManager) servedLeaf(h string) *x509.Certificate {
	var best *x509.Certificate
	for _, c := range m.cache.AllMatchingCertificates(h) {
		if c.Leaf == nil || c.HasTag("retired") || time.Now().After(c.Leaf.NotAfter) {
			continue
		}
		if best == nil || c.Leaf.NotAfter.After(best.NotAfter) {
			best = c.Leaf
		}
	}
	return best
}

// looksUnreachable tells a CA's words for "could not connect".
func looksUnreachable(detail string) bool {
	d := strings.ToLower(detail)
	for _, w := range []string{"failed to connect", "connection refused", "timeout", "timed out", "no route to host", "network is unreachable"} {
		if strings.Contains(d, w) {
			return true
		}
	}
	return false
}

// plainCertError turns an ACME failure into words for the ops channel.
func plainCertError(host string, err error) string {
	if err == nil {
		return "unknown error"
	}
	var p acme.Problem
	var pp *acme.Problem
	switch {
	case errors.As(err, &p):
	case errors.As(err, &pp) && pp != nil:
		p = *pp
	default:
		return err.Error()
	}
	detail := p.Detail
	if detail == "" {
		detail = p.Title
	}
	kind := strings.TrimPrefix(p.Type, acme.ProblemTypeNamespace)
	if (kind == "unauthorized" || kind == "tls") && looksUnreachable(detail) {
		kind = "connection" // Pebble and Boulder word some TLS-ALPN dial failures so
	}
	switch kind {
	case "dns":
		return fmt.Sprintf("DNS for %s does not point here (the CA says: %s)", host, detail)
	case "connection":
		port := "80"
		if strings.Contains(detail, "tls-alpn") {
			port = "443"
		}
		return fmt.Sprintf("port %s is not reachable from the CA for %s (the CA says: %s)", port, host, detail)
	case "tls":
		return fmt.Sprintf("the CA could not make a TLS connection to %s on port 443 (the CA says: %s)", host, detail)
	case "rateLimited":
		return fmt.Sprintf("the CA's rate limit was reached for %s; it is retried later (the CA says: %s)", host, detail)
	case "unauthorized", "incorrectResponse":
		return fmt.Sprintf("the CA could not validate %s: check that its DNS points here and that ports 80 and 443 reach this gateway (the CA says: %s)", host, detail)
	case "caa":
		return fmt.Sprintf("a CAA record for %s forbids this CA (the CA says: %s)", host, detail)
	case "rejectedIdentifier", "unsupportedIdentifier":
		return fmt.Sprintf("the CA will not issue for %s (the CA says: %s)", host, detail)
	}
	if detail != "" {
		return "the CA says: " + detail
	}
	return err.Error()
}
