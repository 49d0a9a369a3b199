package minions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/summoner-bot/summoner/internal/human"
)

// Docker is the part of the Docker Engine API the engine uses; the real
// client satisfies it.
type Docker interface {
	Ping(ctx context.Context) (dtypes.Ping, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, ref string, o image.PullOptions) (io.ReadCloser, error)
	ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, o container.StartOptions) error
	ContainerStop(ctx context.Context, id string, o container.StopOptions) error
	ContainerRestart(ctx context.Context, id string, o container.StopOptions) error
	ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error
	ContainerRename(ctx context.Context, id, newName string) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, o container.ListOptions) ([]container.Summary, error)
	ContainerLogs(ctx context.Context, id string, o container.LogsOptions) (io.ReadCloser, error)
	ContainerStats(ctx context.Context, id string, stream bool) (container.StatsResponseReader, error)
	NetworkCreate(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error)
	NetworkInspect(ctx context.Context, id string, o network.InspectOptions) (network.Inspect, error)
	NetworkRemove(ctx context.Context, id string) error
}

var _ Docker = (*client.Client)(nil)

// Progress receives one line describing the current step of long work.
type Progress func(step string)

// EngineOptions configure the Engine.
type EngineOptions struct {
	Domain, VSRoot, DBSRoot string
	Mirror                  Mirror
	State                   *StateStore
	// HealthTimeout overrides the minions' own health timeouts when set.
	HealthTimeout time.Duration
	Logger        *slog.Logger
	HTTPClient    *http.Client // health probes and the registry API
	// Gateway, when set, serves the minions at https://<subdomain>.<domain>:
	// their web and routed ports are then bound to 127.0.0.1 only, and it is
	// told after every change. nil: no gateway, ports as the minions write them.
	Gateway Gateway
	// Hosts overrides minions' subdomains and adds aliases, by minion
	// (the configuration's gateway.hosts).
	Hosts map[string]HostOverride
	// HTTPSPort is the gateway's HTTPS port when it is not 443, so the
	// URLs said in replies answer as written.
	HTTPSPort string
}

// Engine deploys minions through the Docker Engine API.
type Engine struct {
	docker Docker
	cat    *Catalog
	o      EngineOptions
	log    *slog.Logger

	mu   sync.Mutex
	busy map[string]string // minion -> the work running on it
}

// NewEngine makes an engine.
func NewEngine(d Docker, cat *Catalog, o EngineOptions) *Engine {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &Engine{docker: d, cat: cat, o: o, log: o.Logger, busy: map[string]string{}}
}

// Catalog is the engine's catalog.
func (e *Engine) Catalog() *Catalog { return e.cat }

// Result is what a summon or update did.
type Result struct {
	Minion, Version string
	// URL says where users reach it now, in words: https://<host> when the
	// gateway serves it, else the port it publishes (Address.String).
	URL        string
	Address                  // the parts of that
	Unchanged  bool          // it was already up as asked
	RolledBack bool          // update only: the new version failed and the old one runs again
	Previous   string        // update only: the version before
	Took       time.Duration // from start to healthy
}

func (e *Engine) minion(name string) (*Minion, error) {
	m, ok := e.cat.Get(name)
	if !ok {
		var names []string
		for _, m := range e.cat.All() {
			names = append(names, m.Name)
		}
		return nil, userErr(nil, "There is no minion called %q. The catalog has: %s.", name, strings.Join(names, ", "))
	}
	return m, nil
}

// lock marks work on a minion; a second summon of the same minion while
// one runs is refused rather than queued, so nobody waits in the dark.
func (e *Engine) lock(name, what string) (func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if running, ok := e.busy[name]; ok {
		return nil, userErr(ErrBusy, "A %s of %s is already in progress; wait for it to finish.", running, name)
	}
	e.busy[name] = what
	return func() {
		e.mu.Lock()
		delete(e.busy, name)
		e.mu.Unlock()
	}, nil
}

