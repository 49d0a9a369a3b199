package gateway

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"time"
)

// hsts is sent on every HTTPS response.
const hsts = "max-age=31536000"

// dialTimeout bounds connecting to a backend; there is no overall request
// timeout (long polls, websockets, large uploads).
const dialTimeout = 5 * time.Second

// router serves HTTPS: it finds the route of the Host header and proxies,
// or answers with the 404 or 503 page itself.
type router struct {
	table atomic.Pointer[table]
	proxy *httputil.ReverseProxy
	log   *slog.Logger
}

type backendKey struct{}

// pick is what the handler decided for one request; Rewrite and
// ErrorHandler read it from the request's context.
type pick struct {
	backend string
	minion  string
}

func newRouter(log *slog.Logger) *router {
	rt := &router{log: log}
	rt.table.Store(&table{hosts: map[string]*target{}})
	transport := &http.Transport{
		Proxy: nil, // never send minion traffic to an environment proxy
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	rt.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			p := pr.In.Context().Value(backendKey{}).(pick)
			pr.SetURL(&url.URL{Scheme: "http", Host: p.backend})
			pr.SetXForwarded()
			pr.Out.Host = pr.In.Host // apps build links from it
		},
		Transport:     transport,
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set("Strict-Transport-Security", hsts)
			return nil
		},
		ErrorHandler: rt.backendError,
	}
	return rt
}

func (rt *router) setTable(t *table) { rt.table.Store(t) }

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Strict-Transport-Security", hsts)
	tg := rt.table.Load().lookup(r.Host)
	if tg == nil {
		writePage(w, http.StatusNotFound, page{Title: "Not found", Text: "Nothing is served at this address."})
		return
	}
	if tg.route.State != StateUp {
		writeDown(w, tg.route.Minion, "is "+tg.route.State)
		return
	}
	p := pick{backend: tg.backendFor(r.URL.Path), minion: tg.route.Minion}
	if p.backend == "" {
		writeDown(w, tg.route.Minion, "is partly down: the service behind "+r.URL.Path+" does not run")
		return
	}
	rt.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), backendKey{}, p)))
}

// backendError answers when the backend refuses, times out or breaks
// before answering: the 503 page naming the minion.
func (rt *router) backendError(w http.ResponseWriter, r *http.Request, err error) {
	p, _ := r.Context().Value(backendKey{}).(pick)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the client went away
	}
	rt.log.Warn("backend not answering", "minion", p.minion, "backend", p.backend, "host", r.Host, "err", err)
	writeDown(w, p.minion, "is not answering")
}

func writeDown(w http.ResponseWriter, minion, what string) {
	w.Header().Set("Retry-After", "10")
	writePage(w, http.StatusServiceUnavailable, page{
		Title: minion + " " + what,
		Text:  minion + " " + what + ". Ask Summoner for its status, or try again in a moment.",
	})
}

type page struct{ Title, Text string }

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;margin:4em auto;max-width:40em;padding:0 1em;color:#333}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Text}}</p></body></html>
`))

func writePage(w http.ResponseWriter, code int, p page) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = pageTemplate.Execute(w, p)
}

// redirectHandler sends every plain HTTP request to HTTPS (308 keeps the
// method and body); ACME HTTP-01 challenges are answered before it.
func redirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := normalizeHost(r.Host)
		if host == "" {
			http.Error(w, "no host", http.StatusBadRequest)
			return
		}
		if httpsPort != "" && httpsPort != "443" {
			host = net.JoinHostPort(host, httpsPort)
		}
		u := url.URL{Scheme: "https", Host: host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
		w.Header().Set("Connection", "close")
		http.Redirect(w, r, u.String(), http.StatusPermanentRedirect)
	})
}
