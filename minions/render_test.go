package minions

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"gopkg.in/yaml.v3"

	"github.com/summoner-bot/summoner/internal/golden"
)

// renderFixed renders m with fixed settings, so the output is stable.
func renderFixed(t *testing.T, m *Minion, mirror Mirror, gateway bool) *Plan {
	t.Helper()
	o := RenderOptions{
		Domain: "example.com", VSRoot: "/srv/summoner/volumes", DBSRoot: "/srv/summoner/databases",
		Settings: map[string]string{}, Secrets: map[string]string{}, Mirror: mirror, Gateway: gateway,
	}
	for _, s := range m.Settings {
		switch {
		case s.Generate:
			o.Secrets[s.Name] = "generated-" + strings.ToLower(s.Name)
		case s.Required:
			o.Settings[s.Name] = "given-" + strings.ToLower(s.Name)
		}
	}
	p, err := Render(context.Background(), m, o)
	if err != nil {
		t.Fatalf("render %s: %v", m.Name, err)
	}
	return p
}

// planText is the plan as a person reviews it.
func planText(p *Plan) string {
	type svc struct {
		Service     string            `yaml:"service"`
		Role        string            `yaml:"role"`
		Container   string            `yaml:"container"`
		Image       string            `yaml:"image"`
		Pull        string            `yaml:"pull"`
		DependsOn   map[string]string `yaml:"depends_on,omitempty"`
		Command     []string          `yaml:"command,omitempty"`
		Entrypoint  []string          `yaml:"entrypoint,omitempty"`
		Env         []string          `yaml:"env,omitempty"`
		Binds       []string          `yaml:"binds,omitempty"`
		Ports       []string          `yaml:"ports,omitempty"`
		Healthcheck []string          `yaml:"healthcheck,omitempty"`
		Restart     string            `yaml:"restart"`
		Logging     string            `yaml:"logging"`
		// Config and Host are every other field set, so a key applied
		// (or dropped) shows in the diff.
		Config map[string]any    `yaml:"config,omitempty"`
		Host   map[string]any    `yaml:"host,omitempty"`
		Labels map[string]string `yaml:"labels"`
	}
	out := struct {
		Minion   string  `yaml:"minion"`
		Version  string  `yaml:"version"`
		URL      string  `yaml:"url"`
		HostPort string  `yaml:"host_port,omitempty"`
		HostIP   string  `yaml:"host_ip,omitempty"`
		Network  string  `yaml:"network"`
		Routes   []Route `yaml:"routes,omitempty"`
		Public   []int   `yaml:"public_ports,omitempty"`
		Services []svc   `yaml:"services"`
	}{p.Minion.Name, p.Version, p.URL, p.HostPort, p.HostIP, p.Network, p.Minion.Routes, p.Minion.PublicPorts, nil}
	for _, s := range p.Services {
		var ports []string
		for port, bs := range s.Host.PortBindings {
			for _, b := range bs {
				ports = append(ports, fmt.Sprintf("%s:%s->%s", b.HostIP, b.HostPort, port))
			}
		}
		sort.Strings(ports)
		var hc []string
		if s.Config.Healthcheck != nil {
			hc = s.Config.Healthcheck.Test
		}
		out.Services = append(out.Services, svc{
			Service: s.Service, Role: s.Role, Container: s.Container, Image: s.Image, Pull: s.Pull,
			DependsOn: s.DependsOn, Command: s.Config.Cmd, Entrypoint: s.Config.Entrypoint, Env: s.Config.Env,
			Binds: s.Host.Binds, Ports: ports, Healthcheck: hc, Restart: string(s.Host.RestartPolicy.Name),
			Logging: logLine(s.Host.LogConfig), Labels: s.Config.Labels,
			Config: setFields(s.Config, "Image", "Cmd", "Entrypoint", "Env", "Labels", "ExposedPorts"),
			Host:   setFields(s.Host, "Binds", "PortBindings", "RestartPolicy", "LogConfig"),
		})
	}
	b, _ := yaml.Marshal(out)
	return string(b)
}

func logLine(l container.LogConfig) string {
	keys := make([]string, 0, len(l.Config))
	for k := range l.Config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	line := orDefault(l.Type, "(daemon default)")
	for _, k := range keys {
		line += " " + k + "=" + l.Config[k]
	}
	return line
}

// setFields is v's fields that are set, but skip, as JSON sees them.
func setFields(v any, skip ...string) map[string]any {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		panic(err)
	}
	for k, val := range all {
		if slices.Contains(skip, k) || isZero(val) {
			delete(all, k)
		}
	}
	if hc, ok := all["Healthcheck"].(map[string]any); ok {
		delete(hc, "Test") // shown as healthcheck
		for _, k := range []string{"Interval", "Timeout", "StartPeriod", "StartInterval"} {
			if d, ok := hc[k].(float64); ok {
				hc[k] = time.Duration(d).String()
			}
		}
	}
	return readable(all).(map[string]any)
}

// readable turns JSON's float64 whole numbers back into integers.
func readable(v any) any {
	switch v := v.(type) {
	case float64:
		if v == math.Trunc(v) {
			return int64(v)
		}
	case map[string]any:
		for k, e := range v {
			v[k] = readable(e)
		}
	case []any:
		for i, e := range v {
			v[i] = readable(e)
		}
	}
	return v
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case bool:
		return !v
	case float64:
		return v == 0
	case []any:
		return len(v) == 0 || len(v) == 2 && isZero(v[0]) && isZero(v[1]) // ConsoleSize [0,0]
	case map[string]any:
		return len(v) == 0
	}
	return false
}

