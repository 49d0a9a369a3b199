package minions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/interpolation"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
	"github.com/docker/go-units"
)

// Labels Summoner puts on what it creates; code finds containers by these.
const (
	LabelMinion  = "summoner.minion"
	LabelRole    = "summoner.role" // web, db or service
	LabelDB      = "summoner.db"   // the database kind, on the db service
	LabelVersion = "summoner.version"
	LabelHash    = "summoner.config-hash"
	LabelImage   = "summoner.image" // the image as the minion names it, before any mirror

	labelProject = "com.docker.compose.project"
	labelService = "com.docker.compose.service"
)

// Roles of services.
const (
	RoleWeb     = "web"
	RoleDB      = "db"
	RoleService = "service"
)

// Mirror rewrites image references for private or air-gapped installs.
type Mirror struct {
	// Registry, when set, serves every image: wekanteam/wekan:X is pulled
	// as <Registry>/wekanteam/wekan:X, postgres:15 as <Registry>/library/postgres:15.
	Registry string
	// Images maps a repository as the minion writes it to a replacement
	// repository, e.g. "wekanteam/wekan": "registry.example.com/wekan".
	Images map[string]string
}

// Rewrite gives the reference to pull for image.
func (m Mirror) Rewrite(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", image, err)
	}
	suffix := strings.TrimPrefix(reference.FamiliarString(named), reference.FamiliarName(named))
	for _, key := range []string{reference.FamiliarName(named), named.Name()} {
		if repl, ok := m.Images[key]; ok {
			return repl + suffix, nil
		}
	}
	if m.Registry == "" {
		return image, nil
	}
	return strings.TrimSuffix(m.Registry, "/") + "/" + reference.Path(named) + suffix, nil
}

// RenderOptions is what turns a minion into a Plan.
type RenderOptions struct {
	Domain  string
	VSRoot  string // app data root; the minion's data is VSRoot/<name>
	DBSRoot string // database data root
	Version string // "" for the minion's pinned version
	// Settings the user gave; Secrets generated earlier (see SecretStore).
	Settings map[string]string
	Secrets  map[string]string
	Mirror   Mirror
}

// Plan is a minion rendered into the containers to run.
type Plan struct {
	Minion   *Minion
	Version  string
	Project  string // compose project name
	Network  string
	Services []*ServicePlan // in dependency order
	URL      string         // https://<subdomain>.<domain>
	HostPort string         // the web port published on the host, if any
	DataDirs []string       // host folders the minion keeps data in
	// Secrets are the values to hide from logs and chat.
	Secrets []string
}

// ServicePlan is one container.
type ServicePlan struct {
	Service   string
	Role      string
	Container string            // container name, from the seed's scheme
	Image     string            // as the minion names it
	Pull      string            // what to pull (through the mirror)
	DependsOn map[string]string // service -> condition (service_started, service_healthy)
	Config    *container.Config
	Host      *container.HostConfig
	Aliases   []string
	Hash      string
	DataDirs  []string
}

// unsupported are compose keys Summoner does not run; a minion using one
// gets a clear error rather than a silently different deployment.
var unsupported = []string{
	"services.*.build", "services.*.container_name", "services.*.network_mode", "services.*.networks",
	"services.*.deploy", "services.*.extends", "services.*.links", "services.*.secrets", "services.*.configs",
	"services.*.profiles", "services.*.privileged", "services.*.pid", "services.*.ipc", "services.*.env_file",
	"services.*.volumes_from", "services.*.scale", "networks", "volumes", "secrets", "configs",
}

