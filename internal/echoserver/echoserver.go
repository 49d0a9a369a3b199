// Package echoserver is a stand-in web service for the gateway's tests: it
// says which service answered and what the proxy in front of it set, echoes
// websocket messages and swallows uploads. The test image
// 127.0.0.1:5000/summoner/echo:1.0 runs it (cmd/echo, built by
// .ci/docker.sh); tests can also serve it in-process.
//
//	GET  /healthz       200 "ok"
//	GET  /ws            websocket: every message is sent back as it came; so
//	                    is any other path asked with Upgrade: websocket
//	                    (/events through a route, say)
//	POST /upload        reads and discards the body, answers "bytes=<n>"
//	GET  /bytes/<n>     n bytes of "x" (application/octet-stream), for large responses
//	any  other path     200 "service=<service> path=<path> host=<Host>
//	                    xff=<X-Forwarded-For> proto=<X-Forwarded-Proto>
//	                    fhost=<X-Forwarded-Host>" (text/plain, one line)
//
// Every response, the websocket handshake's included, carries the header
// X-Echo-Service: <service>.
package echoserver

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/gorilla/websocket"
)

// MaxBytes caps /bytes/<n>.
const MaxBytes = 1 << 30

var upgrader = websocket.Upgrader{
	// Tests connect through a gateway under another host name.
	CheckOrigin: func(*http.Request) bool { return true },
}

// New is the handler of the service named service.
func New(service string) http.Handler {
	mux := http.NewServeMux()
	h := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Echo-Service", service)
		if websocket.IsWebSocketUpgrade(r) {
			serveWS(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n") // a lost answer is the client's to see
	})
	mux.HandleFunc("/ws", serveWS) // without Upgrade: websocket, Upgrade answers 400
	mux.HandleFunc("POST /upload", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, fmt.Sprintf("reading the body after %d bytes: %v", n, err), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "bytes=%d\n", n)
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 || n > MaxBytes {
			http.Error(w, "want /bytes/<n>, 0 <= n <= 1 GiB", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		chunk := bytes.Repeat([]byte{'x'}, 32<<10)
		for n > 0 {
			c := chunk[:min(n, int64(len(chunk)))]
			if _, err := w.Write(c); err != nil {
				return
			}
			n -= int64(len(c))
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, Line(service, r)+"\n") // a lost answer is the client's to see
	})
	return http.HandlerFunc(h)
}

// Line is what the service answers for an ordinary request (without the
// newline).
func Line(service string, r *http.Request) string {
	return fmt.Sprintf("service=%s path=%s host=%s xff=%s proto=%s fhost=%s", service, r.URL.Path, r.Host,
		r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"))
}

func serveWS(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, w.Header().Clone())
	if err != nil {
		return // Upgrade has answered
	}
	defer c.Close()
	for {
		kind, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		if err := c.WriteMessage(kind, msg); err != nil {
			return
		}
	}
}
