package minions

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Minion is one app of the catalog, as its minion.yml describes it.
type Minion struct {
	Name        string    `yaml:"name"`
	Description string    `yaml:"description"`
	Version     string    `yaml:"version"`   // pinned default, fills ${VERSION}
	Subdomain   string    `yaml:"subdomain"` // default: the name
	Web         Web       `yaml:"web"`
	Database    *Database `yaml:"database"`
	Settings    []Setting `yaml:"settings"`
	Health      Health    `yaml:"health"`
	// Routes send some paths of the minion's host to other services than
	// the web service (Taiga's /api to taiga-back), through the gateway.
	Routes []Route `yaml:"routes"`
	// PublicPorts are container ports the minion publishes on the server's
	// addresses on purpose, gateway or not (GitLab's SSH, Logstash's Beats
	// input). The web port and routed ports are never public while a
	// gateway serves the minion: they are bound to 127.0.0.1 only.
	PublicPorts []int `yaml:"public_ports"`
	// DataOwner is the "uid:gid" the app runs as, for images that do not
	// run as root: the data folders Summoner creates under ${DATA} get it.
	DataOwner string `yaml:"data_owner"`

	compose []byte // the compose file
	source  string // "built-in" or the folder it came from
}

// Web is the service users reach, and its port inside the container.
type Web struct {
	Service string `yaml:"service"`
	Port    int    `yaml:"port"`
	// PortSetting names the setting that publishes the port on the host.
	PortSetting string `yaml:"port_setting"`
}

// Route sends the requests whose path is Path, or under it, to a service
// of the minion: Path /api takes /api and /api/…, not /apix. The path is
// passed on as it is, prefix included.
type Route struct {
	Path    string `yaml:"path"`
	Service string `yaml:"service"`
	Port    int    `yaml:"port"` // the port inside the service's container
}

// Database is the minion's database service.
type Database struct {
	Service string `yaml:"service"`
	Kind    string `yaml:"kind"` // postgres, mysql, mariadb, mongodb
	Name    string `yaml:"name"` // the database inside the server
	User    string `yaml:"user"`
	// PasswordSetting names the setting holding the user's password.
	PasswordSetting string `yaml:"password_setting"`
}

// Setting is a value the user must or may give at summon time
// (`summon ghost MAIL_FROM=x@example.com`), available as ${NAME}.
type Setting struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Default     string `yaml:"default"`
	Required    bool   `yaml:"required"`
	Secret      bool   `yaml:"secret"`
	// Generate makes a random value once per minion, kept for redeploys.
	Generate bool `yaml:"generate"`
}

// Health says how to tell the web service is up when its image and the
// compose file define no health check.
type Health struct {
	Path    string `yaml:"path"`    // HTTP path probed on the web port; "" means a TCP probe
	Timeout string `yaml:"timeout"` // how long a summon waits, e.g. 5m
}

// DBKinds are the database kinds Summoner knows how to run and dump.
var DBKinds = []string{"postgres", "mysql", "mariadb", "mongodb"}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)
var settingRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
var ownerRE = regexp.MustCompile(`^[0-9]+:[0-9]+$`)

// reserved variables are filled in by Summoner, not by settings.
var reserved = []string{"VERSION", "MINION", "DOMAIN", "HOST", "DATA", "DB_DATA"}

//go:embed catalog
var builtin embed.FS

// Catalog is every minion Summoner can summon.
type Catalog struct {
	byName map[string]*Minion
}

// LoadCatalog reads the built-in catalog, then the user's minions_dir (if
// not ""), whose folders add minions or replace built-in ones.
func LoadCatalog(minionsDir string) (*Catalog, error) {
	c := &Catalog{byName: map[string]*Minion{}}
	sub, _ := fs.Sub(builtin, "catalog")
	if err := c.addFrom(sub, "built-in"); err != nil {
		return nil, err
	}
	if minionsDir != "" {
		if err := c.addFrom(os.DirFS(minionsDir), minionsDir); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *Catalog) addFrom(fsys fs.FS, source string) error {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return fmt.Errorf("reading minions from %s: %w", source, err)
	}
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		m, err := loadMinion(fsys, e.Name(), source)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.byName[m.Name] = m
	}
	return errors.Join(errs...)
}

func loadMinion(fsys fs.FS, dir, source string) (*Minion, error) {
	where := path.Join(source, dir)
	meta, err := fs.ReadFile(fsys, path.Join(dir, "minion.yml"))
	if err != nil {
		return nil, fmt.Errorf("minion %s: %w", where, err)
	}
	m := &Minion{source: source}
	dec := yaml.NewDecoder(strings.NewReader(string(meta)))
	dec.KnownFields(true)
	if err := dec.Decode(m); err != nil {
		return nil, fmt.Errorf("minion %s/minion.yml: %w", where, err)
	}
	for _, name := range []string{"compose.yml", "compose.yaml", "docker-compose.yml"} {
		if m.compose, err = fs.ReadFile(fsys, path.Join(dir, name)); err == nil {
			break
		}
	}
	if m.compose == nil {
		return nil, fmt.Errorf("minion %s: no compose.yml", where)
	}
	if m.Subdomain == "" {
		m.Subdomain = m.Name
	}
	services, err := composeServices(m.compose)
	if err != nil {
		return nil, fmt.Errorf("minion %s/compose.yml: %w", where, err)
	}
	if err := m.validate(dir, services); err != nil {
		return nil, fmt.Errorf("minion %s/minion.yml: %w", where, err)
	}
	return m, nil
}

