package minions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/interpolation"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/schema"
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
	// Subdomain replaces the minion's own subdomain (the configuration's
	// gateway.hosts); ${HOST} is <subdomain>.<domain>.
	Subdomain string
	// Gateway: a gateway serves the minion, so the web port and the routed
	// ports it publishes are bound to 127.0.0.1 only, whatever the compose
	// file says. Its other published ports stay as written.
	Gateway bool
}

// Plan is a minion rendered into the containers to run.
type Plan struct {
	Minion   *Minion
	Version  string
	Project  string // compose project name
	Network  string
	Services []*ServicePlan // in dependency order
	Host     string         // <subdomain>.<domain>, where the gateway serves it
	URL      string         // https://<Host>
	HostPort string         // the web port published on the host, if any
	HostIP   string         // the address HostPort is bound to ("" for all)
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

// Compose keys. Every key of a minion's compose file is either applied or
// refused by name: a minion never runs differently from what its file says.
// appliedKeys is an allowlist on purpose (fail-closed): a key that a later
// compose-go learns is refused until someone wires it in here and in
// (*Plan).service, instead of being dropped without a word.
//
// extends is not listed: compose-go merges the extended service before
// Summoner sees the file, and the merged keys go through the same checks.
//
// The values of some applied keys are checked further (privileged, cap_add,
// security_opt, ipc, cgroup, oom_*, volumes, ports, depends_on, restart):
// see (*Plan).refusals.
var appliedKeys = []string{
	"annotations", "cap_add", "cap_drop", "cgroup", "command", "cpu_period", "cpu_quota", "cpu_shares",
	"cpus", "cpuset", "depends_on", "dns", "dns_opt", "dns_search", "domainname", "entrypoint",
	"environment", "expose", "extra_hosts", "group_add", "healthcheck", "hostname", "image", "init",
	"ipc", "labels", "logging", "mem_limit", "mem_reservation", "memswap_limit", "oom_kill_disable",
	"oom_score_adj", "pids_limit", "ports", "privileged", "read_only", "restart", "security_opt",
	"shm_size", "stdin_open", "stop_grace_period", "stop_signal", "sysctls", "tmpfs", "tty", "ulimits",
	"user", "volumes", "working_dir",
}

// refusedSubkeys are parts of applied keys that Summoner does not apply.
var refusedSubkeys = []string{
	"volumes.[].bind.propagation", "volumes.[].bind.recursive", "volumes.[].consistency",
	"ports.[].name", "ports.[].app_protocol", "depends_on.*.restart",
}

// dangerousKeys are refused because they would let a container out of its
// box; the reason is shown to the user. With the value host, network_mode,
// pid and userns_mode get a sharper reason from refusalReason. Applied keys
// that are dangerous only with some values (ipc: host, privileged: true)
// are checked by (*Plan).refusals.
var dangerousKeys = map[string]string{
	"devices":             "would let it reach the host's devices",
	"device_cgroup_rules": "would let it reach the host's devices",
	"gpus":                "would let it reach the host's graphics cards",
	"cgroup_parent":       "would move it out of the limits Docker keeps containers in",
	"use_api_socket":      "would give it the Docker socket, and so control of the whole server",
	"volumes_from":        "would give it the files of another container, maybe not one of this minion",
	"pid":                 "would let it see other processes than its own",
	"userns_mode":         "would change the user namespace that keeps its root apart from the host's",
	"uts":                 "would share the host's hostname and domain name",
	"network_mode":        "would take it off its minion's network",
	"external_links":      "would connect it to containers outside its minion",
	"runtime":             "would run it with another container runtime than Docker's default",
	"cpu_rt_runtime":      "would let it take the CPU from the rest of the server in real time",
	"cpu_rt_period":       "would let it take the CPU from the rest of the server in real time",
}

// unsupportedNotes say what to do instead, for keys that are merely not
// supported.
var unsupportedNotes = map[string]string{
	"build":          "Summoner runs published images, it builds none",
	"container_name": "Summoner names containers itself (<minion>-<domain>)",
	"env_file":       "put the variables under environment",
	"networks":       "each minion gets a network of its own",
	"deploy":         "use mem_limit, cpus and pids_limit for limits",
	"mem_swappiness": "cgroup v2 servers ignore it",
	"name":           "the project is always named after the minion",
	"volumes":        "keep data in bind mounts under ${DATA} or ${DB_DATA}",
}

// refusalReason explains why a key found in a compose file is refused, and
// whether it is a danger (else: merely not supported).
func refusalReason(key string, value any) (reason string, danger bool) {
	switch v := fmt.Sprint(value); {
	case key == "network_mode" && v == "host":
		return "would put it on the server's own network, where it can reach every local service", true
	case key == "pid" && v == "host":
		return "would let it see and signal every process of the server", true
	case key == "userns_mode" && v == "host":
		return "would turn off the user namespace that keeps its root apart from the host's", true
	}
	if r, ok := dangerousKeys[key]; ok {
		return r, true
	}
	return unsupportedNotes[key], false
}

// supportedPaths is the allowlist for compose-go's check: the schema's
// paths under services.*.<applied key>.
var supportedPaths = sync.OnceValue(func() []tree.Path {
	var out []tree.Path
	for _, p := range schema.AttributePaths() {
		parts := p.Parts()
		if len(parts) >= 3 && parts[0] == "services" && parts[1] == tree.PathMatchAll && slices.Contains(appliedKeys, parts[2]) {
			out = append(out, p)
		}
	}
	return out
})

// Render interpolates the minion's compose file with its settings and the
// configuration, and turns it into a Plan. It does not touch Docker. Its
// errors never show a secret setting's value.
func Render(ctx context.Context, m *Minion, o RenderOptions) (*Plan, error) {
	p, err := render(ctx, m, o)
	if err != nil {
		return nil, hideSecrets(err, m, o)
	}
	return p, nil
}

// hideSecrets replaces the secret values an error quotes with ***:
// compose-go's messages quote the value they refuse ("Invalid hostPort:
// <value>"), and a secret can be interpolated where it does not belong
// (found by FuzzRenderCompose). The cause is dropped with them, since it
// quotes the same; an error without a secret passes unchanged.
func hideSecrets(err error, m *Minion, o RenderOptions) error {
	_, secrets, verr := m.values(o)
	if verr != nil {
		return err
	}
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) }) // longest first
	msg := err.Error()
	if redacted := redact(msg, secrets); redacted != msg {
		if _, ok := err.(*Error); ok {
			return &Error{Msg: redacted}
		}
		return errors.New(redacted)
	}
	return err
}

