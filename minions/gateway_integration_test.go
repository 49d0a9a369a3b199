package minions_test

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/minions"
)

// The gateway side of the engine on the real Docker: with a gateway, the
// web port is bound to 127.0.0.1 only, and Endpoints gives backends that
// answer as the right service.

// newGatewayEngine is an engine over the test minions with a fake gateway
// that serves nothing; minion is removed before and after the test.
func newGatewayEngine(t *testing.T, minion string) (*dockertest.Env, *minions.Engine, *fakeGateway) {
	t.Helper()
	d := dockertest.Require(t)
	d.RemoveMinion(t, minion)
	t.Cleanup(func() { d.RemoveMinion(t, minion) })
	cat, err := minions.LoadCatalog("testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gw := &fakeGateway{serves: map[string]bool{}}
	e := minions.NewEngine(d.Client, cat, minions.EngineOptions{
		Domain: "it.summoner.test", VSRoot: filepath.Join(dir, "volumes"), DBSRoot: filepath.Join(dir, "databases"),
		Mirror:  minions.Mirror{Registry: d.Registry},
		State:   &minions.StateStore{Dir: filepath.Join(dir, "state")},
		Gateway: gw,
	})
	gw.e = e
	return d, e, gw
}

// get fetches http://backend/path and returns the body.
func get(t *testing.T, backend, path string) string {
	t.Helper()
	if backend == "" {
		t.Fatalf("no backend for %s", path)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + backend + path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", backend, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s%s: %s %s", backend, path, resp.Status, body)
	}
	return string(body)
}

// loopbackOnly checks, as `docker port` shows it, that a minion's web
// container publishes its web port on 127.0.0.1 only.
func loopbackOnly(t *testing.T, d *dockertest.Env, minion, port string) {
	t.Helper()
	for _, c := range d.Containers(t, minion) {
		if c.Labels[minions.LabelRole] != minions.RoleWeb {
			continue
		}
		in, err := d.Client.ContainerInspect(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for p, bs := range in.NetworkSettings.Ports {
			for _, b := range bs {
				got = append(got, b.HostIP+":"+b.HostPort+"->"+string(p))
			}
		}
		if want := []string{"127.0.0.1:" + port + "->" + string(nat.Port("8080/tcp"))}; !slices.Equal(got, want) {
			t.Errorf("%s publishes %v, want %v only", minion, got, want)
		}
		return
	}
	t.Fatalf("no web container for %s", minion)
}

func TestGatewayClosesPortsOnDocker(t *testing.T) {
	for _, minion := range []string{"testgw", testMinion} { // testgw's file publishes on all addresses
		t.Run(minion, func(t *testing.T) {
			d, e, gw := newGatewayEngine(t, minion)
			ctx := context.Background()
			port := freePort(t)
			res, err := e.Summon(ctx, minion, "", map[string]string{"HTTP_PORT": port}, nil)
			if err != nil {
				t.Fatalf("summon: %v", err)
			}
			want := "plain HTTP on 127.0.0.1:" + port + ", from this server only; the gateway does not serve " + minion + ".it.summoner.test over HTTPS yet"
			if res.URL != want {
				t.Errorf("summon says %q, want %q", res.URL, want)
			}
			loopbackOnly(t, d, minion, port)

			ep := endpointOf(t, e, minion)
			if ep.State != minions.EndpointUp || ep.Backend != "127.0.0.1:"+port || ep.Host != minion+".it.summoner.test" {
				t.Fatalf("endpoint %+v", ep)
			}
			get(t, ep.Backend, "/")
			if calls := gw.calls(); !slices.Equal(calls, []string{minion}) {
				t.Errorf("gateway told %v", calls)
			}

			if err := e.Stop(ctx, minion); err != nil {
				t.Fatal(err)
			}
			if ep := endpointOf(t, e, minion); ep.State != minions.EndpointStopped || ep.Backend != "" {
				t.Errorf("after stop: %+v", ep)
			}
			if err := e.Start(ctx, minion); err != nil {
				t.Fatal(err)
			}
			// Start does not wait for readiness: the state goes back to up.
			deadline := time.Now().Add(time.Minute)
			for ep = endpointOf(t, e, minion); ep.State != minions.EndpointUp && time.Now().Before(deadline); ep = endpointOf(t, e, minion) {
				time.Sleep(200 * time.Millisecond)
			}
			if ep.State != minions.EndpointUp {
				t.Errorf("after start: %+v", ep)
			}
			if _, err := e.StopMinion(ctx, minion, nil); err != nil {
				t.Fatal(err)
			}
			if ep := endpointOf(t, e, minion); ep.State != minions.EndpointStopped {
				t.Errorf("after StopMinion: %+v", ep)
			}
		})
	}
}

// testtaiga: the path backends answer as their services, the rest as the
// front end; a stopped routed service leaves its path without a backend.
func TestTaigaRoutesOnDocker(t *testing.T) {
	const minion = "testtaiga"
	d, e, _ := newGatewayEngine(t, minion)
	if _, ok := e.Catalog().Get(minion); !ok {
		t.Fatal("the testtaiga test minion is not in testdata/minions")
	}
	ctx := context.Background()
	port := freePort(t)
	if _, err := e.Summon(ctx, minion, "", map[string]string{"HTTP_PORT": port}, nil); err != nil {
		t.Fatalf("summon: %v", err)
	}
	loopbackOnly(t, d, minion, port)
	ep := endpointOf(t, e, minion)
	if ep.State != minions.EndpointUp || len(ep.Paths) != 2 {
		t.Fatalf("endpoint %+v", ep)
	}
	if body := get(t, ep.Backend, "/"); !strings.HasPrefix(body, "service=front ") {
		t.Errorf("/ answers %q, want the front service", body)
	}
	services := map[string]string{"/api": "back", "/events": "events"}
	for _, p := range ep.Paths {
		if p.State != minions.EndpointUp {
			t.Errorf("%s: %+v", p.Prefix, p)
			continue
		}
		body := get(t, p.Backend, p.Prefix+"/x")
		if want := "service=" + services[p.Prefix] + " path=" + p.Prefix + "/x"; !strings.HasPrefix(body, want) {
			t.Errorf("%s answers %q, want %q…", p.Prefix, body, want)
		}
	}

	for _, c := range d.Containers(t, minion) {
		if c.Labels["com.docker.compose.service"] == "back" {
			if err := d.Client.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: new(int)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range endpointOf(t, e, minion).Paths {
		if p.Prefix == "/api" && (p.Backend != "" || p.State == minions.EndpointUp) {
			t.Errorf("/api with back stopped: %+v; want no backend, so the gateway answers 503", p)
		}
	}
}