func TestCatalogRendersAndMatchesGolden(t *testing.T) {
	c, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	// With a gateway, the same plans but for the web and routed ports,
	// bound to 127.0.0.1 only: testdata/golden/gateway.
	for _, variant := range []struct {
		dir     string
		gateway bool
	}{{"", false}, {"gateway", true}} {
		for _, m := range c.All() {
			t.Run(path.Join(variant.dir, m.Name), func(t *testing.T) {
				testCatalogGolden(t, m, variant.dir, variant.gateway)
			})
		}
	}
}

func testCatalogGolden(t *testing.T, m *Minion, dir string, gateway bool) {
	p := renderFixed(t, m, Mirror{}, gateway)
	got := planText(p)
	if strings.Contains(got, "${") || strings.Contains(got, "$$") {
		t.Errorf("unresolved variable in the rendered plan:\n%s", got)
	}
	domain := "example.com"
	roles := map[string]int{}
	for _, s := range p.Services {
		roles[s.Role]++
		want := s.Service + "-" + m.Name + "-" + domain
		switch s.Role {
		case RoleWeb:
			want = m.Name + "-" + domain
		case RoleDB:
			want = m.Database.Kind + "-" + m.Name + "-" + domain
		}
		if s.Container != want {
			t.Errorf("service %s is named %s, want %s", s.Service, s.Container, want)
		}
		for _, b := range s.Host.Binds {
			if !strings.HasPrefix(b, "/srv/summoner/volumes/"+m.Name+"/") && !strings.HasPrefix(b, "/srv/summoner/databases/"+m.Name+"/") {
				t.Errorf("service %s keeps data outside the minion's folders: %s", s.Service, b)
			}
		}
		if s.Config.Labels[LabelMinion] != m.Name || s.Config.Labels[labelProject] != m.Name {
			t.Errorf("service %s lacks its labels: %v", s.Service, s.Config.Labels)
		}
	}
	if roles[RoleWeb] != 1 || (m.Database != nil) != (roles[RoleDB] == 1) {
		t.Errorf("roles %v", roles)
	}
	if p.URL != "https://"+m.Subdomain+"."+domain {
		t.Errorf("URL %s", p.URL)
	}
	golden.AssertFile(t, filepath.Join("golden", dir, m.Name+".yml"), []byte(got))
	checkPorts(t, p, gateway)
}

func TestMirror(t *testing.T) {
	tests := []struct {
		mirror Mirror
		image  string
		want   string
	}{
		{Mirror{}, "postgres:15.10", "postgres:15.10"},
		{Mirror{Registry: "127.0.0.1:5000"}, "postgres:15.10", "127.0.0.1:5000/library/postgres:15.10"},
		{Mirror{Registry: "127.0.0.1:5000"}, "wekanteam/wekan:v7.61", "127.0.0.1:5000/wekanteam/wekan:v7.61"},
		{Mirror{Registry: "mirror.example.com/"}, "docker.elastic.co/elasticsearch/elasticsearch:8.15.2", "mirror.example.com/elasticsearch/elasticsearch:8.15.2"},
		{Mirror{Registry: "m.example", Images: map[string]string{"wekanteam/wekan": "registry.example.com/wekan"}}, "wekanteam/wekan:v7.61", "registry.example.com/wekan:v7.61"},
		{Mirror{Images: map[string]string{"postgres": "r.example/pg"}}, "postgres:15.10", "r.example/pg:15.10"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			got, err := tt.mirror.Rewrite(tt.image)
			if err != nil || got != tt.want {
				t.Fatalf("Rewrite(%s) = %s, %v; want %s", tt.image, got, err, tt.want)
			}
		})
	}
}

// checkPorts: with a gateway, no web or routed port is published on a
// public address, and the other published ports are the minion's
// public_ports, bound as the compose file says.
func checkPorts(t *testing.T, p *Plan, gateway bool) {
	t.Helper()
	m := p.Minion
	for _, s := range p.Services {
		for port, bs := range s.Host.PortBindings {
			served := m.serves(s.Service, port.Int())
			for _, b := range bs {
				switch {
				case served && gateway && b.HostIP != "127.0.0.1":
					t.Errorf("%s: %s is published on %q with a gateway, want 127.0.0.1 only", s.Service, port, b.HostIP)
				case !served && b.HostIP == "127.0.0.1":
					t.Errorf("%s: %s is not served by the gateway but bound to loopback", s.Service, port)
				case !served && !slices.Contains(m.PublicPorts, port.Int()):
					t.Errorf("%s: %s is published but neither the web port, routed nor in public_ports", s.Service, port)
				}
			}
		}
	}
}

// Found by FuzzRenderCompose: compose-go quotes the value it refuses, so a
// secret interpolated where it does not belong showed in the error, and
// from there in the log.
func TestRenderErrorsHideSecrets(t *testing.T) {
	const pass = "s3cret-generated-pass"
	for _, tc := range []struct{ name, web string }{
		{"compose-go's refusal", "    ports: [\"${DB_PASSWORD}:80\"]\n"},
		{"Summoner's refusal", "    volumes: [\"/srv/${DB_PASSWORD}:/x\"]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Minion{
				Name: "sec", Version: "1.0", Subdomain: "sec", Web: Web{Service: "web", Port: 80},
				Settings: []Setting{{Name: "DB_PASSWORD", Secret: true, Generate: true}},
				compose:  []byte("services:\n  web:\n    image: nginx:1.27\n" + tc.web), source: "test",
			}
			_, err := Render(context.Background(), m, RenderOptions{Domain: "example.com", VSRoot: "/srv/v", DBSRoot: "/srv/d",
				Secrets: map[string]string{"DB_PASSWORD": pass}})
			if err == nil || strings.Contains(err.Error(), pass) || !strings.Contains(err.Error(), "***") {
				t.Fatalf("error %v: want it refused with the password hidden", err)
			}
		})
	}
}
