package minions

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"
)

// loadOne loads a catalog of one minion "rt" made of these files.
func loadOne(t *testing.T, minionYML, composeYML string) (*Catalog, error) {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{"minion.yml": minionYML, "compose.yml": composeYML} {
		if err := os.MkdirAll(filepath.Join(dir, "rt"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rt", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return LoadCatalog(dir)
}

const rtCompose = `services:
  web:
    image: nginx:1.27.2-alpine
    ports:
      - "${HTTP_PORT}:80"
      - "[::]:${HTTP_PORT}:80"
      - "0.0.0.0:${METRICS_PORT}:9100"
  api:
    image: nginx:1.27.2-alpine
    ports:
      - "192.0.2.7:${API_PORT}:8000"
    environment:
      URL: https://${HOST}
`

const rtMinion = `name: rt
version: "1"
web: {service: web, port: 80}
settings:
  - {name: HTTP_PORT, default: "8080"}
  - {name: API_PORT, default: "8000"}
  - {name: METRICS_PORT, default: "9100"}
`

func TestRoutesValidation(t *testing.T) {
	tests := []struct {
		name, yml string
		want      []string // "" : loads
	}{
		{"fine", "routes:\n  - {path: /api, service: api, port: 8000}\n  - {path: /api/v2/events, service: api, port: 8001}\npublic_ports: [9100]\n", nil},
		{"no slash", "routes:\n  - {path: api, service: api, port: 8000}\n", []string{"route api: the path must start with /"}},
		{"root", "routes:\n  - {path: /, service: api, port: 8000}\n", []string{"route /: / is the web service's"}},
		{"trailing slash", "routes:\n  - {path: /api/, service: api, port: 8000}\n", []string{"route /api/: write the path plainly"}},
		{"dots", "routes:\n  - {path: /a/../b, service: api, port: 8000}\n", []string{"route /a/../b: write the path plainly"}},
		{"query", "routes:\n  - {path: \"/api?x\", service: api, port: 8000}\n", []string{"route /api?x: write the path plainly"}},
		{"no path", "routes:\n  - {service: api, port: 8000}\n", []string{"routes[0]: needs a path"}},
		{"twice", "routes:\n  - {path: /api, service: api, port: 8000}\n  - {path: /api, service: api, port: 8000}\n", []string{"route /api: routed twice"}},
		{"unknown service", "routes:\n  - {path: /api, service: back, port: 8000}\n", []string{`route /api: the service "back" is not in the compose file (it has api, web)`}},
		{"no service", "routes:\n  - {path: /api, port: 8000}\n", []string{"route /api: needs a service"}},
		{"no port", "routes:\n  - {path: /api, service: api}\n", []string{"route /api: needs the port inside the container, from 1 to 65535, not 0"}},
		{"port too big", "routes:\n  - {path: /api, service: api, port: 70000}\n", []string{"not 70000"}},
		{"public web port", "public_ports: [80]\n", []string{"public_ports 80: that is the web port"}},
		{"public routed port", "routes:\n  - {path: /api, service: api, port: 8000}\npublic_ports: [8000]\n", []string{"public_ports 8000: that port is routed"}},
		{"public zero", "public_ports: [0]\n", []string{"public_ports 0: a container port is from 1 to 65535"}},
		{"public twice", "public_ports: [22, 22]\n", []string{"public_ports 22: listed twice"}},
		{"every problem at once", "routes:\n  - {path: api, service: back, port: 0}\npublic_ports: [80]\n",
			[]string{"the path must start with /", `the service "back" is not in the compose file`, "needs the port", "public_ports 80"}},
		{"unknown key", "routes:\n  - {path: /api, service: api, port: 8000, strip: true}\n", []string{"field strip not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadOne(t, rtMinion+tt.yml, rtCompose)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("loaded; want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "rt/minion.yml") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestRenderWithGateway(t *testing.T) {
	cat, err := loadOne(t, rtMinion+"routes:\n  - {path: /api, service: api, port: 8000}\npublic_ports: [9100]\n", rtCompose)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := cat.Get("rt")
	ports := func(p *Plan, service string) []string {
		var out []string
		for port, bs := range p.Service(service).Host.PortBindings {
			for _, b := range bs {
				out = append(out, b.HostIP+":"+b.HostPort+"->"+string(port))
			}
		}
		slices.Sort(out)
		return out
	}
	o := RenderOptions{Domain: "example.com", VSRoot: "/v", DBSRoot: "/d"}
	off, err := Render(context.Background(), m, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Gateway, o.Subdomain = true, "boards"
	on, err := Render(context.Background(), m, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		plan    *Plan
		service string
		want    []string
	}{
		{off, "web", []string{"0.0.0.0:9100->9100/tcp", ":8080->80/tcp", ":::8080->80/tcp"}},
		{off, "api", []string{"192.0.2.7:8000->8000/tcp"}},
		// One loopback binding where the file had two; the metrics port,
		// neither web nor routed, stays as written.
		{on, "web", []string{"0.0.0.0:9100->9100/tcp", "127.0.0.1:8080->80/tcp"}},
		{on, "api", []string{"127.0.0.1:8000->8000/tcp"}},
	} {
		if got := ports(c.plan, c.service); !slices.Equal(got, c.want) {
			t.Errorf("gateway %v, %s: ports %v, want %v", c.plan == on, c.service, got, c.want)
		}
	}
	if on.Host != "boards.example.com" || on.URL != "https://boards.example.com" || on.HostPort != "8080" || on.HostIP != "127.0.0.1" {
		t.Errorf("plan with gateway: host %s, URL %s, port %s:%s", on.Host, on.URL, on.HostIP, on.HostPort)
	}
	if env := on.Service("api").Config.Env; !slices.Contains(env, "URL=https://boards.example.com") {
		t.Errorf("${HOST} does not follow the subdomain override: %v", env)
	}
	if off.Service("web").Hash == on.Service("web").Hash {
		t.Error("turning the gateway on does not change the web container's hash, so it would never be recreated with closed ports")
	}
}

func TestEndpointState(t *testing.T) {
	policy := func(p container.RestartPolicyMode) *container.HostConfig {
		return &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: p}}
	}
	tests := []struct {
		name  string
		st    container.State
		host  *container.HostConfig
		want  string
		nilSt bool
	}{
		{name: "running", st: container.State{Status: container.StateRunning, Running: true}, want: EndpointUp},
		{name: "healthy", st: container.State{Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Healthy}}, want: EndpointUp},
		{name: "health starting", st: container.State{Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Starting}}, want: EndpointStarting},
		{name: "unhealthy", st: container.State{Status: container.StateRunning, Running: true, Health: &container.Health{Status: container.Unhealthy}}, want: EndpointUnhealthy},
		{name: "created", st: container.State{Status: container.StateCreated}, want: EndpointStarting},
		{name: "stopped, unless-stopped", st: container.State{Status: container.StateExited, ExitCode: 137}, host: policy(container.RestartPolicyUnlessStopped), want: EndpointStopped},
		{name: "stopped, always", st: container.State{Status: container.StateExited, ExitCode: 1}, host: policy(container.RestartPolicyAlways), want: EndpointStopped},
		{name: "exited 0, no policy", st: container.State{Status: container.StateExited}, host: policy(container.RestartPolicyDisabled), want: EndpointStopped},
		{name: "SIGTERM, no policy", st: container.State{Status: container.StateExited, ExitCode: 143}, host: policy(container.RestartPolicyDisabled), want: EndpointStopped},
		{name: "crashed, on-failure given up", st: container.State{Status: container.StateExited, ExitCode: 1}, host: policy(container.RestartPolicyOnFailure), want: EndpointDown},
		{name: "out of memory", st: container.State{Status: container.StateExited, ExitCode: 137, OOMKilled: true}, host: policy(container.RestartPolicyUnlessStopped), want: EndpointDown},
		{name: "restarting", st: container.State{Status: container.StateRestarting, Restarting: true, Running: true}, want: EndpointDown},
		{name: "dead", st: container.State{Status: container.StateDead, Dead: true}, want: EndpointDown},
		{name: "paused", st: container.State{Status: container.StatePaused, Paused: true, Running: true}, want: EndpointDown},
		{name: "no state", nilSt: true, want: EndpointDown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := container.InspectResponse{ContainerJSONBase: &container.ContainerJSONBase{State: &tt.st, HostConfig: tt.host}}
			if tt.nilSt {
				c.State = nil
			}
			if got := endpointState(c); got != tt.want {
				t.Errorf("state %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWebBackend(t *testing.T) {
	withPort := func(ip string) container.InspectResponse {
		// Ports through the promoted field: its embedding struct is
		// deprecated, and Ports moves into NetworkSettings in v29.
		ns := &container.NetworkSettings{}
		ns.Ports = nat.PortMap{"80/tcp": {{HostIP: ip, HostPort: "8089"}}}
		return container.InspectResponse{
			ContainerJSONBase: &container.ContainerJSONBase{HostConfig: &container.HostConfig{}},
			NetworkSettings:   ns,
		}
	}
	unpublished := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{HostConfig: &container.HostConfig{}},
		NetworkSettings:   &container.NetworkSettings{Networks: nil},
	}
	for _, tt := range []struct {
		name string
		c    container.InspectResponse
		want string
	}{
		{"loopback", withPort("127.0.0.1"), "127.0.0.1:8089"},
		{"all addresses", withPort("0.0.0.0"), "127.0.0.1:8089"},
		{"all IPv6 addresses", withPort("::"), "[::1]:8089"},
		{"one address", withPort("192.0.2.7"), "192.0.2.7:8089"},
		{"unpublished, no network", unpublished, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := webBackend(tt.c, 80, "m_default"); got != tt.want {
				t.Errorf("backend %q, want %q", got, tt.want)
			}
		})
	}
}