// composeServices lists the services a compose file defines, without
// interpolating it (that needs the settings, at summon time).
func composeServices(compose []byte) ([]string, error) {
	var f struct {
		Services map[string]yaml.Node `yaml:"services"`
	}
	if err := yaml.Unmarshal(compose, &f); err != nil {
		return nil, err
	}
	return sortedKeys(f.Services), nil
}

func (m *Minion) validate(dir string, services []string) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !nameRE.MatchString(m.Name) {
		bad("name %q: use lowercase letters, digits and dashes", m.Name)
	}
	if m.Name != dir {
		bad("name %q differs from its folder %q", m.Name, dir)
	}
	if m.Version == "" || m.Version == "latest" {
		bad("version: pin a version, not %q", m.Version)
	}
	if m.DataOwner != "" && !ownerRE.MatchString(m.DataOwner) {
		bad("data_owner %q: write it as uid:gid, e.g. 1000:1000", m.DataOwner)
	}
	if m.Web.Service == "" || m.Web.Port <= 0 {
		bad("web: needs service and port")
	}
	if d := m.Database; d != nil && (d.Service == "" || !slices.Contains(DBKinds, d.Kind)) {
		bad("database: needs service and a kind among %s", strings.Join(DBKinds, ", "))
	}
	seen := map[string]bool{}
	for _, s := range m.Settings {
		switch {
		case !settingRE.MatchString(s.Name):
			bad("setting %q: use UPPER_CASE", s.Name)
		case slices.Contains(reserved, s.Name):
			bad("setting %s: the name is reserved", s.Name)
		case seen[s.Name]:
			bad("setting %s: defined twice", s.Name)
		case s.Required && (s.Default != "" || s.Generate):
			bad("setting %s: required settings have no default", s.Name)
		}
		seen[s.Name] = true
	}
	if p := m.Web.PortSetting; p != "" && !seen[p] {
		bad("web.port_setting %s: no such setting", p)
	}
	if d := m.Database; d != nil && d.PasswordSetting != "" && !seen[d.PasswordSetting] {
		bad("database.password_setting %s: no such setting", d.PasswordSetting)
	}
	errs = append(errs, m.validateRoutes(services)...)
	return errors.Join(errs...)
}

// validateRoutes checks routes and public_ports, each problem on its own.
func (m *Minion) validateRoutes(services []string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	paths := map[string]bool{}
	routed := map[int]bool{m.Web.Port: true}
	for i, r := range m.Routes {
		what := fmt.Sprintf("routes[%d]", i)
		if r.Path != "" {
			what = "route " + r.Path
		}
		switch {
		case r.Path == "":
			bad("%s: needs a path, such as /api", what)
		case !strings.HasPrefix(r.Path, "/"):
			bad("%s: the path must start with /", what)
		case r.Path == "/":
			bad("%s: / is the web service's; route a path under it, such as /api", what)
		case path.Clean(r.Path) != r.Path || strings.ContainsAny(r.Path, "?#*%\\ \t"):
			bad("%s: write the path plainly, such as /api (no trailing slash, no . or .., no ?, #, * or %%)", what)
		case paths[r.Path]:
			bad("%s: routed twice", what)
		}
		paths[r.Path] = true
		switch {
		case r.Service == "":
			bad("%s: needs a service", what)
		case !slices.Contains(services, r.Service):
			bad("%s: the service %q is not in the compose file (it has %s)", what, r.Service, strings.Join(services, ", "))
		}
		if r.Port <= 0 || r.Port > 65535 {
			bad("%s: needs the port inside the container, from 1 to 65535, not %d", what, r.Port)
		}
		routed[r.Port] = true
	}
	seen := map[int]bool{}
	for _, p := range m.PublicPorts {
		switch {
		case p <= 0 || p > 65535:
			bad("public_ports %d: a container port is from 1 to 65535", p)
		case p == m.Web.Port:
			bad("public_ports %d: that is the web port, which the gateway serves", p)
		case routed[p]:
			bad("public_ports %d: that port is routed, so the gateway serves it", p)
		case seen[p]:
			bad("public_ports %d: listed twice", p)
		}
		seen[p] = true
	}
	return errs
}

// Setting finds a setting by name.
func (m *Minion) Setting(name string) (Setting, bool) {
	for _, s := range m.Settings {
		if s.Name == name {
			return s, true
		}
	}
	return Setting{}, false
}

// Source says where the minion was defined.
func (m *Minion) Source() string { return m.source }

// Get finds a minion by name.
func (c *Catalog) Get(name string) (*Minion, bool) {
	m, ok := c.byName[strings.ToLower(name)]
	return m, ok
}

// All lists the minions by name.
func (c *Catalog) All() []*Minion {
	out := make([]*Minion, 0, len(c.byName))
	for _, m := range c.byName {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
