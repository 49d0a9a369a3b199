package minions

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
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
// compose.yml, both written by hand) and a value typed at summon time for
// one of its settings are loaded and rendered as `summon` does. Nothing makes it panic;
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
			f.Add(meta, compose, "8080", uint8(0), false)
			f.Add(meta, compose, "8080", uint8(1), true)
		}
	}
	meta := []byte("name: fz\nversion: \"1.0\"\nweb: {service: web, port: 80}\nsettings:\n  - {name: FLAG, default: \"false\"}\n  - {name: SUB, default: uploads}\n  - {name: PASS, secret: true, generate: true}\n")
	for _, s := range dangerSeeds {
		f.Add(meta, []byte(s.compose()), s.setting, s.which, true)
	}
	f.Fuzz(func(t *testing.T, meta, compose []byte, setting string, which uint8, gateway bool) {
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
		for i, s := range m.Settings {
			switch {
			case i == int(which)%len(m.Settings):
				o.Settings[s.Name] = setting
			case s.Generate:
				o.Secrets[s.Name] = fuzzSecret + strings.ToLower(s.Name)
			case s.Required:
				o.Settings[s.Name] = "given"
			}
		}
		p, err := Render(context.Background(), m, o)
		switch {
		case err != nil && p != nil:
			t.Fatalf("both a plan and an error: %v", err)
		case err != nil && strings.Contains(err.Error(), fuzzSecret) && !bytes.Contains(meta, []byte(fuzzSecret)) && !bytes.Contains(compose, []byte(fuzzSecret)):
			t.Fatalf("the refusal shows a generated secret: %v", err)
		case err != nil:
			return
		case p == nil:
			t.Fatal("neither a plan nor an error")
		}
		checkConfined(t, m, p, gateway)
	})
}

