package notifications

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// MaxBody is the largest webhook body accepted; providers' payloads are far
// smaller, and a bigger one gets 413 before any of it is kept.
const MaxBody = 1 << 20

// Timeouts the caller should give the http.Server that serves a Server
// (HTTPServer does): a client that sends its headers or body slowly cannot
// hold a connection for long.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
)

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
}

var _ http.Handler = (*Server)(nil)

// NewServer checks every source and refuses duplicate names.
func NewServer(o ServerOptions) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("webhook server: no store")
	}
	s := &Server{sources: map[string]Source{}, store: o.Store, onEvent: o.OnEvent, onResult: o.OnResult, log: o.Logger, now: o.Now}
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
	body, err := readBody(w, r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			log().Warn("refusing a webhook: body too large", "limit", MaxBody)
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		log().Warn("reading a webhook body", "err", err)
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	now := s.now()
	if err := src.Verify(r.Header, body, pathSecret, now); err != nil {
		// err is a *SignatureError: it names no secret.
		log().Warn("refusing a webhook", "err", err)
		http.Error(w, "signature check failed", http.StatusUnauthorized)
		return
	}
	ev, err := src.parse(r.Header, body, now, false)
	if err != nil {
		log().Warn("refusing a webhook", "err", err)
		http.Error(w, "cannot parse the payload", http.StatusBadRequest)
		return
	}
	fresh, err := s.store.Accept(ev)
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

// readBody reads the whole body, at most MaxBody. A body of announced
// length is read into one buffer of that size, not grown step by step.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, MaxBody)
	if n := r.ContentLength; n > 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

// resultWriter remembers the status a handler answered and the first line
// of its body, which says why in a few words.
type resultWriter struct {
	http.ResponseWriter
	status int
	reason string
}

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
