package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// echo is what a test backend answers: who it is and what it received.
type echo struct {
	Name, Host, Path, XFF, XFProto, XFHost string
}

func newBackend(t *testing.T, name string) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				mt, msg, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(mt, append([]byte(name+":"), msg...)); err != nil {
					return
				}
			}
		}
		_ = json.NewEncoder(w).Encode(echo{
			Name: name, Host: r.Host, Path: r.URL.Path,
			XFF: r.Header.Get("X-Forwarded-For"), XFProto: r.Header.Get("X-Forwarded-Proto"), XFHost: r.Header.Get("X-Forwarded-Host"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// tlsRouter serves a router over TLS (httptest's certificate): the
// proxying is tested apart from certificates.
func tlsRouter(t *testing.T, routes []Route) (*router, *httptest.Server) {
	t.Helper()
	rt := newRouter(testLogger(t))
	tb, res := buildTable(routes)
	if len(res.Rejected) > 0 {
		t.Fatalf("rejected: %v", res.Rejected)
	}
	rt.setTable(tb)
	srv := httptest.NewUnstartedServer(rt)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return rt, srv
}

func get(t *testing.T, c *http.Client, base, host, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestRouterServes(t *testing.T) {
	wekan, front, api, events := newBackend(t, "wekan"), newBackend(t, "taiga-front"), newBackend(t, "taiga-back"), newBackend(t, "taiga-events")
	_, srv := tlsRouter(t, []Route{
		{Host: "wekan.example.com", Aliases: []string{"boards.example.org"}, Minion: "wekan", Backend: wekan, State: StateUp},
		{Host: "taiga.example.com", Minion: "taiga", Backend: front, State: StateUp,
			Paths: []Path{{Prefix: "/api", Backend: api}, {Prefix: "/events", Backend: events}}},
		{Host: "kibana.example.com", Minion: "kibana", Backend: wekan, State: "stopped"},
		{Host: "gitlab.example.com", Minion: "gitlab", Backend: refusedAddr(t), State: StateUp},
		{Host: "ghost.example.com", Minion: "ghost", State: "down"},
		{Host: "half.example.com", Minion: "half", Backend: front, State: StateUp, Paths: []Path{{Prefix: "/api"}}},
	})
	c := srv.Client()
	tests := []struct {
		name, host, path string
		code             int
		backend          string // the echo's name, for 200s
		body             string // a substring, for pages
		notBody          []string
	}{
		{name: "host", host: "wekan.example.com", path: "/b/1", code: 200, backend: "wekan"},
		{name: "alias and port", host: "BOARDS.example.org:443", path: "/", code: 200, backend: "wekan"},
		{name: "default backend of a host with paths", host: "taiga.example.com", path: "/project/x", code: 200, backend: "taiga-front"},
		{name: "path prefix", host: "taiga.example.com", path: "/api/v1/auth", code: 200, backend: "taiga-back"},
		{name: "path prefix exact", host: "taiga.example.com", path: "/events", code: 200, backend: "taiga-events"},
		{name: "prefix is not a string prefix", host: "taiga.example.com", path: "/eventsource", code: 200, backend: "taiga-front"},
		{name: "unknown host", host: "other.example.com", path: "/", code: 404, body: "Nothing is served", notBody: []string{"wekan", "taiga", "kibana", "gitlab"}},
		{name: "stopped minion", host: "kibana.example.com", path: "/app", code: 503, body: "kibana is stopped", notBody: []string{"wekan"}},
		{name: "backend refusing", host: "gitlab.example.com", path: "/", code: 503, body: "gitlab is not answering", notBody: []string{"wekan"}},
		{name: "down minion with no backend yet", host: "ghost.example.com", path: "/", code: 503, body: "ghost is down", notBody: []string{"wekan"}},
		{name: "path whose service does not run", host: "half.example.com", path: "/api/x", code: 503, body: "the service behind /api/x does not run", notBody: []string{"taiga-front"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, c, srv.URL, tt.host, tt.path)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.code, body)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != hsts {
				t.Errorf("HSTS = %q", got)
			}
			if tt.backend != "" {
				var e echo
				if err := json.Unmarshal([]byte(body), &e); err != nil {
					t.Fatalf("%v: %s", err, body)
				}
				if e.Name != tt.backend || e.Path != tt.path {
					t.Errorf("reached %s at %s, want %s at %s", e.Name, e.Path, tt.backend, tt.path)
				}
				if e.Host != tt.host {
					t.Errorf("backend saw Host %q, want the original %q", e.Host, tt.host)
				}
				if e.XFF != "127.0.0.1" || e.XFProto != "https" || e.XFHost != tt.host {
					t.Errorf("X-Forwarded-For/Proto/Host = %q %q %q", e.XFF, e.XFProto, e.XFHost)
				}
			}
			if !strings.Contains(body, tt.body) {
				t.Errorf("body %q does not contain %q", body, tt.body)
			}
			for _, n := range tt.notBody {
				if strings.Contains(body, n) {
					t.Errorf("body names %q: %s", n, body)
				}
			}
		})
	}
}

// wsDialer dials the router over TLS, trusting its test certificate.
func wsDialer(srv *httptest.Server) *websocket.Dialer {
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return &websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "example.com"}, HandshakeTimeout: 5 * time.Second}
}