// Render interpolates the minion's compose file with its settings and the
// configuration, and turns it into a Plan. It does not touch Docker.
func Render(ctx context.Context, m *Minion, o RenderOptions) (*Plan, error) {
	values, secretValues, err := m.values(o)
	if err != nil {
		return nil, err
	}
	var missing []string
	lookup := func(name string) (string, bool) {
		v, ok := values[name]
		if !ok && !slices.Contains(missing, name) {
			missing = append(missing, name)
		}
		return v, ok
	}
	var unsupportedFound []string
	patterns := make([]loader.UnsupportedAttributePattern, len(unsupported))
	for i, p := range unsupported {
		patterns[i] = loader.UnsupportedAttributePattern{Path: tree.NewPath(strings.Split(p, ".")...)}
	}
	details := types.ConfigDetails{
		WorkingDir:  o.VSRoot,
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yml", Content: m.compose}},
		Environment: values,
	}
	project, err := loader.LoadWithContext(ctx, details, func(lo *loader.Options) {
		lo.SetProjectName(m.Name, true)
		lo.SkipConsistencyCheck = false
		lo.Interpolate = &interpolation.Options{LookupValue: lookup}
	}, loader.WithUnsupportedAttributesCheck(patterns, func(found []loader.UnsupportedAttribute) {
		for _, f := range found {
			unsupportedFound = append(unsupportedFound, string(f.Path))
		}
	}))
	if err != nil {
		return nil, fmt.Errorf("minion %s: compose file: %w", m.Name, err)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("minion %s: compose file uses ${%s}, which is no setting of the minion", m.Name, strings.Join(missing, "}, ${"))
	}
	if len(unsupportedFound) > 0 {
		return nil, fmt.Errorf("minion %s: compose file uses %s, which Summoner does not support", m.Name, strings.Join(unsupportedFound, ", "))
	}

	p := &Plan{
		Minion: m, Version: values["VERSION"], Project: m.Name, Network: m.Name + "_default",
		URL:      "https://" + values["HOST"],
		DataDirs: []string{values["DATA"], values["DB_DATA"]},
		Secrets:  secretValues,
	}
	if _, ok := project.Services[m.Web.Service]; !ok {
		return nil, fmt.Errorf("minion %s: the web service %q is not in the compose file", m.Name, m.Web.Service)
	}
	if m.Database != nil {
		if _, ok := project.Services[m.Database.Service]; !ok {
			return nil, fmt.Errorf("minion %s: the database service %q is not in the compose file", m.Name, m.Database.Service)
		}
	}
	order, err := dependencyOrder(project)
	if err != nil {
		return nil, fmt.Errorf("minion %s: %w", m.Name, err)
	}
	for _, name := range order {
		sp, err := p.service(project.Services[name], values, o)
		if err != nil {
			return nil, fmt.Errorf("minion %s: service %s: %w", m.Name, name, err)
		}
		p.Services = append(p.Services, sp)
	}
	return p, nil
}

// values are the variables the compose file may use: the reserved ones,
// then settings (given, else default, else generated secret).
func (m *Minion) values(o RenderOptions) (map[string]string, []string, error) {
	domain := o.Domain
	if domain == "" {
		domain = "localhost"
	}
	version := o.Version
	if version == "" {
		version = m.Version
	}
	v := map[string]string{
		"VERSION": version, "MINION": m.Name, "DOMAIN": domain, "HOST": m.Subdomain + "." + domain,
		"DATA": filepath.Join(o.VSRoot, m.Name), "DB_DATA": filepath.Join(o.DBSRoot, m.Name),
	}
	var unknown, required []string
	for k := range o.Settings {
		if _, ok := m.Setting(k); !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, nil, &SettingsError{Minion: m, Unknown: unknown}
	}
	var secrets []string
	for _, s := range m.Settings {
		val, given := o.Settings[s.Name]
		switch {
		case given:
		case s.Generate:
			val = o.Secrets[s.Name]
			if val == "" {
				return nil, nil, fmt.Errorf("minion %s: no generated value for %s", m.Name, s.Name)
			}
		case s.Required:
			required = append(required, s.Name)
		default:
			val = s.Default
		}
		v[s.Name] = val
		if s.Secret && val != "" {
			secrets = append(secrets, val)
		}
	}
	if len(required) > 0 {
		return nil, nil, &SettingsError{Minion: m, Missing: required}
	}
	return v, secrets, nil
}

// SettingsError is a summon with unknown or missing settings.
type SettingsError struct {
	Minion  *Minion
	Unknown []string
	Missing []string
}

func (e *SettingsError) Error() string {
	var names []string
	for _, s := range e.Minion.Settings {
		names = append(names, s.Name)
	}
	known := "it has no settings"
	if len(names) > 0 {
		known = "its settings are " + strings.Join(names, ", ")
	}
	if len(e.Unknown) > 0 {
		return fmt.Sprintf("%s has no setting %s; %s", e.Minion.Name, strings.Join(e.Unknown, ", "), known)
	}
	return fmt.Sprintf("%s needs %s: add %s=… to the command", e.Minion.Name, strings.Join(e.Missing, ", "), strings.Join(e.Missing, "=… "))
}

