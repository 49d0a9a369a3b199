package gateway

import (
	"reflect"
	"strings"
	"testing"
)

func TestBuildTable(t *testing.T) {
	up := func(host, minion, backend string) Route {
		return Route{Host: host, Minion: minion, Backend: backend, State: StateUp}
	}
	tests := []struct {
		name     string
		routes   []Route
		accepted []string
		rejected map[string]string // key -> substring of the reason
	}{
		{
			name:     "two good routes and an alias",
			routes:   []Route{up("wekan.example.com", "wekan", "127.0.0.1:1"), {Host: "Taiga.Example.com.", Aliases: []string{"kanban.example.org"}, Minion: "taiga", Backend: "10.0.0.2:80", State: "stopped"}},
			accepted: []string{"wekan.example.com", "taiga.example.com", "kanban.example.org"},
		},
		{
			name:     "a bad backend is rejected alone",
			routes:   []Route{up("wekan.example.com", "wekan", "127.0.0.1"), up("statik.example.com", "statik", "127.0.0.1:8080")},
			accepted: []string{"statik.example.com"},
			rejected: map[string]string{"wekan.example.com": "not host:port"},
		},
		{
			name:     "the second of a duplicate host is rejected, not both",
			routes:   []Route{up("wekan.example.com", "wekan", "127.0.0.1:1"), up("WEKAN.example.com", "imposter", "127.0.0.1:2")},
			accepted: []string{"wekan.example.com"},
			rejected: map[string]string{"wekan.example.com": "already served for minion wekan"},
		},
		{
			name: "an alias clashing with another host rejects its route",
			routes: []Route{up("wekan.example.com", "wekan", "127.0.0.1:1"),
				{Host: "boards.example.com", Aliases: []string{"wekan.example.com"}, Minion: "boards", Backend: "127.0.0.1:2", State: StateUp}},
			accepted: []string{"wekan.example.com"},
			rejected: map[string]string{"boards.example.com": "already served"},
		},
		{
			name: "bad host syntax, missing host, bad path, empty state",
			routes: []Route{
				up("bad_host.example.com", "a", "127.0.0.1:1"),
				up("", "nohost", "127.0.0.1:1"),
				{Host: "p.example.com", Minion: "p", Backend: "127.0.0.1:1", State: StateUp, Paths: []Path{{Prefix: "api", Backend: "127.0.0.1:2"}}},
				{Host: "s.example.com", Minion: "s", Backend: "127.0.0.1:1"},
				{Host: "nob.example.com", Minion: "nob", State: StateUp},
				up("10.0.0.1", "ip", "127.0.0.1:1"),
				up("single", "single", "127.0.0.1:1"),
				up("port.example.com:8443x", "port", "127.0.0.1:1"),
				up("ok.example.com", "ok", "127.0.0.1:1"),
			},
			accepted: []string{"ok.example.com"},
			rejected: map[string]string{
				"bad_host.example.com":   "character",
				"nohost":                 "host: empty",
				"p.example.com":          "does not start with /",
				"s.example.com":          "no state",
				"nob.example.com":        "not host:port",
				"10.0.0.1":               "IP address",
				"single":                 "no dot",
				"port.example.com:8443x": "character",
			},
		},
		{
			name: "bad path backend and bad port",
			routes: []Route{
				{Host: "p.example.com", Minion: "p", Backend: "127.0.0.1:1", State: StateUp, Paths: []Path{{Prefix: "/api", Backend: "x:0"}}},
				up("q.example.com", "q", "127.0.0.1:99999"),
			},
			accepted: []string{},
			rejected: map[string]string{"p.example.com": "path /api backend", "q.example.com": "bad port"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, res := buildTable(tt.routes)
			if !reflect.DeepEqual(res.Accepted, tt.accepted) {
				t.Errorf("accepted = %q, want %q", res.Accepted, tt.accepted)
			}
			if len(res.Rejected) != len(tt.rejected) {
				t.Errorf("rejected = %q, want keys of %q", res.Rejected, tt.rejected)
			}
			for k, want := range tt.rejected {
				if !strings.Contains(res.Rejected[k], want) {
					t.Errorf("rejected[%q] = %q, want it to contain %q", k, res.Rejected[k], want)
				}
			}
		})
	}
}

func TestLookupAndPaths(t *testing.T) {
	tb, res := buildTable([]Route{{
		Host: "taiga.example.com", Aliases: []string{"kanban.example.org"}, Minion: "taiga", Backend: "front:80", State: StateUp,
		Paths: []Path{{Prefix: "/api", Backend: "back:8000"}, {Prefix: "/api/v1/events/", Backend: "events:8888"}, {Prefix: "/media", Backend: "media:80"}},
	}})
	if len(res.Rejected) > 0 {
		t.Fatal(res.Rejected)
	}
	tests := []struct{ host, path, want string }{
		{"taiga.example.com", "/", "front:80"},
		{"TAIGA.example.com:443", "/api", "back:8000"},
		{"taiga.example.com", "/api/v1/projects", "back:8000"},
		{"taiga.example.com", "/api/v1/events", "events:8888"},
		{"taiga.example.com", "/api/v1/events/x", "events:8888"},
		{"taiga.example.com", "/apis", "front:80"},
		{"kanban.example.org", "/media/a.png", "media:80"},
		{"nothing.example.com", "/", ""},
	}
	for _, tt := range tests {
		tg := tb.lookup(tt.host)
		got := ""
		if tg != nil {
			got = tg.backendFor(tt.path)
		}
		if got != tt.want {
			t.Errorf("%s%s -> %q, want %q", tt.host, tt.path, got, tt.want)
		}
	}
}