func wsURL(srv *httptest.Server, path string) string {
	return "wss://" + srv.Listener.Addr().String() + path
}

func echoOnce(t *testing.T, c *websocket.Conn, msg, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatalf("writing: %v", err)
	}
	_, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading: %v", err)
	}
	if string(got) != want {
		t.Fatalf("echo %q, want %q", got, want)
	}
}

func TestWebsocketSurvivesTableSwaps(t *testing.T) {
	chat, other := newBackend(t, "chat"), newBackend(t, "other")
	chatRoute := Route{Host: "chat.example.com", Minion: "mattermost", Backend: chat, State: StateUp}
	rt, srv := tlsRouter(t, []Route{chatRoute, {Host: "other.example.com", Minion: "other", Backend: other, State: StateUp}})

	conn, resp, err := wsDialer(srv).Dial(wsURL(srv, "/api/v4/websocket"), http.Header{"Host": {"chat.example.com"}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	defer conn.Close()
	echoOnce(t, conn, "hello", "chat:hello")

	// Swap the table many times, changing, stopping and removing the other
	// route, while the websocket stays open.
	for i := range 51 { // ends on case 2: other.example.com gone
		var routes []Route
		switch i % 3 {
		case 0:
			routes = []Route{chatRoute}
		case 1:
			routes = []Route{chatRoute, {Host: "other.example.com", Minion: "other", Backend: other, State: "stopped"}}
		case 2:
			routes = []Route{{Host: "new.example.com", Minion: "new", Backend: other, State: StateUp}, chatRoute}
		}
		tb, _ := buildTable(routes)
		rt.setTable(tb)
		echoOnce(t, conn, "ping", "chat:ping")
	}
	// A request to the other host sees the last table.
	resp2, body := get(t, srv.Client(), srv.URL, "other.example.com", "/")
	if resp2.StatusCode != http.StatusNotFound {
		t.Errorf("other host: %d %s", resp2.StatusCode, body)
	}
}

// TestWebsocketThroughRunningTable checks an upgrade is proxied at all
// (ReverseProxy hands the connection over) for a path route.
func TestWebsocketOnPathRoute(t *testing.T) {
	front, events := newBackend(t, "front"), newBackend(t, "events")
	_, srv := tlsRouter(t, []Route{{Host: "taiga.example.com", Minion: "taiga", Backend: front, State: StateUp, Paths: []Path{{Prefix: "/events", Backend: events}}}})
	conn, _, err := wsDialer(srv).Dial(wsURL(srv, "/events"), http.Header{"Host": {"taiga.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoOnce(t, conn, "x", "events:x")
}

func TestRedirectToHTTPS(t *testing.T) {
	tests := []struct{ port, host, target, want string }{
		{"443", "wekan.example.com", "/a/b?c=d", "https://wekan.example.com/a/b?c=d"},
		{"443", "Wekan.Example.com:80", "/", "https://wekan.example.com/"},
		{"8443", "wekan.example.com:8080", "/x%2Fy", "https://wekan.example.com:8443/x%2Fy"},
	}
	for _, tt := range tests {
		t.Run(tt.host+tt.target, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://"+tt.host+tt.target, nil)
			w := httptest.NewRecorder()
			redirectHandler(tt.port).ServeHTTP(w, r)
			if w.Code != http.StatusPermanentRedirect || w.Header().Get("Location") != tt.want {
				t.Errorf("%d %q, want 308 %q", w.Code, w.Header().Get("Location"), tt.want)
			}
		})
	}
}

// TestSlowBackendIsNotCut: no overall timeout on proxied requests, and a
// long response keeps streaming while the table changes.
func TestStreamingAcrossSwap(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("first\n")) // a lost write shows in the client's reads
		w.(http.Flusher).Flush()
		<-release
		_, _ = w.Write([]byte("second\n"))
	}))
	t.Cleanup(slow.Close)
	route := Route{Host: "slow.example.com", Minion: "slow", Backend: slow.Listener.Addr().String(), State: StateUp}
	rt, srv := tlsRouter(t, []Route{route})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/", nil)
	req.Host = "slow.example.com"
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	if _, err := io.ReadFull(resp.Body, buf); err != nil || string(buf) != "first\n" {
		t.Fatalf("first chunk %q %v (not flushed?)", buf, err)
	}
	tb, _ := buildTable([]Route{route, {Host: "b.example.com", Minion: "b", Backend: "127.0.0.1:9", State: "down"}})
	rt.setTable(tb)
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second\n" {
		t.Fatalf("rest %q %v", rest, err)
	}
}