func render(ctx context.Context, m *Minion, o RenderOptions) (*Plan, error) {
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
	var found []loader.UnsupportedAttribute
	patterns := make([]loader.UnsupportedAttributePattern, len(refusedSubkeys))
	for i, k := range refusedSubkeys {
		patterns[i] = loader.UnsupportedAttributePattern{Path: tree.NewPath(append([]string{"services", tree.PathMatchAll}, strings.Split(k, ".")...)...)}
	}
	report := func(f []loader.UnsupportedAttribute) { found = append(found, f...) }
	details := types.ConfigDetails{
		WorkingDir:  o.VSRoot,
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yml", Content: m.compose}},
		Environment: values,
	}
	project, err := loader.LoadWithContext(ctx, details, func(lo *loader.Options) {
		lo.SetProjectName(m.Name, true)
		lo.SkipConsistencyCheck = false
		lo.Interpolate = &interpolation.Options{LookupValue: lookup}
	}, loader.WithUnsupportedAttributesCheck(patterns, report), loader.WithSupportedAttributes(supportedPaths(), report))
	// Refused keys first: loading may fail later because of one of them
	// (an env_file that is not there), and the refusal says more.
	if len(found) > 0 {
		return nil, refused(m, keyProblems(found))
	}
	if err != nil {
		return nil, fmt.Errorf("minion %s: compose file: %w", m.Name, err)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("minion %s: compose file uses ${%s}, which is no setting of the minion", m.Name, strings.Join(missing, "}, ${"))
	}

	p := &Plan{
		Minion: m, Version: values["VERSION"], Project: m.Name, Network: m.Name + "_default",
		Host:     values["HOST"],
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
	var problems []string
	for _, name := range order {
		problems = append(problems, p.refusals(project.Services[name])...)
	}
	if len(problems) > 0 {
		return nil, refused(m, problems)
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

// refused is the error for a compose file Summoner will not run: one line
// per problem, each naming the minion, the service and the key, written
// for the person who wrote the minion.
func refused(m *Minion, problems []string) error {
	lines := make([]string, len(problems))
	for i, p := range problems {
		lines[i] = "minion " + m.Name + ": " + p
	}
	return userErr(nil, "%s", strings.Join(lines, "\n"))
}

// keyProblems describes the keys compose-go's check found: refused ones,
// and ones Summoner does not apply.
func keyProblems(found []loader.UnsupportedAttribute) []string {
	var out []string
	for _, f := range found {
		parts := slices.DeleteFunc(f.Path.Parts(), func(s string) bool { return s == tree.PathMatchList })
		where, key := "compose file", strings.Join(parts, ".")
		if len(parts) >= 3 && parts[0] == "services" {
			where, key = "service "+parts[1], strings.Join(parts[2:], ".")
		}
		reason, danger := refusalReason(key, f.Value)
		switch {
		case danger:
			out = append(out, fmt.Sprintf("%s uses %s, which %s; Summoner refuses it", where, key, reason))
		case reason != "":
			out = append(out, fmt.Sprintf("%s uses %s, which Summoner does not support: %s", where, key, reason))
		default:
			out = append(out, fmt.Sprintf("%s uses %s, which Summoner does not support", where, key))
		}
	}
	return out
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
		"VERSION": version, "MINION": m.Name, "DOMAIN": domain, "HOST": orDefault(o.Subdomain, m.Subdomain) + "." + domain,
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
		Domainname: s.DomainName,
		StopSignal: s.StopSignal,
		Tty:        s.Tty,
		OpenStdin:  s.StdinOpen,
	}
	if len(s.Command) > 0 {
		cfg.Cmd = []string(s.Command)
	}
	// An empty entrypoint ([] or "") clears the image's, as in compose;
	// an empty command cannot: Docker then falls back to the image's.
	if s.Entrypoint != nil {
		cfg.Entrypoint = []string(s.Entrypoint)
	}
	if s.StopGracePeriod != nil {
		secs := int(time.Duration(*s.StopGracePeriod).Seconds())
		cfg.StopTimeout = &secs
	}
	if hc := s.HealthCheck; hc != nil {
		cfg.Healthcheck = healthConfig(hc)
	}
	restart, retries, _ := restartPolicy(s.Restart) // checked by refusals
	host := &container.HostConfig{
		RestartPolicy:  container.RestartPolicy{Name: restart, MaximumRetryCount: retries},
		LogConfig:      logConfig(s.Logging),
		Annotations:    s.Annotations,
		CapAdd:         s.CapAdd,
		CapDrop:        s.CapDrop,
		CgroupnsMode:   container.CgroupnsMode(s.Cgroup),
		IpcMode:        container.IpcMode(s.Ipc),
		DNS:            s.DNS,
		DNSOptions:     s.DNSOpts,
		DNSSearch:      s.DNSSearch,
		GroupAdd:       s.GroupAdd,
		OomScoreAdj:    int(s.OomScoreAdj),
		SecurityOpt:    s.SecurityOpt,
		ShmSize:        int64(s.ShmSize),
		ExtraHosts:     s.ExtraHosts.AsList(":"),
		Sysctls:        s.Sysctls,
		ReadonlyRootfs: s.ReadOnly,
		Init:           s.Init,
		Resources: container.Resources{
			Memory:            int64(s.MemLimit),
			MemoryReservation: int64(s.MemReservation),
			MemorySwap:        int64(s.MemSwapLimit),
			NanoCPUs:          int64(math.Round(float64(s.CPUS) * 1e9)),
			CPUShares:         s.CPUShares,
			CPUPeriod:         s.CPUPeriod,
			CPUQuota:          s.CPUQuota,
			CpusetCpus:        s.CPUSet,
		},
	}
	if s.PidsLimit != 0 {
		host.PidsLimit = &s.PidsLimit
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
		case types.VolumeTypeBind: // sources were checked by refusals
			var opts []string
			if v.ReadOnly {
				opts = append(opts, "ro")
			}
			if v.Bind != nil && v.Bind.SELinux != "" {
				opts = append(opts, v.Bind.SELinux)
			}
			bind := v.Source + ":" + v.Target
			if len(opts) > 0 {
				bind += ":" + strings.Join(opts, ",")
			}
			host.Binds = append(host.Binds, bind)
			sp.DataDirs = append(sp.DataDirs, v.Source)
		case types.VolumeTypeTmpfs:
			if host.Tmpfs == nil {
				host.Tmpfs = map[string]string{}
			}
			host.Tmpfs[v.Target] = tmpfsOptions(v.Tmpfs)
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
			b := nat.PortBinding{HostIP: port.HostIP, HostPort: port.Published}
			if o.Gateway && m.serves(s.Name, int(port.Target)) {
				b.HostIP = "127.0.0.1"
			}
			if !slices.Contains(host.PortBindings[cport], b) { // "8080:80" and "[::]:8080:80" both become one
				host.PortBindings[cport] = append(host.PortBindings[cport], b)
			}
			if sp.Role == RoleWeb && int(port.Target) == m.Web.Port {
				p.HostPort, p.HostIP = b.HostPort, b.HostIP
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

// serves tells whether a port of a service is one the gateway serves: the
// web service's web port, or a routed one.
func (m *Minion) serves(service string, port int) bool {
	if service == m.Web.Service && port == m.Web.Port {
		return true
	}
	for _, r := range m.Routes {
		if r.Service == service && r.Port == port {
			return true
		}
	}
	return false
}

// harmlessCaps are the capabilities every Docker container has unless it
// drops them. cap_add may only add these back (the hardening idiom
// cap_drop: [ALL] then cap_add: [CHOWN, SETUID, …]): any other one
// (SYS_ADMIN, NET_ADMIN, SYS_PTRACE, SYS_MODULE, ALL, …) gives the container
// power over the host that a plain container lacks. An allowlist, because a
// denylist of dangerous capabilities would miss the next one.
var harmlessCaps = []string{
	"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
	"NET_BIND_SERVICE", "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}

// dockerSockets are where the Docker socket lives; a bind of one gives the
// container the whole server.
var dockerSockets = []string{"/var/run/docker.sock", "/run/docker.sock"}

// refusals checks the values of the keys Summoner applies, so that no
// container gets out of its box and nothing is applied differently from
// what the file says. Each problem names the service and the key.
func (p *Plan) refusals(s types.ServiceConfig) []string {
	var out []string
	danger := func(key, reason string) {
		out = append(out, fmt.Sprintf("service %s uses %s, which %s; Summoner refuses it", s.Name, key, reason))
	}
	unsupported := func(key, note string) {
		out = append(out, fmt.Sprintf("service %s uses %s, which Summoner does not support: %s", s.Name, key, note))
	}
	if s.Privileged {
		danger("privileged", "would give it full control of the server")
	}
	for _, c := range s.CapAdd {
		switch name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(c)), "CAP_"); {
		case name == "ALL":
			danger("cap_add ALL", "would give it every power over the server")
		case !slices.Contains(harmlessCaps, name):
			danger("cap_add "+c, "would give it power over the server that a normal container lacks (cap_add may only give back what every container has)")
		}
	}
	for _, o := range s.SecurityOpt {
		key, val, _ := strings.Cut(strings.ReplaceAll(strings.ToLower(strings.TrimSpace(o)), "=", ":"), ":")
		switch {
		case key == "no-new-privileges":
		case val == "unconfined" && (key == "seccomp" || key == "apparmor" || key == "systempaths"), key == "label" && val == "disable":
			danger("security_opt "+o, "would turn off the confinement that keeps it in its container")
		default:
			unsupported("security_opt "+o, "only no-new-privileges is accepted there")
		}
	}
	switch s.Ipc {
	case "", "private", "shareable", "none":
	case "host":
		danger("ipc: host", "would share the server's shared memory with it")
	default:
		unsupported("ipc: "+s.Ipc, "use private, shareable or none")
	}
	switch s.Cgroup {
	case "", "private":
	case "host":
		danger("cgroup: host", "would let it see the server's control groups")
	default:
		unsupported("cgroup: "+s.Cgroup, "use private")
	}
	if s.OomKillDisable {
		danger("oom_kill_disable", "could freeze the whole server when memory runs out")
	}
	if s.OomScoreAdj < 0 {
		danger(fmt.Sprintf("oom_score_adj %d", s.OomScoreAdj), "would make the server kill its other programs first when memory runs out")
	}
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeBind:
			switch {
			case slices.Contains(dockerSockets, filepath.Clean(v.Source)) || filepath.Base(v.Source) == "docker.sock" && !underAny(v.Source, p.DataDirs):
				danger("volumes "+v.Source, "would give it control of Docker, and so of the whole server")
			case !underAny(v.Source, p.DataDirs):
				danger("volumes "+filepath.Clean(v.Source)+":"+v.Target, "reaches outside the minion's own folders (keep data under ${DATA} or ${DB_DATA})")
			case v.Bind != nil && !bool(v.Bind.CreateHostPath):
				unsupported("volumes "+v.Target+" with create_host_path: false", "Summoner creates the minion's folders itself")
			}
		case types.VolumeTypeTmpfs:
		default:
			unsupported(fmt.Sprintf("volumes %s (a %s volume)", v.Target, v.Type), "keep data in bind mounts under ${DATA} or ${DB_DATA}")
		}
	}
	for _, port := range s.Ports {
		if port.Mode != "" && port.Mode != "ingress" {
			unsupported(fmt.Sprintf("ports %d with mode: %s", port.Target, port.Mode), "leave mode out")
		}
	}
	deps := make([]string, 0, len(s.DependsOn))
	for d := range s.DependsOn {
		deps = append(deps, d)
	}
	sort.Strings(deps)
	for _, d := range deps {
		switch dep := s.DependsOn[d]; {
		case dep.Condition != types.ServiceConditionStarted && dep.Condition != types.ServiceConditionHealthy:
			unsupported("depends_on "+d+" with condition "+dep.Condition, "use service_started or service_healthy")
		case !dep.Required:
			unsupported("depends_on "+d+" with required: false", "a minion's services are all required")
		}
	}
	if _, _, ok := restartPolicy(s.Restart); !ok {
		unsupported("restart "+s.Restart, "use no, always, on-failure[:N] or unless-stopped")
	}
	return out
}

// restartPolicy reads compose's restart ("on-failure:3" included); no
// restart policy means unless-stopped, so minions come back after a reboot.
func restartPolicy(r string) (mode container.RestartPolicyMode, retries int, ok bool) {
	name, count, hasCount := strings.Cut(r, ":")
	switch mode = container.RestartPolicyMode(name); mode {
	case "":
		return container.RestartPolicyUnlessStopped, 0, !hasCount
	case container.RestartPolicyOnFailure:
		if !hasCount {
			return mode, 0, true
		}
		n, err := strconv.Atoi(count)
		return mode, n, err == nil && n >= 0
	case container.RestartPolicyDisabled, container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
		return mode, 0, !hasCount
	}
	return mode, 0, false
}

// Log rotation Summoner gives every container whose minion sets no logging
// of its own: without it, json-file logs grow until the disk is full.
const (
	defaultLogDriver  = "json-file"
	defaultLogMaxSize = "10m"
	defaultLogMaxFile = "3"
)

func logConfig(l *types.LoggingConfig) container.LogConfig {
	if l == nil {
		return container.LogConfig{Type: defaultLogDriver, Config: map[string]string{"max-size": defaultLogMaxSize, "max-file": defaultLogMaxFile}}
	}
	return container.LogConfig{Type: l.Driver, Config: l.Options}
}

func tmpfsOptions(t *types.ServiceVolumeTmpfs) string {
	if t == nil {
		return ""
	}
	var opts []string
	if t.Size > 0 {
		opts = append(opts, fmt.Sprintf("size=%d", t.Size))
	}
	if t.Mode != 0 {
		opts = append(opts, fmt.Sprintf("mode=%o", t.Mode))
	}
	return strings.Join(opts, ",")
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