func dependencyOrder(p *types.Project) ([]string, error) {
	names := p.ServiceNames()
	sort.Strings(names)
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string, path []string) error
	visit = func(n string, path []string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("services depend on each other in a circle: %s", strings.Join(append(path, n), " -> "))
		case 2:
			return nil
		}
		state[n] = 1
		deps := make([]string, 0, len(p.Services[n].DependsOn))
		for d := range p.Services[n].DependsOn {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := p.Services[d]; !ok {
				return fmt.Errorf("service %s depends on %s, which does not exist", n, d)
			}
			if err := visit(d, append(path, n)); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// ContainerName follows the seed's scheme: <minion>-<domain> for the app,
// <dbkind>-<minion>-<domain> for its database, <service>-<minion>-<domain>
// for the rest.
func ContainerName(m *Minion, service, domain string) string {
	if domain == "" {
		domain = "localhost"
	}
	switch {
	case service == m.Web.Service:
		return m.Name + "-" + domain
	case m.Database != nil && service == m.Database.Service:
		return m.Database.Kind + "-" + m.Name + "-" + domain
	}
	return service + "-" + m.Name + "-" + domain
}

func (p *Plan) service(s types.ServiceConfig, values map[string]string, o RenderOptions) (*ServicePlan, error) {
	m := p.Minion
	sp := &ServicePlan{
		Service: s.Name, Role: RoleService, Container: ContainerName(m, s.Name, values["DOMAIN"]),
		Image: s.Image, Aliases: []string{s.Name}, DependsOn: map[string]string{},
	}
	switch {
	case s.Name == m.Web.Service:
		sp.Role = RoleWeb
	case m.Database != nil && s.Name == m.Database.Service:
		sp.Role = RoleDB
	}
	if err := checkPinned(s.Image); err != nil {
		return nil, err
	}
	pull, err := o.Mirror.Rewrite(s.Image)
	if err != nil {
		return nil, err
	}
	sp.Pull = pull
	for d, dep := range s.DependsOn {
		sp.DependsOn[d] = dep.Condition
	}

	labels := map[string]string{}
	for k, v := range s.Labels {
		labels[k] = v
	}
	cfg := &container.Config{
		Image:      pull,
		Env:        envList(s.Environment),
		Labels:     labels,
		User:       s.User,
		WorkingDir: s.WorkingDir,
		Hostname:   s.Hostname,
		StopSignal: s.StopSignal,
		Tty:        s.Tty,
		OpenStdin:  s.StdinOpen,
	}
	if len(s.Command) > 0 {
		cfg.Cmd = []string(s.Command)
	}
	if len(s.Entrypoint) > 0 {
		cfg.Entrypoint = []string(s.Entrypoint)
	}
	if s.StopGracePeriod != nil {
		secs := int(time.Duration(*s.StopGracePeriod).Seconds())
		cfg.StopTimeout = &secs
	}
	if hc := s.HealthCheck; hc != nil {
		cfg.Healthcheck = healthConfig(hc)
	}
	host := &container.HostConfig{
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyMode(orDefault(s.Restart, "unless-stopped"))},
		CapAdd:         s.CapAdd,
		CapDrop:        s.CapDrop,
		ShmSize:        int64(s.ShmSize),
		ExtraHosts:     s.ExtraHosts.AsList(":"),
		Sysctls:        s.Sysctls,
		ReadonlyRootfs: s.ReadOnly,
		Init:           s.Init,
	}
	if host.RestartPolicy.Name == "no" {
		host.RestartPolicy.Name = container.RestartPolicyDisabled
	}
	if s.MemLimit > 0 {
		host.Memory = int64(s.MemLimit)
	}
	for name, u := range s.Ulimits {
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		host.Ulimits = append(host.Ulimits, &units.Ulimit{Name: name, Soft: soft, Hard: hard})
	}
	sort.Slice(host.Ulimits, func(i, j int) bool { return host.Ulimits[i].Name < host.Ulimits[j].Name })
	if len(s.Tmpfs) > 0 {
		host.Tmpfs = map[string]string{}
		for _, t := range s.Tmpfs {
			path, opts, _ := strings.Cut(t, ":")
			host.Tmpfs[path] = opts
		}
	}
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			if !underAny(v.Source, p.DataDirs) {
				return nil, fmt.Errorf("volume %s: keep data under ${DATA} or ${DB_DATA}, not %s", v.Target, v.Source)
			}
			bind := v.Source + ":" + v.Target
			if v.ReadOnly {
				bind += ":ro"
			}
			host.Binds = append(host.Binds, bind)
			sp.DataDirs = append(sp.DataDirs, v.Source)
		case types.VolumeTypeTmpfs:
			if host.Tmpfs == nil {
				host.Tmpfs = map[string]string{}
			}
			host.Tmpfs[v.Target] = ""
		default:
			return nil, fmt.Errorf("volume %s: only bind mounts under ${DATA} or ${DB_DATA} are supported, not %s volumes", v.Target, v.Type)
		}
	}
	if len(s.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		host.PortBindings = nat.PortMap{}
	}
	for _, port := range s.Ports {
		proto := orDefault(port.Protocol, "tcp")
		cport := nat.Port(strconv.Itoa(int(port.Target)) + "/" + proto)
		cfg.ExposedPorts[cport] = struct{}{}
		if port.Published != "" {
			host.PortBindings[cport] = append(host.PortBindings[cport], nat.PortBinding{HostIP: port.HostIP, HostPort: port.Published})
			if sp.Role == RoleWeb && int(port.Target) == m.Web.Port {
				p.HostPort = port.Published
			}
		}
	}
	for _, e := range s.Expose {
		cfg.ExposedPorts = addExposed(cfg.ExposedPorts, e)
	}

	// The hash covers everything that defines the container, so a summon
	// of an unchanged minion changes nothing, and a changed one recreates.
	sum := sha256.New()
	_ = json.NewEncoder(sum).Encode([]any{cfg, host, sp.Aliases})
	sp.Hash = hex.EncodeToString(sum.Sum(nil))[:16]

	labels[LabelMinion] = m.Name
	labels[LabelRole] = sp.Role
	labels[LabelVersion] = p.Version
	labels[LabelHash] = sp.Hash
	labels[LabelImage] = s.Image
	labels[labelProject] = p.Project
	labels[labelService] = s.Name
	labels["com.docker.compose.oneoff"] = "False"
	labels["com.docker.compose.container-number"] = "1"
	// docker compose ls and ps only see containers with these.
	labels["com.docker.compose.config-hash"] = sp.Hash
	labels["com.docker.compose.version"] = "summoner"
	labels["com.docker.compose.project.working_dir"] = values["DATA"]
	labels["com.docker.compose.project.config_files"] = m.source + "/" + m.Name + "/compose.yml"
	if sp.Role == RoleDB {
		labels[LabelDB] = m.Database.Kind
	}
	sp.Config, sp.Host = cfg, host
	return sp, nil
}

