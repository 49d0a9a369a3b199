package minions_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/summoner-bot/summoner/minions"
)

// The gateway side of the engine on fakeDocker: closed ports, endpoints,
// truthful URLs, and the gateway told after every change.

const routesMinion = "testroutes"

// testroutes is a web service with two routed services, one of which
// publishes its port too, and an SSH port published on purpose.
var routesFiles = map[string]string{
	"compose.yml": `services:
  front:
    image: summoner/testapp:${VERSION}
    ports:
      - "${HTTP_PORT}:8080"
  api:
    image: summoner/testapp:${VERSION}
    ports:
      - "0.0.0.0:${API_PORT}:9000"
  events:
    image: summoner/testapp:1.0
    healthcheck:
      test: ["CMD", "true"]
  ssh:
    image: summoner/testapp:1.0
    ports:
      - "${SSH_PORT}:22"
`,
	"minion.yml": `name: testroutes
description: a web service with routed ones
version: "1.0"
web:
  service: front
  port: 8080
  port_setting: HTTP_PORT
settings:
  - name: HTTP_PORT
  - name: API_PORT
  - name: SSH_PORT
routes:
  - path: /api
    service: api
    port: 9000
  - path: /events
    service: events
    port: 8888
public_ports: [22]
health:
  path: /
  timeout: 10s
`,
}

// fakeGateway records Changed calls; in each it lists the endpoints, as
// cmd/bot's gateway does, so a deadlock with the engine would hang.
type fakeGateway struct {
	e *minions.Engine

	mu      sync.Mutex
	changed []string
	seen    [][]minions.Endpoint // Endpoints as each Changed saw them
	serves  map[string]bool
	// serveOnChange: the host is served from the first Changed on, as a
	// gateway that gets its certificate while Changed waits.
	serveOnChange string
}

func (g *fakeGateway) Changed(ctx context.Context, minion string) {
	eps, err := g.e.Endpoints(ctx)
	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		eps = []minions.Endpoint{{Minion: "error: " + err.Error()}}
	}
	g.changed = append(g.changed, minion)
	g.seen = append(g.seen, eps)
	if g.serveOnChange != "" {
		g.serves[g.serveOnChange] = true
	}
}

func (g *fakeGateway) Serves(host string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.serves[host]
}

func (g *fakeGateway) calls() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.changed)
}

func (g *fakeGateway) last() []minions.Endpoint {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.seen[len(g.seen)-1]
}

type gwFixture struct {
	f        *fakeDocker
	e        *minions.Engine
	gw       *fakeGateway
	settings map[string]string
	stateDir string // the engine's StateStore
}

const gwMirror = "mirror.fake"

// newGWFixture makes an engine over testroutes and testmin with a gateway
// (gateway false: none); nothing is summoned yet.
func newGWFixture(t *testing.T, gateway bool) *gwFixture {
	t.Helper()
	dir := t.TempDir()
	for name, data := range routesFiles {
		writeFile(t, filepath.Join(dir, "minions", routesMinion, name), data)
	}
	for _, name := range []string{"compose.yml", "minion.yml"} {
		data, err := os.ReadFile(filepath.Join("testdata/minions", testMinion, name))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "minions", testMinion, name), strings.ReplaceAll(string(data), "data_owner:", "# data_owner:"))
	}
	cat, err := minions.LoadCatalog(filepath.Join(dir, "minions"))
	if err != nil {
		t.Fatal(err)
	}
	fx := &gwFixture{f: newFakeDocker(t), settings: map[string]string{"HTTP_PORT": freePort(t), "API_PORT": freePort(t), "SSH_PORT": freePort(t)},
		stateDir: filepath.Join(dir, "state")}
	fx.f.addresses = true
	fx.f.registry[gwMirror+"/library/postgres:15.10"] = fakeImage{}
	for _, v := range []string{"1.0", "1.1"} {
		fx.f.registry[gwMirror+"/summoner/testapp:"+v] = fakeImage{}
	}
	fx.f.registry[gwMirror+"/summoner/testapp:1.2"] = fakeImage{exitCode: 1, logs: "config error\n"}
	o := minions.EngineOptions{
		Domain: "fake.test", VSRoot: filepath.Join(dir, "volumes"), DBSRoot: filepath.Join(dir, "databases"),
		Mirror: minions.Mirror{Registry: gwMirror}, State: &minions.StateStore{Dir: fx.stateDir},
		Logger: slog.New(slog.NewTextHandler(testLog{t}, nil)),
		Hosts:  map[string]minions.HostOverride{routesMinion: {Subdomain: "routes", Aliases: []string{"r.example.org"}}},
	}
	if gateway {
		fx.gw = &fakeGateway{serves: map[string]bool{}}
		o.Gateway = fx.gw
	}
	fx.e = minions.NewEngine(fx.f, cat, o)
	if fx.gw != nil {
		fx.gw.e = fx.e
	}
	return fx
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (fx *gwFixture) summon(t *testing.T) *minions.Result {
	t.Helper()
	res, err := fx.e.Summon(context.Background(), routesMinion, "", fx.settings, nil)
	if err != nil {
		t.Fatalf("summon: %v", err)
	}
	return res
}

