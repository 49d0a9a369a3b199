package minions

import (
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/docker/docker/api/types/container"
	"gopkg.in/yaml.v3"
)

// The folders a fuzzed minion may keep data in (RenderOptions' roots).
const (
	fuzzVSRoot  = "/srv/v"
	fuzzDBSRoot = "/srv/d"
)

// FuzzCustomMinion: a minion from docker.minions_dir (its minion.yml and
// compose.yml, both written by hand) and a setting value typed at summon
// time are loaded and rendered as `summon` does. Nothing makes it panic;
// it ends in a plan or an error; and no plan ever has a container out of
// its box (see checkConfined). Seeds: every built-in minion, the test
// minions and the refused keys dressed up in the ways YAML and compose
// allow (anchors, extends, interpolation).
func FuzzCustomMinion(f *testing.F) {
	catalog, _ := fs.Sub(builtin, "catalog")
	for _, fsys := range []fs.FS{catalog, os.DirFS("testdata/minions")} {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			meta, err1 := fs.ReadFile(fsys, path.Join(e.Name(), "minion.yml"))
			compose, err2 := fs.ReadFile(fsys, path.Join(e.Name(), "compose.yml"))
			if err1 != nil || err2 != nil {
				f.Fatalf("minion %s: %v %v", e.Name(), err1, err2)
			}
			f.Add(meta, compose, "", false)
			f.Add(meta, compose, "../../etc", true)
		}
	}
	meta := []byte("name: fz\nversion: \"1.0\"\nweb: {service: web, port: 80}\nsettings:\n  - {name: FLAG, default: \"false\"}\n  - {name: SUB, default: uploads}\n  - {name: PASS, secret: true, generate: true}\n")
	for _, s := range []struct{ web, top, setting string }{
		{"    privileged: ${FLAG}\n", "", "true"},
		{"    privileged: ${FLAG}\n", "", "false"},
		{"    volumes: [\"${DATA}/${SUB}:/x:ro\", \"${DB_DATA}:/d\"]\n    tmpfs: [/tmp]\n", "", "../../etc"},
		{"    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n", "", ""},
		{"    volumes: [{type: bind, source: \"${DATA}/../../../etc\", target: /e}]\n", "", ""},
		{"    network_mode: host\n    pid: host\n    ipc: host\n    userns_mode: host\n    uts: host\n    cgroup: host\n", "", ""},
		{"    cap_drop: [ALL]\n    cap_add: [chown, CAP_SETUID]\n    security_opt: [\"no-new-privileges:true\"]\n", "", ""},
		{"    cap_add: [cap_sys_admin, \" ALL \"]\n    security_opt: [\"seccomp=unconfined\", \"apparmor:unconfined\"]\n", "", ""},
		{"    devices: [/dev/sda]\n    runtime: runc\n    cgroup_parent: x\n    oom_kill_disable: true\n    oom_score_adj: -1000\n", "", ""},
		{"    <<: *danger\n", "x-danger: &danger\n  privileged: true\n", ""},
		{"    extends: {service: bad}\n", "", ""},
		{"    ports: [\"80\", \"0.0.0.0:${FLAG}:80/udp\", \"[::]:8080:80\"]\n    environment: {PASS: \"${PASS}\"}\n", "", "8081"},
		{"    labels: {summoner.minion: other, summoner.role: db}\n    ipc: shareable\n    cgroup: private\n", "", ""},
	} {
		bad := ""
		if strings.Contains(s.web, "extends") {
			bad = "  bad:\n    image: nginx:1.27\n    privileged: true\n    network_mode: host\n"
		}
		compose := s.top + "services:\n" + bad + "  web:\n    image: nginx:1.27\n" + s.web
		f.Add(meta, []byte(compose), s.setting, true)
	}
	f.Fuzz(func(t *testing.T, meta, compose []byte, setting string, gateway bool) {
		// The folder is named after the minion, as loadMinion requires.
		var named struct{ Name string }
		_ = yaml.Unmarshal(meta, &named)
		dir := named.Name
		if !fs.ValidPath(dir) || dir == "." || strings.Contains(dir, "/") {
			dir = "fz"
		}
		fsys := fstest.MapFS{dir + "/minion.yml": {Data: meta}, dir + "/compose.yml": {Data: compose}}
		m, err := loadMinion(fsys, dir, "/etc/summoner/minions")
		if err != nil {
			return
		}
		o := RenderOptions{
			Domain: "example.com", VSRoot: fuzzVSRoot, DBSRoot: fuzzDBSRoot, Gateway: gateway,
			Settings: map[string]string{}, Secrets: map[string]string{},
		}
		for _, s := range m.Settings {
			if s.Generate {
				o.Secrets[s.Name] = "generated-" + strings.ToLower(s.Name)
			} else {
				o.Settings[s.Name] = setting
			}
		}
		p, err := Render(context.Background(), m, o)
		switch {
		case err != nil && p != nil:
			t.Fatalf("both a plan and an error: %v", err)
		case err != nil:
			return
		case p == nil:
			t.Fatal("neither a plan nor an error")
		}
		checkConfined(t, m, p, gateway)
	})
}