// NetworkingConfig attaches the container to the minion's network under its
// service name, as compose does.
func (p *Plan) NetworkingConfig(sp *ServicePlan) *network.NetworkingConfig {
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		p.Network: {Aliases: sp.Aliases},
	}}
}

// Service finds a service's plan.
func (p *Plan) Service(name string) *ServicePlan {
	for _, s := range p.Services {
		if s.Service == name {
			return s
		}
	}
	return nil
}

func checkPinned(image string) error {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return fmt.Errorf("image %q: %w", image, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return nil
	}
	t, ok := named.(reference.Tagged)
	if !ok || t.Tag() == "latest" || t.Tag() == "" {
		return fmt.Errorf("image %s: pin a version tag, never latest", image)
	}
	return nil
}

func envList(env types.MappingWithEquals) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if v == nil {
			out = append(out, k)
			continue
		}
		out = append(out, k+"="+*v)
	}
	sort.Strings(out)
	return out
}

func healthConfig(hc *types.HealthCheckConfig) *container.HealthConfig {
	if hc.Disable {
		return &container.HealthConfig{Test: []string{"NONE"}}
	}
	out := &container.HealthConfig{Test: []string(hc.Test)}
	if hc.Interval != nil {
		out.Interval = time.Duration(*hc.Interval)
	}
	if hc.Timeout != nil {
		out.Timeout = time.Duration(*hc.Timeout)
	}
	if hc.StartPeriod != nil {
		out.StartPeriod = time.Duration(*hc.StartPeriod)
	}
	if hc.StartInterval != nil {
		out.StartInterval = time.Duration(*hc.StartInterval)
	}
	if hc.Retries != nil {
		out.Retries = int(*hc.Retries)
	}
	return out
}

func addExposed(set nat.PortSet, e string) nat.PortSet {
	if set == nil {
		set = nat.PortSet{}
	}
	if !strings.Contains(e, "/") {
		e += "/tcp"
	}
	set[nat.Port(e)] = struct{}{}
	return set
}

func underAny(path string, roots []string) bool {
	path = filepath.Clean(path)
	for _, r := range roots {
		if path == r || strings.HasPrefix(path, r+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
