package echoserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(New("web"))
	defer srv.Close()

	do := func(method, path, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if h, ok := hdr["Host"]; ok {
			req.Host = h
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	code, got := do("GET", "/some/path", "", map[string]string{"Host": "web.example.test",
		"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "web.example.test"})
	want := "service=web path=/some/path host=web.example.test xff=203.0.113.7 proto=https fhost=web.example.test\n"
	if code != 200 || got != want {
		t.Errorf("GET: %d %q, want 200 %q", code, got, want)
	}
	if code, got := do("GET", "/healthz", "", nil); code != 200 || got != "ok\n" {
		t.Errorf("healthz: %d %q", code, got)
	}
	if code, got := do("POST", "/upload", strings.Repeat("a", 100000), nil); code != 200 || got != "bytes=100000\n" {
		t.Errorf("upload: %d %q", code, got)
	}
	if code, got := do("GET", "/bytes/12345", "", nil); code != 200 || len(got) != 12345 {
		t.Errorf("bytes: %d, %d bytes", code, len(got))
	}
	if code, _ := do("GET", "/bytes/-1", "", nil); code != 400 {
		t.Errorf("bytes/-1: %d, want 400", code)
	}

	for _, path := range []string{"/ws", "/events/anything"} {
		c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+path, nil)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if got := resp.Header.Get("X-Echo-Service"); got != "web" {
			t.Errorf("%s: X-Echo-Service %q in the handshake, want web", path, got)
		}
		for _, m := range []string{"hello", strings.Repeat("z", 70000)} {
			if err := c.WriteMessage(websocket.TextMessage, []byte(m)); err != nil {
				t.Fatal(err)
			}
			kind, b, err := c.ReadMessage()
			if err != nil || kind != websocket.TextMessage || string(b) != m {
				t.Fatalf("%s: websocket echo: %d %d bytes %v", path, kind, len(b), err)
			}
		}
		c.Close()
	}
	if code, _ := do("GET", "/ws", "", nil); code != 400 {
		t.Errorf("GET /ws without upgrade: %d, want 400", code)
	}
}