func (e *Engine) render(ctx context.Context, m *Minion, version string, st *State, settings map[string]string) (*Plan, map[string]string, error) {
	merged := map[string]string{}
	for k, v := range st.Settings {
		merged[k] = v
	}
	for k, v := range settings {
		merged[k] = v
	}
	if version == "" {
		version = st.Version
	}
	p, err := Render(ctx, m, RenderOptions{
		Domain: e.o.Domain, VSRoot: e.o.VSRoot, DBSRoot: e.o.DBSRoot, Version: version,
		Settings: merged, Secrets: st.Secrets, Mirror: e.o.Mirror,
		Subdomain: e.o.Hosts[m.Name].Subdomain, Gateway: e.o.Gateway != nil,
	})
	var se *SettingsError
	if errors.As(err, &se) {
		return nil, nil, userErr(err, "%s.", se.Error())
	}
	return p, merged, err
}

// Summon deploys a minion, or leaves it alone if it already runs as asked.
// version "" keeps the version deployed before (or the pinned default).
func (e *Engine) Summon(ctx context.Context, name, version string, settings map[string]string, progress Progress) (*Result, error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	var res *Result
	err = e.change(ctx, m, "summon", func() (err error) {
		res, err = e.summonHeld(ctx, m, version, settings, progress)
		return err
	})
	if res != nil {
		res.Address = e.address(ctx, m, res.Address)
		res.URL = res.Address.String()
	}
	return res, err
}

// change runs f under the minion's lock, then tells the gateway, whether f
// worked or not. The gateway is told outside the lock, so that it may call
// back (Endpoints). A change refused because another runs tells nothing.
func (e *Engine) change(ctx context.Context, m *Minion, what string, f func() error) error {
	release, err := e.lock(m.Name, what)
	if err != nil {
		return err
	}
	err = func() error {
		defer release()
		return f()
	}()
	e.changed(ctx, m.Name)
	return err
}

// summonHeld is Summon for a caller that holds the minion's lock.
func (e *Engine) summonHeld(ctx context.Context, m *Minion, version string, settings map[string]string, progress Progress) (*Result, error) {
	started := time.Now()
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil, err
	}
	// Secrets are saved before anything starts: a database initialised
	// with them must find the same ones next time, even after a failure.
	if changed, err := st.ensureSecrets(m); err != nil {
		return nil, err
	} else if changed {
		if err := e.o.State.Save(m.Name, st); err != nil {
			return nil, err
		}
	}
	plan, merged, err := e.render(ctx, m, version, st, settings)
	if err != nil {
		return nil, err
	}
	existing, err := e.recoverLeftovers(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	res := &Result{Minion: m.Name, Version: plan.Version, Address: plan.address()}
	if upToDate(plan, existing) {
		res.Unchanged = true
		return res, nil
	}
	// The settings are saved only once the change has worked: a failed
	// change leaves the minion, and what Summoner remembers, as before.
	if err := e.deploy(ctx, plan, existing, false, progress); err != nil {
		return nil, err
	}
	st.Version, st.Settings, st.Images = plan.Version, merged, plan.images()
	if err := e.o.State.Save(m.Name, st); err != nil {
		return nil, err
	}
	res.Took = time.Since(started)
	return res, nil
}

func (p *Plan) images() map[string]string {
	out := map[string]string{}
	for _, s := range p.Services {
		out[s.Service] = s.Pull
	}
	return out
}

func upToDate(p *Plan, existing map[string]container.Summary) bool {
	if len(existing) != len(p.Services) {
		return false
	}
	for _, s := range p.Services {
		c, ok := existing[s.Service]
		if !ok || c.Labels[LabelHash] != s.Hash || c.State != container.StateRunning {
			return false
		}
	}
	return true
}

func (e *Engine) healthTimeout(m *Minion) time.Duration {
	if e.o.HealthTimeout > 0 {
		return e.o.HealthTimeout
	}
	if d, err := time.ParseDuration(m.Health.Timeout); err == nil && d > 0 {
		return d
	}
	return 5 * time.Minute
}