// FuzzRenderCompose spends the fuzzing on the compose file alone: its
// minion.yml is made up to fit (the first service is the web one, every
// ${NAME} a setting, 8080 or the typed value), so nearly every input reaches
// compose-go and the checks, where FuzzCustomMinion's mostly stop at a
// minion.yml that no longer loads. The property is the same.
func FuzzRenderCompose(f *testing.F) {
	catalog, _ := fs.Sub(builtin, "catalog")
	for _, fsys := range []fs.FS{catalog, os.DirFS("testdata/minions")} {
		files, err := fs.Glob(fsys, "*/compose.yml")
		if err != nil || len(files) == 0 {
			f.Fatalf("no compose files: %v", err)
		}
		for _, file := range files {
			compose, err := fs.ReadFile(fsys, file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(compose, "8080", uint8(0), false)
			f.Add(compose, "8080", uint8(1), true)
		}
	}
	for _, s := range dangerSeeds {
		f.Add([]byte(s.compose()), s.setting, uint8(0), true)
	}
	f.Fuzz(func(t *testing.T, compose []byte, setting string, which uint8, gateway bool) {
		services, err := composeServices(compose)
		if err != nil || len(services) == 0 || !nameRE.MatchString(services[0]) {
			return
		}
		m := &Minion{Name: "fz", Version: "1.0", Subdomain: "fz", Web: Web{Service: services[0], Port: 80},
			compose: compose, source: "/etc/summoner/minions"}
		o := RenderOptions{Domain: "example.com", VSRoot: fuzzVSRoot, DBSRoot: fuzzDBSRoot, Gateway: gateway, Settings: map[string]string{}}
		for _, v := range varRE.FindAllStringSubmatch(string(compose), -1) {
			if name := v[1]; !slices.Contains(reserved, name) && !slices.ContainsFunc(m.Settings, func(s Setting) bool { return s.Name == name }) {
				m.Settings = append(m.Settings, Setting{Name: name, Default: "8080"}) // a port, a name, a word
			}
		}
		if len(m.Settings) > 0 {
			o.Settings[m.Settings[int(which)%len(m.Settings)].Name] = setting
		}
		// The settings named like a password are generated secrets, as
		// in the catalog: no refusal may show them.
		o.Secrets = map[string]string{}
		for i, s := range m.Settings {
			if strings.Contains(s.Name, "PASS") || strings.Contains(s.Name, "SECRET") || strings.Contains(s.Name, "KEY") {
				m.Settings[i].Secret, m.Settings[i].Generate, m.Settings[i].Default = true, true, ""
				o.Secrets[s.Name] = fuzzSecret
				delete(o.Settings, s.Name)
			}
		}
		p, err := Render(context.Background(), m, o)
		switch {
		case err != nil && p != nil:
			t.Fatalf("both a plan and an error: %v", err)
		case err == nil && p == nil:
			t.Fatal("neither a plan nor an error")
		case err == nil:
			checkConfined(t, m, p, gateway)
		case strings.Contains(err.Error(), fuzzSecret) && !bytes.Contains(compose, []byte(fuzzSecret)):
			t.Fatalf("the refusal shows a secret: %v", err)
		}
	})
}

// fuzzSecret is the value of every generated secret (in FuzzCustomMinion,
// its start).
const fuzzSecret = "Zq7SeededSecretValue"

// varRE finds the ${NAME} and $NAME a compose file uses.
var varRE = regexp.MustCompile(`\$\{?([A-Z][A-Z0-9_]*)`)

// dangerSeeds are a web service's keys that must be refused, or rendered
// confined, dressed up in the ways YAML and compose allow: through a
// setting, an anchor, extends.
var dangerSeeds = []dangerSeed{
	{"    privileged: ${FLAG}\n", "", "true", 0},
	{"    privileged: ${FLAG}\n", "", "false", 0},
	{"    volumes: [\"${DATA}/${SUB}:/x:ro\", \"${DB_DATA}:/d\"]\n    tmpfs: [/tmp]\n", "", "../../etc", 1},
	{"    volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]\n", "", "", 0},
	{"    volumes: [{type: bind, source: \"${DATA}/../../../etc\", target: /e}]\n", "", "", 0},
	{"    network_mode: host\n    pid: host\n    ipc: host\n    userns_mode: host\n    uts: host\n    cgroup: host\n", "", "", 0},
	{"    cap_drop: [ALL]\n    cap_add: [chown, CAP_SETUID]\n    security_opt: [\"no-new-privileges:true\"]\n", "", "", 0},
	{"    cap_add: [cap_sys_admin, \" ALL \"]\n    security_opt: [\"seccomp=unconfined\", \"apparmor:unconfined\"]\n", "", "", 0},
	{"    devices: [/dev/sda]\n    runtime: runc\n    cgroup_parent: x\n    oom_kill_disable: true\n    oom_score_adj: -1000\n", "", "", 0},
	{"    <<: *danger\n", "x-danger: &danger\n  privileged: true\n", "", 0},
	{"    extends: {service: zbad}\n", "  zbad:\n    image: nginx:1.27\n    privileged: true\n    network_mode: host\n", "", 0},
	{"    ports: [\"80\", \"0.0.0.0:${FLAG}:80/udp\", \"[::]:8080:80\"]\n    environment: {PASS: \"${PASS}\"}\n", "", "8081", 0},
	{"    ports: [\"${DB_PASSWORD}:80\"]\n    mem_limit: ${SECRET_KEY}\n", "", "", 0},
	{"    labels: {summoner.minion: other, summoner.role: db}\n    ipc: shareable\n    cgroup: private\n", "", "", 0},
}

type dangerSeed struct {
	web     string // lines of the web service
	more    string // a top-level x- anchor, or another service
	setting string
	which   uint8 // the setting of the seeds' minion.yml it goes to
}

func (s dangerSeed) compose() string {
	if strings.HasPrefix(s.more, "x-") {
		return s.more + "services:\n  web:\n    image: nginx:1.27\n" + s.web
	}
	return "services:\n  web:\n    image: nginx:1.27\n" + s.web + s.more
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
