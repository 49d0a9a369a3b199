package notifications

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// newLimitServer is a test server with every kind of source and the given
// caps and body timeout.
func newLimitServer(t *testing.T, lim Limits, bodyWait time.Duration) (*Server, string) {
	t.Helper()
	var sources []Source
	for _, k := range allKinds {
		sources = append(sources, Source{Name: "src-" + k, Kind: k, Secret: testSecret})
	}
	srv, err := NewServer(ServerOptions{
		Sources: sources, Store: openTestStore(t, filepath.Join(t.TempDir(), "events.db")),
		Logger: recipeQuiet(), Limits: lim, BodyTimeout: bodyWait,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts.Listener.Addr().String()
}

// dialFrom connects to addr from the local address from (127.0.0.x: all
// of 127/8 is loopback), so one test plays several clients.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatalf("dialing from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// partial sends a request announcing a 1 MiB body and only part of it,
// and leaves the connection open: a stranger holding a place.
func partial(t *testing.T, c net.Conn, path string, header string) {
	t.Helper()
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n", path, header, MaxBody)
	if _, err := io.WriteString(c, head+`{"type":"x","text":"`+strings.Repeat("a", 1000)); err != nil {
		t.Fatal(err)
	}
}

// answer reads the response on c, with a generous deadline.
func answer(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	resp.Body.Close()
	return resp
}

// signedFrom sends a complete, correctly signed generic event from the
// local address from and returns the status.
func signedFrom(t *testing.T, from, addr, source string, body []byte) int {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, a string) (net.Conn, error) { return d.DialContext(ctx, network, a) },
	}}
	defer client.CloseIdleConnections()
	kind := strings.TrimPrefix(source, "src-")
	h, _ := goodHeaders(kind, testSecret, body, time.Now())
	if kind == KindGitHub {
		h.Set("X-GitHub-Event", "push")
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+addr+"/hooks/"+source, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("sending a signed event: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitInFlight waits until the server reads n unverified bodies.
func waitInFlight(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		srv.unsigned.mu.Lock()
		got := srv.unsigned.total
		srv.unsigned.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d bodies in flight, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The request one past a cap gets 503 with Retry-After at once, before
// its body is read; other addresses and sources still get in, and the
// places come back when the held requests end.
func TestServerCapsUnverifiedBodies(t *testing.T) {
	type hold struct{ from, source string }
	for _, tc := range []struct {
		name     string
		lim      Limits
		held     []hold
		refused  hold   // one past the cap
		admitted []hold // still get in
	}{
		{"per address", Limits{Total: 10, PerSource: 10, PerAddress: 2},
			[]hold{{"127.0.0.1", "src-github"}, {"127.0.0.1", "src-generic"}},
			hold{"127.0.0.1", "src-gitea"},
			[]hold{{"127.0.0.2", "src-github"}, {"127.0.0.3", "src-generic"}}},
		{"per source", Limits{Total: 10, PerSource: 2, PerAddress: 10},
			[]hold{{"127.0.0.1", "src-github"}, {"127.0.0.2", "src-github"}},
			hold{"127.0.0.3", "src-github"},
			[]hold{{"127.0.0.3", "src-generic"}, {"127.0.0.1", "src-gitea"}}},
		{"in total", Limits{Total: 2, PerSource: 10, PerAddress: 10},
			[]hold{{"127.0.0.1", "src-github"}, {"127.0.0.2", "src-gitea"}},
			hold{"127.0.0.3", "src-generic"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := newLimitServer(t, tc.lim, time.Minute)
			var conns []net.Conn
			for _, h := range tc.held {
				c := dialFrom(t, h.from, addr)
				partial(t, c, "/hooks/"+h.source, "")
				conns = append(conns, c)
			}
			waitInFlight(t, srv, len(tc.held))

			c := dialFrom(t, tc.refused.from, addr)
			partial(t, c, "/hooks/"+tc.refused.source, "")
			resp := answer(t, c)
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("one past the cap: %s, Retry-After %q; want 503 with Retry-After", resp.Status, resp.Header.Get("Retry-After"))
			}
			body := []byte(`{"type":"deploy","ref":"refs/heads/main"}`)
			for _, h := range tc.admitted {
				if code := signedFrom(t, h.from, addr, h.source, body); code != http.StatusAccepted {
					t.Errorf("from %s to %s while the cap is reached: HTTP %d, want 202", h.from, h.source, code)
				}
				body = append(body[:len(body)-1], ` `...)
				body = append(body, '}')
			}
			// Sources checked on their headers never wait behind strangers.
			if code := signedFrom(t, tc.refused.from, addr, "src-gitlab", readSample(t, "gitlab_push.json")); code != http.StatusAccepted {
				t.Errorf("gitlab with its token while the cap is reached: HTTP %d, want 202", code)
			}

			for _, c := range conns {
				c.Close()
			}
			waitInFlight(t, srv, 0)
			if code := signedFrom(t, tc.refused.from, addr, tc.refused.source, []byte(`{"type":"deploy","ref":"after"}`)); code != http.StatusAccepted {
				t.Fatalf("after the held requests ended: HTTP %d, want 202", code)
			}
		})
	}
}

// Requests that need no body to be refused are refused before any of it
// is read: an unknown source (404), a wrong token (401), an announced body
// over MaxBody (413). Nothing is sent after the headers.
func TestServerRefusesBeforeTheBody(t *testing.T) {
	srv, addr := newLimitServer(t, Limits{}, time.Minute)
	for _, tc := range []struct {
		name, path, header string
		length             int
		want               int
	}{
		{"unknown source", "/hooks/nobody", "", MaxBody, http.StatusNotFound},
		{"secret path on a non-slack source", "/hooks/src-github/x", "", MaxBody, http.StatusNotFound},
		{"wrong gitlab token", "/hooks/src-gitlab", "X-Gitlab-Token: wrong-wrong-wrong-wrong\r\n", MaxBody, http.StatusUnauthorized},
		{"no nextcloud secret", "/hooks/src-nextcloud", "", MaxBody, http.StatusUnauthorized},
		{"wrong slack secret", "/hooks/src-slack/wrong-wrong-wrong-wrong", "", MaxBody, http.StatusUnauthorized},
		{"announced too big", "/hooks/src-github", "", MaxBody + 1, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFrom(t, "127.0.0.1", addr)
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n", tc.path, tc.header, tc.length)
			if resp := answer(t, c); resp.StatusCode != tc.want {
				t.Fatalf("HTTP %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	waitInFlight(t, srv, 0)
}

// A body that stalls is cut off after the body timeout (408) and gives its
// place back; a slow body that keeps coming is read to the end, however
// long it takes in all: the deadline is per 64 KiB.
func TestServerBodyTimeout(t *testing.T) {
	srv, addr := newLimitServer(t, Limits{}, time.Second)
	c := dialFrom(t, "127.0.0.1", addr)
	partial(t, c, "/hooks/src-generic", "")
	if resp := answer(t, c); resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: HTTP %d, want 408", resp.StatusCode)
	}
	waitInFlight(t, srv, 0)

	// Four chunks, each well within the timeout, longer than it in all.
	body := []byte(`{"type":"deploy","text":"` + strings.Repeat("a", 4*bodyChunk-40) + `"}`)
	h := Sign(testSecret, body, time.Now())
	c = dialFrom(t, "127.0.0.1", addr)
	fmt.Fprintf(c, "POST /hooks/src-generic HTTP/1.1\r\nHost: x\r\n%s: %s\r\n%s: %s\r\nContent-Length: %d\r\n\r\n",
		HeaderTimestamp, h.Get(HeaderTimestamp), HeaderSignature, h.Get(HeaderSignature), len(body))
	start := time.Now()
	for part := range slices.Chunk(body, bodyChunk) {
		if _, err := c.Write(part); err != nil {
			t.Fatal(err)
		}
		time.Sleep(400 * time.Millisecond) // pacing the sender: the behaviour under test
	}
	if resp := answer(t, c); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("slow steady body: HTTP %d, want 202", resp.StatusCode)
	}
	t.Logf("a 256 KiB body sent over %v was accepted (timeout %v per 64 KiB)", time.Since(start).Round(time.Millisecond), time.Second)
}

// readBody allocates as the bytes arrive: a request that announces 1 MiB
// and sends 1000 bytes costs kilobytes, not the announced megabyte.
func TestReadBodyAllocatesAsBytesArrive(t *testing.T) {
	srv, _ := newLimitServer(t, Limits{}, time.Second)
	body := io.MultiReader(strings.NewReader(strings.Repeat("a", 1000)), errReader{io.ErrUnexpectedEOF})
	req := httptest.NewRequest(http.MethodPost, "/hooks/src-generic", body)
	req.ContentLength = MaxBody
	rec := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := srv.readBody(rec, req)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a cut body was read without error")
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
		t.Fatalf("reading 1000 bytes of an announced 1 MiB allocated %d bytes", got)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestClientKey(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5555":             "127.0.0.1",
		"[::ffff:10.0.0.1]:80":       "10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ff::1]:443":   "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":          "fe80::/64",
		"not an address":             "not an address",
	} {
		if got := clientKey(in); got != want {
			t.Errorf("clientKey(%q) = %q, want %q", in, got, want)
		}
	}
}