// pull fetches an image unless it is already here (always, for updates),
// reporting the download's progress.
func (e *Engine) pull(ctx context.Context, s *ServicePlan, always bool, say func(string, ...any)) error {
	if !always {
		if _, err := e.docker.ImageInspect(ctx, s.Pull); err == nil {
			return nil
		} else if !cerrdefs.IsNotFound(err) {
			return explainDocker(err, "looking for image "+s.Pull)
		}
	}
	say("Pulling %s…", s.Pull)
	rc, err := e.docker.ImagePull(ctx, s.Pull, image.PullOptions{})
	if err != nil {
		return e.pullError(s, err)
	}
	defer rc.Close()
	layers := map[string][2]int64{}
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Status   string `json:"status"`
			ID       string `json:"id"`
			Progress *struct {
				Current int64 `json:"current"`
				Total   int64 `json:"total"`
			} `json:"progressDetail"`
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("reading the pull of %s: %w", s.Pull, err)
		}
		if msg.Error != "" {
			return e.pullError(s, errors.New(msg.Error))
		}
		if msg.Progress != nil && msg.Progress.Total > 0 && msg.Status == "Downloading" {
			layers[msg.ID] = [2]int64{msg.Progress.Current, msg.Progress.Total}
			var cur, total int64
			for _, l := range layers {
				cur, total = cur+l[0], total+l[1]
			}
			say("Pulling %s: %d%% of %s", s.Pull, cur*100/total, human.Bytes(total))
		}
	}
	return nil
}

func (e *Engine) pullError(s *ServicePlan, err error) error {
	msg := err.Error()
	switch {
	case cerrdefs.IsNotFound(err) || strings.Contains(msg, "manifest unknown") || strings.Contains(msg, "not found"):
		return userErr(err, "The image %s does not exist in the registry: is the version right? `versions %s` lists the published ones.", s.Pull, labelsMinion(s))
	case client.IsErrConnectionFailed(err):
		return explainDocker(err, "pulling "+s.Pull)
	}
	return userErr(err, "Pulling %s failed: %s", s.Pull, firstLine(msg))
}

func labelsMinion(s *ServicePlan) string { return s.Config.Labels[LabelMinion] }

func (e *Engine) ensureNetwork(ctx context.Context, p *Plan, u *undo) error {
	_, err := e.docker.NetworkInspect(ctx, p.Network, network.InspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return explainDocker(err, "looking for network "+p.Network)
	}
	_, err = e.docker.NetworkCreate(ctx, p.Network, network.CreateOptions{
		Driver: "bridge",
		Labels: map[string]string{LabelMinion: p.Minion.Name, labelProject: p.Project, "com.docker.compose.network": "default"},
	})
	if err != nil && !cerrdefs.IsConflict(err) {
		return explainDocker(err, "creating network "+p.Network)
	}
	if err == nil {
		u.network = p.Network
	}
	return nil
}

// ensureDirs creates the data folders a minion mounts, remembering which
// it created, so a failed first summon leaves no empty folders behind.
func ensureDirs(p *Plan, u *undo) error {
	var dirs []string
	for _, s := range p.Services {
		dirs = append(dirs, s.DataDirs...)
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		var created []string
		for cur := d; ; cur = filepath.Dir(cur) {
			if _, err := os.Stat(cur); err == nil || cur == filepath.Dir(cur) {
				break
			}
			created = append([]string{cur}, created...)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return userErr(err, "I cannot create the data folder %s: %v", d, errors.Unwrap(err))
		}
		u.dirs = append(u.dirs, created...)
		if err := chownCreated(p, created); err != nil {
			return err
		}
		if err := staysInside(d, p.DataDirs); err != nil {
			return err
		}
	}
	return nil
}

