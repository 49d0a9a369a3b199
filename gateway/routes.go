package gateway

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// Route is where one minion is served. The bot sends the whole table each time.
type Route struct {
	Host    string   `json:"host"`              // "wekan.example.com"
	Aliases []string `json:"aliases,omitempty"` // more host names, same backend
	Minion  string   `json:"minion"`
	Backend string   `json:"backend"`         // "127.0.0.1:18181": default upstream (plain HTTP)
	Paths   []Path   `json:"paths,omitempty"` // longest prefix wins over Backend
	// State "up" serves; any other ("stopped", "starting", "unhealthy",
	// "down") gives the 503 page naming the minion and its state.
	State string `json:"state"`
}

// Path sends one path prefix of a host to its own backend.
type Path struct {
	Prefix  string `json:"prefix"`  // "/api" matches /api and /api/...
	Backend string `json:"backend"` // "172.18.0.5:8000"
}

// SetResult says what became of each route of a table.
type SetResult struct {
	Accepted []string          `json:"accepted"` // hosts now served
	Rejected map[string]string `json:"rejected"` // host (or minion when no host) -> why
}

// StateUp is the only state in which a route is proxied.
const StateUp = "up"

// table is an immutable route table; it is swapped whole.
type table struct {
	routes []Route            // the accepted routes, as given
	hosts  map[string]*target // every host and alias, lowercased
}

type target struct {
	route Route
	paths []Path // longest prefix first
}

// names is every host the table serves, sorted.
func (t *table) names() []string {
	out := make([]string, 0, len(t.hosts))
	for h := range t.hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// lookup finds the route for a Host header (port stripped, lowercased).
func (t *table) lookup(hostHeader string) *target {
	if t == nil {
		return nil
	}
	return t.hosts[normalizeHost(hostHeader)]
}

// backendFor picks the backend of a path: the longest matching prefix,
// else the route's own backend.
func (tg *target) backendFor(path string) string {
	for _, p := range tg.paths {
		if prefixMatches(p.Prefix, path) {
			return p.Backend
		}
	}
	return tg.route.Backend
}

// prefixMatches: "/api" matches "/api" and "/api/...", not "/apis".
func prefixMatches(prefix, path string) bool {
	if prefix == "/" {
		return true
	}
	p := strings.TrimSuffix(prefix, "/")
	return path == p || strings.HasPrefix(path, p+"/")
}

// normalizeHost strips a port and a trailing dot and lowercases.
func normalizeHost(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	return cleanName(h)
}

// cleanName lowercases a host name and drops a trailing dot.
func cleanName(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// buildTable validates each route on its own: a bad one is rejected and
// reported, the others are served. A host already taken by an earlier
// route rejects the later route, not both.
func buildTable(routes []Route) (*table, SetResult) {
	t := &table{hosts: map[string]*target{}}
	res := SetResult{Accepted: []string{}, Rejected: map[string]string{}}
	for _, r := range routes {
		key := cleanName(r.Host)
		if key == "" {
			key = r.Minion
		}
		if key == "" {
			key = "(route without host or minion)"
		}
		tg, err := compileRoute(r)
		if err == nil {
			for _, h := range append([]string{tg.route.Host}, tg.route.Aliases...) {
				if other, ok := t.hosts[h]; ok {
					err = fmt.Errorf("host %s is already served for minion %s", h, other.route.Minion)
					break
				}
			}
		}
		if err != nil {
			if prev, dup := res.Rejected[key]; dup {
				err = fmt.Errorf("%s; %v", prev, err)
			}
			res.Rejected[key] = err.Error()
			continue
		}
		t.routes = append(t.routes, tg.route)
		for _, h := range append([]string{tg.route.Host}, tg.route.Aliases...) {
			t.hosts[h] = tg
			res.Accepted = append(res.Accepted, h)
		}
	}
	return t, res
}

// compileRoute checks one route and returns it normalized.
func compileRoute(r Route) (*target, error) {
	if strings.TrimSpace(r.Minion) == "" {
		return nil, fmt.Errorf("no minion named")
	}
	r.Host = cleanName(r.Host)
	if err := checkHostname(r.Host); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	seen := map[string]bool{r.Host: true}
	aliases := make([]string, 0, len(r.Aliases))
	for _, a := range r.Aliases {
		a = cleanName(a)
		if err := checkHostname(a); err != nil {
			return nil, fmt.Errorf("alias %q: %w", a, err)
		}
		if seen[a] {
			return nil, fmt.Errorf("alias %s given twice", a)
		}
		seen[a] = true
		aliases = append(aliases, a)
	}
	r.Aliases = aliases
	if r.State == "" {
		return nil, fmt.Errorf("no state given")
	}
	// A minion that does not run has no backend yet; its host still gets
	// its 503 page, not a 404.
	if r.Backend != "" || r.State == StateUp {
		if err := checkBackend(r.Backend); err != nil {
			return nil, fmt.Errorf("backend: %w", err)
		}
	}
	paths := make([]Path, 0, len(r.Paths))
	prefixes := map[string]bool{}
	for _, p := range r.Paths {
		if !strings.HasPrefix(p.Prefix, "/") {
			return nil, fmt.Errorf("path prefix %q does not start with /", p.Prefix)
		}
		if strings.ContainsAny(p.Prefix, "?#") {
			return nil, fmt.Errorf("path prefix %q has a query or fragment", p.Prefix)
		}
		norm := strings.TrimSuffix(p.Prefix, "/")
		if prefixes[norm] {
			return nil, fmt.Errorf("path prefix %s given twice", p.Prefix)
		}
		prefixes[norm] = true
		// "": the routed service does not run; its paths answer 503
		// rather than reach the host's backend.
		if p.Backend != "" {
			if err := checkBackend(p.Backend); err != nil {
				return nil, fmt.Errorf("path %s backend: %w", p.Prefix, err)
			}
		}
		paths = append(paths, p)
	}
	r.Paths = paths
	sorted := append([]Path(nil), paths...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return len(strings.TrimSuffix(sorted[i].Prefix, "/")) > len(strings.TrimSuffix(sorted[j].Prefix, "/"))
	})
	return &target{route: r, paths: sorted}, nil
}

// checkHostname accepts a DNS name of letters, digits and hyphens (at
// least two labels); not an IP address, no wildcard, no port.
func checkHostname(h string) error {
	switch {
	case h == "":
		return fmt.Errorf("empty")
	case len(h) > 253:
		return fmt.Errorf("%q is longer than 253 characters", h)
	case net.ParseIP(h) != nil:
		return fmt.Errorf("%q is an IP address, not a host name", h)
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%q is not a full host name (no dot)", h)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q has an empty or too long label", h)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%q has a label starting or ending with '-'", h)
		}
		for _, c := range l {
			if !labelChar(c) {
				return fmt.Errorf("%q has the character %q", h, c)
			}
		}
	}
	return nil
}

// checkBackend accepts host:port with a port in 1..65535.
func checkBackend(b string) error {
	host, port, err := net.SplitHostPort(b)
	if err != nil {
		return fmt.Errorf("%q is not host:port", b)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", b)
	}
	if strings.ContainsAny(host, "/ @?#") {
		return fmt.Errorf("%q has a bad host", b)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has a bad port", b)
	}
	return nil
}

// labelChar tells whether a host name's label may hold c here.
func labelChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
}
