package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// maxTableBytes bounds a PUT /routes body.
const maxTableBytes = 8 << 20

type routesBody struct {
	Routes []Route `json:"routes"`
}

// adminHandler is the API on the unix socket.
func (g *gateway) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, r *http.Request) {
		routes := g.router.table.Load().routes
		if routes == nil {
			routes = []Route{}
		}
		writeJSON(w, http.StatusOK, routesBody{Routes: routes})
	})
	mux.HandleFunc("PUT /routes", func(w http.ResponseWriter, r *http.Request) {
		var body routesBody
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxTableBytes))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decoding the route table: " + err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, g.setRoutes(body.Routes))
	})
	mux.HandleFunc("GET /certs", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, g.certs.statuses())
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// listenUnix listens on a unix socket with mode 0600, replacing a stale
// socket left by a process that died; a live one is an error.
func listenUnix(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("another gateway answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket: %w", err)
		}
	}
	old := syscall.Umask(0o177) // created 0600, with no window where it is wider
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Client talks to a gateway over its admin socket.
type Client struct {
	socket string
	hc     *http.Client
}

// NewClient returns a client for the gateway listening on socket.
func NewClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socket: socket, hc: &http.Client{Transport: tr}}
}

// SetRoutes replaces the whole route table.
func (c *Client) SetRoutes(ctx context.Context, routes []Route) (SetResult, error) {
	if routes == nil {
		routes = []Route{}
	}
	var res SetResult
	err := c.do(ctx, http.MethodPut, "/routes", routesBody{Routes: routes}, &res)
	if err != nil {
		return SetResult{}, fmt.Errorf("setting gateway routes: %w", err)
	}
	return res, nil
}

// Routes returns the table the gateway serves (the accepted routes).
func (c *Client) Routes(ctx context.Context) ([]Route, error) {
	var body routesBody
	if err := c.do(ctx, http.MethodGet, "/routes", nil, &body); err != nil {
		return nil, fmt.Errorf("reading gateway routes: %w", err)
	}
	return body.Routes, nil
}

// Certs returns the certificate of every host served.
func (c *Client) Certs(ctx context.Context) ([]CertStatus, error) {
	var out []CertStatus
	if err := c.do(ctx, http.MethodGet, "/certs", nil, &out); err != nil {
		return nil, fmt.Errorf("reading gateway certificates: %w", err)
	}
	return out, nil
}

// Health reports whether the gateway answers.
func (c *Client) Health(ctx context.Context) error {
	if err := c.do(ctx, http.MethodGet, "/healthz", nil, nil); err != nil {
		return fmt.Errorf("gateway health: %w", err)
	}
	return nil
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://gateway"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