// checkConfined: nothing in a rendered container reaches the host beyond
// what any plain container has: no privilege, no host namespace, no
// device, no extra capability, no bind outside the minion's folders.
func checkConfined(t *testing.T, m *Minion, p *Plan, gateway bool) {
	t.Helper()
	roots := []string{filepath.Join(fuzzVSRoot, m.Name), filepath.Join(fuzzDBSRoot, m.Name)}
	for _, sp := range p.Services {
		h, c := sp.Host, sp.Config
		bad := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("service %s: "+format, append([]any{sp.Service}, args...)...)
		}
		if h.Privileged {
			bad("privileged")
		}
		for what, mode := range map[string]string{
			"network_mode": string(h.NetworkMode), "pid": string(h.PidMode), "uts": string(h.UTSMode),
			"userns_mode": string(h.UsernsMode), "cgroup_parent": h.CgroupParent, "runtime": h.Runtime,
			"cgroup": string(h.Cgroup),
		} {
			if mode != "" {
				bad("%s %q", what, mode)
			}
		}
		if !slices.Contains([]container.IpcMode{"", "private", "shareable", "none"}, h.IpcMode) {
			bad("ipc %q", h.IpcMode)
		}
		if !slices.Contains([]container.CgroupnsMode{"", "private"}, h.CgroupnsMode) {
			bad("cgroup %q", h.CgroupnsMode)
		}
		if len(h.Devices)+len(h.DeviceCgroupRules)+len(h.DeviceRequests)+len(h.VolumesFrom)+len(h.Links)+len(h.Mounts) > 0 {
			bad("devices, volumes_from, links or mounts: %+v", h)
		}
		if h.OomKillDisable != nil && *h.OomKillDisable || h.OomScoreAdj < 0 || h.CPURealtimeRuntime != 0 || h.CPURealtimePeriod != 0 {
			bad("oom or real-time settings: %+v", h.Resources)
		}
		for _, cp := range h.CapAdd {
			if !slices.Contains(harmlessCaps, strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(cp)), "CAP_")) {
				bad("cap_add %q", cp)
			}
		}
		for _, o := range h.SecurityOpt {
			if k, _, _ := strings.Cut(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(o)), "=", ":"), ":"); k != "no-new-privileges" {
				bad("security_opt %q", o)
			}
		}
		for _, b := range h.Binds {
			src, _, _ := strings.Cut(b, ":")
			if !underAny(src, roots) || filepath.Base(src) == "docker.sock" && !strings.HasPrefix(filepath.Clean(src), roots[0]+"/") {
				bad("bind %q outside %q", b, roots)
			}
		}
		if c.Labels[LabelMinion] != m.Name || c.Labels[LabelRole] != sp.Role {
			bad("labels %v", c.Labels)
		}
		if gateway && m.serves(sp.Service, m.Web.Port) {
			for port, bs := range h.PortBindings {
				if port.Int() == m.Web.Port {
					for _, b := range bs {
						if b.HostIP != "127.0.0.1" {
							bad("web port %s published on %q behind the gateway", port, b.HostIP)
						}
					}
				}
			}
		}
	}
}