// staysInside refuses a data folder that a symbolic link leads out of the
// minion's folders: Docker follows links in bind sources, so an app that
// swapped its upload folder for a link to / would get the host's root at
// the next recreate.
func staysInside(dir string, roots []string) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return userErr(err, "I cannot check the data folder %s: %v", dir, errors.Unwrap(err))
	}
	var realRoots []string
	for _, r := range roots {
		if rr, err := filepath.EvalSymlinks(r); err == nil {
			realRoots = append(realRoots, rr)
		}
	}
	if !underAny(real, realRoots) {
		return userErr(nil, "The data folder %s is a link to %s, outside the minion's own folders, so I will not mount it. Replace the link with a real folder.", dir, real)
	}
	return nil
}

// chownCreated gives new folders under ${DATA} to the user the app runs as,
// so images that do not run as root can write their data.
func chownCreated(p *Plan, dirs []string) error {
	if p.Minion.DataOwner == "" {
		return nil
	}
	var uid, gid int
	if _, err := fmt.Sscanf(p.Minion.DataOwner, "%d:%d", &uid, &gid); err != nil {
		return fmt.Errorf("data_owner %q: %w", p.Minion.DataOwner, err)
	}
	for _, d := range dirs {
		if !underAny(d, p.DataDirs[:1]) {
			continue
		}
		if err := os.Chown(d, uid, gid); err != nil {
			return userErr(err, "I cannot give the data folder %s to %s: %v", d, p.Minion.DataOwner, errors.Unwrap(err))
		}
	}
	return nil
}

// probe asks the web service for its health path (or opens its port), on
// the minion's network, else through the published host port.
func (e *Engine) probe(ctx context.Context, p *Plan, c container.InspectResponse) bool {
	port := fmt.Sprint(p.Minion.Web.Port)
	var addrs []string
	if c.NetworkSettings != nil {
		if ep := c.NetworkSettings.Networks[p.Network]; ep != nil && ep.IPAddress != "" {
			addrs = append(addrs, net.JoinHostPort(ep.IPAddress, port))
		}
	}
	if p.HostPort != "" {
		host := "127.0.0.1" // loopback reaches a port bound to all addresses, or to 127.0.0.1 only
		if !isWildcard(p.HostIP) {
			host = p.HostIP
		}
		addrs = append(addrs, net.JoinHostPort(host, p.HostPort))
	}
	for _, addr := range addrs {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok := false
		if p.Minion.Health.Path == "" {
			var d net.Dialer
			if conn, err := d.DialContext(pctx, "tcp", addr); err == nil {
				conn.Close()
				ok = true
			}
		} else if req, err := http.NewRequestWithContext(pctx, http.MethodGet, "http://"+addr+p.Minion.Health.Path, nil); err == nil {
			if resp, err := e.o.HTTPClient.Do(req); err == nil {
				resp.Body.Close()
				ok = resp.StatusCode < 500
			}
		}
		cancel()
		if ok {
			return true
		}
	}
	return false
}

func lastProbe(h *container.Health, secrets []string) string {
	if len(h.Log) == 0 {
		return "its health check failed"
	}
	return redact(strings.TrimSpace(h.Log[len(h.Log)-1].Output), secrets)
}

// tail returns the last n log lines of a container, secrets hidden.
func (e *Engine) tail(ctx context.Context, id string, n int, secrets []string) string {
	rc, err := e.docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	defer rc.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return "(no logs: " + err.Error() + ")"
	}
	text := strings.TrimRight(redact(out.String(), secrets), "\n")
	if text == "" {
		return "(nothing)"
	}
	return "```\n" + text + "\n```"
}

// redact hides every secret value in text.
func redact(text string, secrets []string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, s, "***")
		}
	}
	return text
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// secretsOf is every secret value of a minion, for redaction.
func (e *Engine) secretsOf(m *Minion) []string {
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil
	}
	var out []string
	for _, v := range st.Secrets {
		out = append(out, v)
	}
	for _, s := range m.Settings {
		if v := st.Settings[s.Name]; s.Secret && v != "" {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) }) // longest first
	return out
}
