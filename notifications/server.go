package notifications

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// MaxBody is the largest webhook body accepted; providers' payloads are far
// smaller, and a bigger one gets 413 before any of it is kept.
const MaxBody = 1 << 20

// Timeouts the caller should give the http.Server that serves a Server
// (HTTPServer does): a client that sends its headers slowly cannot hold a
// connection for long. ReadTimeout bounds the other handlers that share
// the http.Server; the webhook handler sets its own deadline for each
// bodyChunk of a body (ServerOptions.BodyTimeout).
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
)

// DefaultBodyTimeout is how long a client may take over each bodyChunk of
// its body: a sender that stalls loses its connection within seconds,
// while a 1 MiB body still has a minute on a slow link.
const DefaultBodyTimeout = 5 * time.Second

// bodyChunk is the part of a body each read deadline covers, and the most
// readBody allocates ahead of what has arrived.
const bodyChunk = 64 << 10

// Limits cap the bodies read before their sender can be checked: github,
// gitea and generic sources sign the body, so it must be read first, and
// a stranger who opens many slow requests would otherwise hold up to
// MaxBody of memory each. A request beyond a cap gets 503 with
// Retry-After at once, before any of its body is read. (gitlab, nextcloud
// and slack sources are checked on their headers or path before the body
// is read, so strangers never reach these caps' bodies there.) A field of
// 0 or less takes its default.
type Limits struct {
	Total      int `yaml:"total"`       // in all; default 16
	PerSource  int `yaml:"per_source"`  // per source name; default 8
	PerAddress int `yaml:"per_address"` // per client address (IPv6: per /64); default 4
}

// DefaultLimits keep the bodies of strangers under 16 MiB in all, and let
// one address hold a quarter of that: others still get in.
var DefaultLimits = Limits{Total: 16, PerSource: 8, PerAddress: 4}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.Total <= 0 {
		l.Total = DefaultLimits.Total
	}
	if l.PerSource <= 0 {
		l.PerSource = DefaultLimits.PerSource
	}
	if l.PerAddress <= 0 {
		l.PerAddress = DefaultLimits.PerAddress
	}
	return l
}

// ServerOptions configure a Server.
type ServerOptions struct {
	Sources []Source
	Store   *Store
	// OnEvent is called with each fresh event once it is stored, before
	// the 2xx. It runs on the request's goroutine and must not block (for
	// example a non-blocking send that wakes the consumer, which reads
	// Store.Pending): the event is already safe, so a missed wake-up is
	// caught by the consumer's next read.
	OnEvent func(Event)
	// OnResult, when set, hears how each request to a known source ended
	// (the HTTP status and a short reason), for the hooks command.
	OnResult func(source string, at time.Time, status int, reason string)
	Logger   *slog.Logger
	Now      func() time.Time // for tests; default time.Now
	// Limits cap the bodies read before their signature is checked.
	Limits Limits
	// BodyTimeout is how long a client may take over each 64 KiB of its
	// body; 0 is DefaultBodyTimeout.
	BodyTimeout time.Duration
}

// Server is the webhook endpoint: POST /hooks/<source> (slack:
// /hooks/<source>/<secret>). It verifies, parses, stores, and only then
// answers 2xx: 202 for a fresh event, 200 {"duplicate":true} for a replay.
type Server struct {
	sources  map[string]Source
	store    *Store
	onEvent  func(Event)
	onResult func(source string, at time.Time, status int, reason string)
	log      *slog.Logger
	now      func() time.Time
	unsigned *admission
	bodyWait time.Duration
}

var _ http.Handler = (*Server)(nil)

// NewServer checks every source and refuses duplicate names.
func NewServer(o ServerOptions) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("webhook server: no store")
	}
	s := &Server{sources: map[string]Source{}, store: o.Store, onEvent: o.OnEvent, onResult: o.OnResult, log: o.Logger, now: o.Now,
		unsigned: newAdmission(o.Limits.withDefaults()), bodyWait: o.BodyTimeout}
	if s.bodyWait <= 0 {
		s.bodyWait = DefaultBodyTimeout
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.onEvent == nil {
		s.onEvent = func(Event) {}
	}
	if s.onResult == nil {
		s.onResult = func(string, time.Time, int, string) {}
	}
	var errs []error
	for _, src := range o.Sources {
		if err := src.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := s.sources[src.Name]; dup {
			errs = append(errs, fmt.Errorf("source %s: defined twice", src.Name))
			continue
		}
		s.sources[src.Name] = src
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("webhook sources: %w", err)
	}
	return s, nil
}