// bindings are a container's port bindings as "hostIP:hostPort->port".
func (fx *gwFixture) bindings(t *testing.T, name string) []string {
	t.Helper()
	c, err := fx.f.ContainerInspect(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for port, bs := range c.NetworkSettings.Ports {
		for _, b := range bs {
			out = append(out, b.HostIP+":"+b.HostPort+"->"+string(port))
		}
	}
	slices.Sort(out)
	return out
}

func TestGatewayBindsServedPortsToLoopback(t *testing.T) {
	for _, gateway := range []bool{true, false} {
		t.Run(map[bool]string{true: "gateway", false: "no gateway"}[gateway], func(t *testing.T) {
			fx := newGWFixture(t, gateway)
			fx.summon(t)
			web, api, ssh := "0.0.0.0", "0.0.0.0", "0.0.0.0"
			if gateway {
				web, api = "127.0.0.1", "127.0.0.1"
			}
			for name, want := range map[string][]string{
				"testroutes-fake.test":        {web + ":" + fx.settings["HTTP_PORT"] + "->8080/tcp"},
				"api-testroutes-fake.test":    {api + ":" + fx.settings["API_PORT"] + "->9000/tcp"},
				"ssh-testroutes-fake.test":    {ssh + ":" + fx.settings["SSH_PORT"] + "->22/tcp"}, // public_ports: as written
				"events-testroutes-fake.test": nil,
			} {
				if got := fx.bindings(t, name); !slices.Equal(got, want) {
					t.Errorf("%s publishes %v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	fx := newGWFixture(t, true)
	if eps, err := fx.e.Endpoints(ctx); err != nil || len(eps) != 0 {
		t.Fatalf("endpoints before any summon: %+v, %v", eps, err)
	}
	fx.summon(t)
	if _, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": freePort(t)}, nil); err != nil {
		t.Fatal(err)
	}
	// A minion gone from the catalog is left out.
	fx.f.add("stray", &container.Config{Image: "x", Labels: map[string]string{minions.LabelMinion: "gone", "com.docker.compose.service": "web"}}, &container.HostConfig{})

	ip := func(name string) string {
		c, err := fx.f.ContainerInspect(ctx, name)
		if err != nil || c.NetworkSettings.Networks[routesMinion+"_default"] == nil {
			t.Fatalf("no address for %s: %v", name, err)
		}
		return c.NetworkSettings.Networks[routesMinion+"_default"].IPAddress
	}
	apiIP, eventsIP := ip("api-testroutes-fake.test"), ip("events-testroutes-fake.test")
	eps, err := fx.e.Endpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].Minion != testMinion || eps[1].Minion != routesMinion {
		t.Fatalf("endpoints %+v, want testmin then testroutes", eps)
	}
	if eps[0].Host != "testmin.fake.test" || eps[0].State != minions.EndpointUp || !strings.HasPrefix(eps[0].Backend, "127.0.0.1:") || len(eps[0].Paths) != 0 {
		t.Errorf("testmin endpoint %+v", eps[0])
	}
	want := minions.Endpoint{
		Minion: routesMinion, Host: "routes.fake.test", Aliases: []string{"r.example.org"},
		Backend: "127.0.0.1:" + fx.settings["HTTP_PORT"], State: minions.EndpointUp,
		Paths: []minions.EndpointPath{ // longest prefix first
			{Prefix: "/events", Backend: eventsIP + ":8888", State: minions.EndpointUp},
			{Prefix: "/api", Backend: apiIP + ":9000", State: minions.EndpointUp},
		},
	}
	checkEndpoint(t, "summoned", eps[1], want)
	if !answers(fx.settings["HTTP_PORT"]) {
		t.Error("the web backend does not answer")
	}

	// A routed service that stops, or fails its health check, keeps its
	// path with no backend: its requests get a 503, never the web
	// service's page.
	if err := fx.f.ContainerStop(ctx, "api-testroutes-fake.test", container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	fx.f.mu.Lock()
	fx.f.find("events-testroutes-fake.test").health = container.Unhealthy
	fx.f.mu.Unlock()
	want.Paths = []minions.EndpointPath{
		{Prefix: "/events", State: minions.EndpointUnhealthy},
		{Prefix: "/api", State: minions.EndpointStopped},
	}
	checkEndpoint(t, "api stopped, events unhealthy", endpointOf(t, fx.e, routesMinion), want)

	// The minion stopped: listed, with its state, so the gateway shows its
	// 503 page, not a 404.
	if err := fx.e.Stop(ctx, routesMinion); err != nil {
		t.Fatal(err)
	}
	want.Backend, want.State = "", minions.EndpointStopped
	want.Paths = []minions.EndpointPath{{Prefix: "/events", State: minions.EndpointStopped}, {Prefix: "/api", State: minions.EndpointStopped}}
	checkEndpoint(t, "stopped", endpointOf(t, fx.e, routesMinion), want)
	checkEndpoint(t, "as Changed saw it after the stop", fx.gw.last()[1], want)

	// While a change has set the web container aside, it is starting.
	fx.f.mu.Lock()
	fx.f.find("testroutes-fake.test").name = "testroutes-fake.test" + minions.OldSuffix
	fx.f.mu.Unlock()
	if ep := endpointOf(t, fx.e, routesMinion); ep.State != minions.EndpointStarting || ep.Backend != "" {
		t.Errorf("web container set aside: %+v", ep)
	}

	// Banished: gone from the list.
	if err := fx.e.Banish(ctx, routesMinion, false); err != nil {
		t.Fatal(err)
	}
	if eps, err := fx.e.Endpoints(ctx); err != nil || len(eps) != 1 || eps[0].Minion != testMinion {
		t.Errorf("after banish: %+v, %v", eps, err)
	}
	if got := fx.gw.last(); len(got) != 1 || got[0].Minion != testMinion {
		t.Errorf("Changed after the banish saw %+v", got)
	}
}

// endpointOf finds a minion's endpoint.
func endpointOf(t *testing.T, e *minions.Engine, minion string) minions.Endpoint {
	t.Helper()
	eps, err := e.Endpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ep := range eps {
		if ep.Minion == minion {
			return ep
		}
	}
	t.Fatalf("no endpoint for %s in %+v", minion, eps)
	return minions.Endpoint{}
}

func checkEndpoint(t *testing.T, when string, got, want minions.Endpoint) {
	t.Helper()
	if got.Minion != want.Minion || got.Host != want.Host || !slices.Equal(got.Aliases, want.Aliases) ||
		got.Backend != want.Backend || got.State != want.State || !slices.Equal(got.Paths, want.Paths) {
		t.Errorf("%s: endpoint\n %+v\nwant\n %+v", when, got, want)
	}
}

func TestEndpointsFailWhenDockerIsDown(t *testing.T) {
	fx := newGWFixture(t, true)
	fx.summon(t)
	fx.f.fail(&fault{method: "ContainerList"})
	if _, err := fx.e.Endpoints(context.Background()); err == nil || !strings.Contains(userMessage(t, err), "I cannot reach Docker") {
		t.Errorf("endpoints with Docker down: %v", err)
	}
}

func TestURLIsTheGatewaysOnlyWhenItServes(t *testing.T) {
	ctx := context.Background()
	t.Run("served", func(t *testing.T) {
		fx := newGWFixture(t, true)
		fx.gw.serveOnChange = "routes.fake.test" // Serves is asked after Changed
		res := fx.summon(t)
		if res.HTTPS != "https://routes.fake.test" || res.URL != "https://routes.fake.test" {
			t.Errorf("result %+v says %q", res.Address, res.String())
		}
		st, err := fx.e.Status(ctx, routesMinion)
		if err != nil || len(st) != 1 || st[0].Address != res.Address || st[0].URL != res.URL {
			t.Errorf("status %+v, %v; want the address %+v", st, err, res.Address)
		}
	})
	t.Run("not served", func(t *testing.T) {
		fx := newGWFixture(t, true)
		res := fx.summon(t)
		want := "plain HTTP on 127.0.0.1:" + fx.settings["HTTP_PORT"] + ", from this server only; the gateway does not serve routes.fake.test over HTTPS yet"
		if res.HTTPS != "" || res.URL != want {
			t.Errorf("result %+v says %q, want %q", res.Address, res.URL, want)
		}
		st, err := fx.e.Status(ctx, routesMinion)
		if err != nil || len(st) != 1 || st[0].URL != want {
			t.Errorf("status %+v, %v; want %q", st, err, want)
		}
	})
	t.Run("no gateway", func(t *testing.T) {
		fx := newGWFixture(t, false)
		res := fx.summon(t)
		want := "plain HTTP on port " + fx.settings["HTTP_PORT"] + " of this server"
		if res.HTTPS != "" || res.URL != want {
			t.Errorf("result %+v says %q, want %q", res.Address, res.URL, want)
		}
		// testmin publishes on 127.0.0.1 only, in its compose file.
		port := freePort(t)
		res, err := fx.e.Summon(ctx, testMinion, "", map[string]string{"HTTP_PORT": port}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := "plain HTTP on 127.0.0.1:" + port + ", from this server only"; res.URL != want {
			t.Errorf("testmin: %q, want %q", res.URL, want)
		}
		st, err := fx.e.Status(ctx, testMinion)
		if err != nil || len(st) != 1 || st[0].URL != res.URL {
			t.Errorf("status %+v, %v; want %q", st, err, res.URL)
		}
	})
}

// The gateway is told once after each operation, whether it worked,
// failed or rolled back, and only after the change: what Endpoints shows
// it in Changed is the new state.
func TestGatewayToldOncePerChange(t *testing.T) {
	ctx := context.Background()
	fx := newGWFixture(t, true)
	var held string
	ops := []struct {
		name    string
		op      func() error
		fails   bool
		state   string // the web state Changed saw; "" for no endpoint
		notTold bool
	}{
		{name: "summon", op: func() error { _, err := fx.e.Summon(ctx, routesMinion, "", fx.settings, nil); return err }, state: minions.EndpointUp},
		{name: "summon unchanged", op: func() error { _, err := fx.e.Summon(ctx, routesMinion, "", nil, nil); return err }, state: minions.EndpointUp},
		{name: "summon with a port taken", fails: true, state: minions.EndpointUp, op: func() error {
			held = holdPort(t)
			_, err := fx.e.Summon(ctx, routesMinion, "", map[string]string{"HTTP_PORT": held}, nil)
			return err
		}},
		{name: "summon with an unknown setting", fails: true, state: minions.EndpointUp, op: func() error {
			_, err := fx.e.Summon(ctx, routesMinion, "", map[string]string{"NOPE": "1"}, nil)
			return err
		}},
		{name: "update", op: func() error { _, err := fx.e.Update(ctx, routesMinion, "1.1", nil); return err }, state: minions.EndpointUp},
		{name: "update rolled back", fails: true, state: minions.EndpointUp, op: func() error {
			_, err := fx.e.Update(ctx, routesMinion, "1.2", nil)
			var ue *minions.UpdateError
			if !errors.As(err, &ue) {
				t.Errorf("update to 1.2: %v, want a rollback", err)
			}
			return err
		}},
		{name: "stop", op: func() error { return fx.e.Stop(ctx, routesMinion) }, state: minions.EndpointStopped},
		{name: "start", op: func() error { return fx.e.Start(ctx, routesMinion) }, state: minions.EndpointUp},
		{name: "restart", op: func() error { return fx.e.Restart(ctx, routesMinion) }, state: minions.EndpointUp},
		{name: "cold backup's stop", op: func() error {
			_, err := fx.e.StopMinion(ctx, routesMinion, nil)
			return err
		}, state: minions.EndpointStopped},
		{name: "busy", fails: true, notTold: true, op: func() error {
			release, err := fx.e.Lock(routesMinion, "restore")
			if err != nil {
				return err
			}
			defer release()
			_, err = fx.e.Summon(ctx, routesMinion, "", nil, nil)
			return err
		}},
		{name: "banish", op: func() error { return fx.e.Banish(ctx, routesMinion, false) }},
		{name: "banish again", fails: true, op: func() error { return fx.e.Banish(ctx, routesMinion, false) }},
	}
	for _, o := range ops {
		before := len(fx.gw.calls())
		err := o.op()
		if (err != nil) != o.fails {
			t.Fatalf("%s: %v", o.name, err)
		}
		calls := fx.gw.calls()[before:]
		if o.notTold {
			if len(calls) != 0 {
				t.Errorf("%s: told %v, want nothing (nothing changed)", o.name, calls)
			}
			continue
		}
		if !slices.Equal(calls, []string{routesMinion}) {
			t.Errorf("%s: Changed calls %v, want one for %s", o.name, calls, routesMinion)
			continue
		}
		var state string
		for _, ep := range fx.gw.last() {
			if ep.Minion == routesMinion {
				state = ep.State
			}
		}
		if state != o.state {
			t.Errorf("%s: Changed saw the web state %q, want %q", o.name, state, o.state)
		}
	}
}

// A port bound on the host reads as the container really has it, not as
// the settings would give it now.
func TestStatusReadsThePublishedPort(t *testing.T) {
	fx := newGWFixture(t, false)
	fx.summon(t)
	st, err := fx.e.Status(context.Background(), routesMinion)
	if err != nil || len(st) != 1 {
		t.Fatal(st, err)
	}
	fx.f.mu.Lock()
	c := fx.f.find("testroutes-fake.test")
	c.host.PortBindings = nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "1"}}}
	fx.f.mu.Unlock()
	st, err = fx.e.Status(context.Background(), routesMinion)
	if err != nil || len(st) != 1 || st[0].HostPort != "1" || st[0].HostIP != "127.0.0.1" {
		t.Errorf("status %+v, %v; want the container's own binding", st, err)
	}
}