// HTTPServer returns an http.Server for addr with the timeouts above.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr: addr, Handler: s,
		ReadHeaderTimeout: ReadHeaderTimeout, ReadTimeout: ReadTimeout,
		WriteTimeout: WriteTimeout, IdleTimeout: IdleTimeout,
		MaxHeaderBytes: 64 << 10,
	}
}

// URL is the path at which src is reached, for help and the hooks command.
// A slack source's path holds its secret: show it only to admins.
func URL(src Source) string {
	if src.Kind == KindSlack {
		return "/hooks/" + src.Name + "/" + src.Secret
	}
	return "/hooks/" + src.Name
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/hooks/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, pathSecret, hasSecret := strings.Cut(rest, "/")
	src, ok := s.sources[name]
	if !ok || (hasSecret && src.Kind != KindSlack) {
		http.NotFound(w, r)
		return
	}
	// Never log r.URL: for slack it holds the secret.
	// Built only when needed: most requests are accepted, and logged once.
	log := func() *slog.Logger { return s.log.With("source", src.Name, "kind", src.Kind, "remote", r.RemoteAddr) }
	raw := w // for MaxBytesReader, which tells the server to close the connection
	rw := &resultWriter{ResponseWriter: w}
	defer func() { s.onResult(src.Name, s.now(), rw.status, rw.reason) }()
	w = rw
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if r.ContentLength > MaxBody {
		// Announced too big: refuse without reading any of it.
		log().Warn("refusing a webhook: body too large", "limit", MaxBody, "length", r.ContentLength)
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	headerChecked := !src.signsBody()
	verified := func() {} // gives back the place of an unverified body
	if headerChecked {
		// A token or path secret: check it before reading any body, so a
		// stranger's body is never read at all.
		if err := src.Verify(r.Header, nil, pathSecret, s.now()); err != nil {
			log().Warn("refusing a webhook", "err", err)
			w.Header().Set("Connection", "close")
			http.Error(w, "signature check failed", http.StatusUnauthorized)
			return
		}
	} else {
		addr := clientKey(r.RemoteAddr)
		if !s.unsigned.enter(src.Name, addr) {
			if s.unsigned.shouldLog(time.Now()) {
				log().Warn("refusing webhooks: too many unverified bodies being read (more refusals in the next 10 s are not logged)",
					"limits", fmt.Sprintf("%+v", s.unsigned.lim))
			}
			// At once and without reading the body; the connection closes.
			w.Header().Set("Retry-After", retryAfter)
			w.Header().Set("Connection", "close")
			http.Error(w, "busy: too many requests being read, try again later", http.StatusServiceUnavailable)
			return
		}
		// Given back once the signature is checked, or however the
		// request ends; not held while the event is stored.
		verified = sync.OnceFunc(func() { s.unsigned.leave(src.Name, addr) })
		defer verified()
	}
	body, err := s.readBody(raw, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		var nerr net.Error
		switch {
		case errors.As(err, &tooBig):
			log().Warn("refusing a webhook: body too large", "limit", MaxBody)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		case errors.As(err, &nerr) && nerr.Timeout():
			log().Warn("refusing a webhook: body sent too slowly", "per", bodyChunk, "timeout", s.bodyWait)
			w.Header().Set("Connection", "close")
			http.Error(w, "body sent too slowly", http.StatusRequestTimeout)
		default:
			log().Warn("reading a webhook body", "err", err)
			http.Error(w, "cannot read body", http.StatusBadRequest)
		}
		return
	}
	now := s.now()
	if !headerChecked {
		if err := src.Verify(r.Header, body, pathSecret, now); err != nil {
			// err is a *SignatureError: it names no secret.
			log().Warn("refusing a webhook", "err", err)
			http.Error(w, "signature check failed", http.StatusUnauthorized)
			return
		}
		verified()
	}
	ev, err := src.parse(r.Header, body, now, false)
	if err != nil {
		log().Warn("refusing a webhook", "err", err)
		http.Error(w, "cannot parse the payload", http.StatusBadRequest)
		return
	}
	fresh, err := s.store.Accept(ev, src.ReplayKeys(ev, body)...)
	if err != nil {
		// No 2xx: the provider retries, and nothing is lost.
		log().Error("storing a webhook", "id", ev.ID, "err", err)
		http.Error(w, "cannot store the event", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !fresh {
		rw.reason = "a replay, dropped"
		log().Info("webhook replay dropped", "id", ev.ID)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"duplicate":true}`+"\n")
		return
	}
	rw.reason = "accepted"
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "webhook accepted", slog.String("source", src.Name), slog.String("kind", src.Kind),
		slog.String("remote", r.RemoteAddr), slog.String("id", ev.ID), slog.String("type", ev.Type), slog.String("project", ev.Project))
	s.onEvent(ev)
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"accepted":true}`+"\n")
}

// retryAfter is the Retry-After of a 503: the bodies being read are done
// or cut off within seconds.
const retryAfter = "5"

// readBody reads the whole body, at most MaxBody. It allocates as the
// bytes arrive, never more than bodyChunk ahead of them, whatever length
// the client announces, and gives the client s.bodyWait for each
// bodyChunk: a client that stalls is cut off in seconds.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	deadline := func(d time.Duration) error {
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return fmt.Errorf("setting the body's read deadline: %w", err)
		}
		return nil
	}
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	size := int64(MaxBody)
	if r.ContentLength >= 0 {
		size = min(r.ContentLength, MaxBody)
	}
	buf := make([]byte, 0, min(size, 4<<10))
	next := 0 // where the current chunk's deadline ends
	// Until all announced bytes are here: the body reader stops there.
	for int64(len(buf)) != size || r.ContentLength < 0 {
		if len(buf) >= next {
			if err := deadline(s.bodyWait); err != nil {
				return nil, err
			}
			next = len(buf) + bodyChunk
		}
		if len(buf) == cap(buf) {
			// Double, but never past the announced size or a chunk ahead.
			// (A chunked body may reach MaxBody+1: MaxBytesReader's cue.)
			grown := make([]byte, len(buf), min(int64(2*cap(buf)), int64(cap(buf)+bodyChunk), max(size, int64(cap(buf)+1))))
			copy(grown, buf)
			buf = grown
		}
		n, err := body.Read(buf[len(buf):min(cap(buf), next)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	// The rest of the request (writing the answer) is the server's usual
	// business: the body may have taken longer than its WriteTimeout.
	if err := deadline(ReadTimeout); err != nil {
		return nil, err
	}
	if err := rc.SetWriteDeadline(time.Now().Add(WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return nil, fmt.Errorf("setting the answer's write deadline: %w", err)
	}
	return buf, nil
}

// admission counts the bodies being read before their sender is checked.
type admission struct {
	lim      Limits
	mu       sync.Mutex
	total    int
	bySource map[string]int
	byAddr   map[string]int
	logged   time.Time // the last refusal logged
}

func newAdmission(lim Limits) *admission {
	return &admission{lim: lim, bySource: map[string]int{}, byAddr: map[string]int{}}
}

// enter takes a place for a body from addr to source, if every cap allows.
func (a *admission) enter(source, addr string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.total >= a.lim.Total || a.bySource[source] >= a.lim.PerSource || a.byAddr[addr] >= a.lim.PerAddress {
		return false
	}
	a.total++
	a.bySource[source]++
	a.byAddr[addr]++
	return true
}

// leave gives back a place that enter took.
func (a *admission) leave(source, addr string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if a.bySource[source]--; a.bySource[source] <= 0 {
		delete(a.bySource, source)
	}
	if a.byAddr[addr]--; a.byAddr[addr] <= 0 {
		delete(a.byAddr, addr)
	}
}

// shouldLog tells whether a refusal at now is logged: one in 10 s, so a
// flood of refusals does not flood the log too.
func (a *admission) shouldLog(now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.logged) < 10*time.Second {
		return false
	}
	a.logged = now
	return true
}

// clientKey is the address a request's caps count by: the IP, and for
// IPv6 its /64, which one host usually holds whole.
func clientKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// resultWriter remembers the status a handler answered and the first line
// of its body, which says why in a few words.
type resultWriter struct {
	http.ResponseWriter
	status int
	reason string
}

// Unwrap lets http.ResponseController reach the connection.
func (w *resultWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *resultWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *resultWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.reason == "" {
		w.reason, _, _ = strings.Cut(strings.TrimSpace(string(b)), "\n")
	}
	return w.ResponseWriter.Write(b)
}
