package minions_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/summoner-bot/summoner/minions"
)

// fakeDocker is an in-memory Docker engine, just enough for the Engine:
// containers, networks, local and pullable images. A running container
// that publishes a port really listens on it (an HTTP server answering
// 200, or 503 for an image that never gets ready), so a port held by
// someone else fails the start as Docker's does. Faults make chosen calls
// fail.
type fakeDocker struct {
	mu         sync.Mutex
	next       int
	containers map[string]*fakeContainer // by ID
	networks   map[string]bool
	local      map[string]bool
	registry   map[string]fakeImage // what can be pulled, by reference
	faults     []*fault
	gone       bool // every call fails as if the daemon were down
	connErr    error
	calls      []string // "Method target", in order
	// addresses gives running containers an address on their network (a
	// loopback one: probes there fail fast, unless something listens on
	// all addresses at the web port).
	addresses bool
}

var _ minions.Docker = (*fakeDocker)(nil)

// fakeImage is how a container of an image behaves.
type fakeImage struct {
	exitCode int    // non-zero: the container exits at once with it
	logs     string // what it prints
	neverUp  bool   // it runs, but its health check never passes and its web port answers 503
}

type fakeContainer struct {
	id, name     string
	cfg          *container.Config
	host         *container.HostConfig
	status       container.ContainerState
	exitCode     int
	restartCount int
	servers      []*http.Server // its published ports, while it runs
	listeners    []net.Listener
	network, ip  string                 // its network and its address there (a loopback one, so probes fail fast)
	health       container.HealthStatus // overrides the health of a running container with a check
}

// fault makes matching calls fail. method and target ("" for any) match
// the call: target is a container's name, an image reference or a network.
type fault struct {
	method, target string
	nth            int   // fail only the nth matching call (from 1); 0 fails every one
	err            error // nil: the daemon's connection error
	gone           bool  // from the matching call on, the daemon is gone
	seen           int
}

func newFakeDocker(t testing.TB) *fakeDocker {
	f := &fakeDocker{
		containers: map[string]*fakeContainer{}, networks: map[string]bool{},
		local: map[string]bool{}, registry: map[string]fakeImage{}, connErr: minions.UnreachableErr(t),
	}
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.containers {
			c.stop()
		}
	})
	return f
}

// fail adds a fault.
func (f *fakeDocker) fail(ft *fault) {
	f.mu.Lock()
	f.faults = append(f.faults, ft)
	f.mu.Unlock()
}

// back brings a gone daemon back and clears the faults.
func (f *fakeDocker) back() {
	f.mu.Lock()
	f.gone, f.faults = false, nil
	f.mu.Unlock()
}

// call records a call and returns the error a fault gives it. f.mu is held.
func (f *fakeDocker) call(method, target string) error {
	f.calls = append(f.calls, method+" "+target)
	for _, ft := range f.faults {
		if ft.method != "" && ft.method != method || ft.target != "" && ft.target != target {
			continue
		}
		ft.seen++
		if ft.nth != 0 && ft.nth != ft.seen {
			continue
		}
		if ft.gone {
			f.gone = true
			break
		}
		if ft.err == nil {
			return f.connErr
		}
		return ft.err
	}
	if f.gone {
		return f.connErr
	}
	return nil
}

// count is how many calls of a method were made.
func (f *fakeDocker) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, method+" ") {
			n++
		}
	}
	return n
}

// find resolves a container by ID, name or ID prefix. f.mu is held.
func (f *fakeDocker) find(ref string) *fakeContainer {
	if c, ok := f.containers[ref]; ok {
		return c
	}
	for _, c := range f.containers {
		if c.name == strings.TrimPrefix(ref, "/") || len(ref) >= 6 && strings.HasPrefix(c.id, ref) {
			return c
		}
	}
	return nil
}

// container records a call on a container and finds it. f.mu is held.
func (f *fakeDocker) container(method, ref string) (*fakeContainer, error) {
	c := f.find(ref)
	target := ref
	if c != nil {
		target = c.name
	}
	if err := f.call(method, target); err != nil {
		return nil, err
	}
	if c == nil {
		return nil, notFound("container: " + ref)
	}
	return c, nil
}

func notFound(what string) error { return fmt.Errorf("No such %s: %w", what, cerrdefs.ErrNotFound) }

// fakeState is a container as the tests look at it.
type fakeState struct {
	ID, Image string
	Status    container.ContainerState
}

// state lists the containers by name.
func (f *fakeDocker) state() map[string]fakeState {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]fakeState{}
	for _, c := range f.containers {
		out[c.name] = fakeState{ID: c.id, Image: c.cfg.Image, Status: c.status}
	}
	return out
}

// dockerRestarted plays Docker's restart policy bringing back a container
// whose process died: it runs again, with one more restart counted.
func (f *fakeDocker) dockerRestarted(t testing.TB, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.find(name)
	if c == nil || c.status != container.StateRunning {
		t.Fatalf("no running container %s to restart", name)
	}
	c.restartCount++
}

// add puts a container straight into the fake, as an earlier run of
// Summoner would have left it.
func (f *fakeDocker) add(name string, cfg *container.Config, host *container.HostConfig) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	c := &fakeContainer{id: fmt.Sprintf("%064x", f.next), name: name, cfg: cfg, host: host, status: container.StateCreated}
	f.containers[c.id] = c
	return c.id
}

// stop frees its ports at once, as Docker does (a server's Close alone
// may leave a listener open until its Serve has started).
func (c *fakeContainer) stop() {
	for _, l := range c.listeners {
		l.Close()
	}
	for _, s := range c.servers {
		s.Close()
	}
	c.servers, c.listeners = nil, nil
}

// start runs the container: it binds its ports, then exits at once if its
// image says so. f.mu is held.
func (f *fakeDocker) start(c *fakeContainer) error {
	img := f.registry[c.cfg.Image]
	for _, bindings := range c.host.PortBindings {
		for _, b := range bindings {
			host := b.HostIP
			if host == "" {
				host = "127.0.0.1"
			}
			l, err := net.Listen("tcp", net.JoinHostPort(host, b.HostPort))
			if err != nil {
				c.stop()
				return fmt.Errorf("driver failed programming external connectivity on endpoint %s: Error starting userland proxy: listen tcp4 %s: bind: address already in use", c.name, net.JoinHostPort(host, b.HostPort))
			}
			s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if img.neverUp {
					w.WriteHeader(http.StatusServiceUnavailable)
				}
			}), ReadHeaderTimeout: time.Second}
			go s.Serve(l) //nolint:errcheck // ends with Close
			c.servers, c.listeners = append(c.servers, s), append(c.listeners, l)
		}
	}
	c.status, c.exitCode, c.restartCount = container.StateRunning, 0, 0 // Docker resets the count on start
	if img.exitCode != 0 {
		c.stop()
		c.status, c.exitCode = container.StateExited, img.exitCode
	}
	return nil
}

func (f *fakeDocker) Ping(context.Context) (dtypes.Ping, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return dtypes.Ping{}, f.call("Ping", "")
}

func (f *fakeDocker) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ImageInspect", ref); err != nil {
		return image.InspectResponse{}, err
	}
	if !f.local[ref] {
		return image.InspectResponse{}, notFound("image: " + ref)
	}
	return image.InspectResponse{ID: "sha256:" + ref}, nil
}

func (f *fakeDocker) ImagePull(_ context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ImagePull", ref); err != nil {
		return nil, err
	}
	if _, ok := f.registry[ref]; !ok {
		return nil, fmt.Errorf("manifest for %s not found: manifest unknown: %w", ref, cerrdefs.ErrNotFound)
	}
	f.local[ref] = true
	return io.NopCloser(strings.NewReader(`{"status":"Downloading","id":"l1","progressDetail":{"current":5,"total":10}}
{"status":"Pull complete","id":"l1"}
`)), nil
}

func (f *fakeDocker) ContainerCreate(_ context.Context, cfg *container.Config, host *container.HostConfig, nc *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ContainerCreate", name); err != nil {
		return container.CreateResponse{}, err
	}
	if f.find(name) != nil {
		return container.CreateResponse{}, fmt.Errorf("Conflict. The container name %q is already in use: %w", "/"+name, cerrdefs.ErrConflict)
	}
	if !f.local[cfg.Image] {
		return container.CreateResponse{}, notFound("image: " + cfg.Image)
	}
	f.next++
	c := &fakeContainer{id: fmt.Sprintf("%064x", f.next), name: name, cfg: cfg, host: host, status: container.StateCreated,
		ip: fmt.Sprintf("127.77.%d.%d", f.next/250, f.next%250+1)}
	if nc != nil {
		for n := range nc.EndpointsConfig {
			c.network = n
		}
	}
	f.containers[c.id] = c
	return container.CreateResponse{ID: c.id}, nil
}

func (f *fakeDocker) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container("ContainerStart", id)
	if err != nil {
		return err
	}
	if c.status == container.StateRunning {
		return nil
	}
	return f.start(c)
}

func (f *fakeDocker) ContainerStop(_ context.Context, id string, _ container.StopOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container("ContainerStop", id)
	if err != nil {
		return err
	}
	if c.status == container.StateRunning {
		c.stop()
		c.status, c.exitCode = container.StateExited, 0
	}
	return nil
}

func (f *fakeDocker) ContainerRestart(_ context.Context, id string, _ container.StopOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container("ContainerRestart", id)
	if err != nil {
		return err
	}
	c.stop()
	return f.start(c)
}

func (f *fakeDocker) ContainerRemove(_ context.Context, id string, o container.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container("ContainerRemove", id)
	if err != nil {
		return err
	}
	if c.status == container.StateRunning && !o.Force {
		return fmt.Errorf("cannot remove a running container %s: %w", c.name, cerrdefs.ErrConflict)
	}
	c.stop()
	delete(f.containers, c.id)
	return nil
}

func (f *fakeDocker) ContainerRename(_ context.Context, id, newName string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container("ContainerRename", id)
	if err != nil {
		return err
	}
	if other := f.find(newName); other != nil && other != c {
		return fmt.Errorf("Conflict. The container name %q is already in use: %w", "/"+newName, cerrdefs.ErrConflict)
	}
	c.name = newName
	return nil
}

func (f *fakeDocker) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container("ContainerInspect", id)
	if err != nil {
		return container.InspectResponse{}, err
	}
	st := &container.State{Status: c.status, Running: c.status == container.StateRunning, ExitCode: c.exitCode}
	if c.cfg.Healthcheck != nil && st.Running {
		st.Health = &container.Health{Status: container.Healthy}
		if f.registry[c.cfg.Image].neverUp {
			st.Health.Status = container.Starting
		}
		if c.health != "" {
			st.Health.Status = c.health
		}
	}
	// As Docker: the network address and the bound ports while it runs,
	// a binding to all addresses shown as 0.0.0.0.
	ns := &container.NetworkSettings{}
	if st.Running {
		ns.Ports = nat.PortMap{}
		for port, bs := range c.host.PortBindings {
			for _, b := range bs {
				ns.Ports[port] = append(ns.Ports[port], nat.PortBinding{HostIP: orAll(b.HostIP), HostPort: b.HostPort})
			}
		}
		if c.network != "" && f.addresses {
			ns.Networks = map[string]*network.EndpointSettings{c.network: {IPAddress: c.ip}}
		}
	}
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: c.id, Name: "/" + c.name, State: st, RestartCount: c.restartCount, HostConfig: c.host},
		Config:            c.cfg,
		NetworkSettings:   ns,
	}, nil
}

func (f *fakeDocker) ContainerList(_ context.Context, o container.ListOptions) ([]container.Summary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("ContainerList", ""); err != nil {
		return nil, err
	}
	var out []container.Summary
	for _, c := range f.containers {
		if !o.All && c.status != container.StateRunning || !hasLabels(c.cfg.Labels, o.Filters.Get("label")) {
			continue
		}
		out = append(out, container.Summary{ID: c.id, Names: []string{"/" + c.name}, Image: c.cfg.Image, Labels: c.cfg.Labels, State: c.status})
	}
	slices.SortFunc(out, func(a, b container.Summary) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func orAll(ip string) string {
	if ip == "" {
		return "0.0.0.0"
	}
	return ip
}

// hasLabels matches Docker's label filters: "key" or "key=value".
func hasLabels(labels map[string]string, filters []string) bool {
	for _, flt := range filters {
		k, v, withValue := strings.Cut(flt, "=")
		got, ok := labels[k]
		if !ok || withValue && got != v {
			return false
		}
	}
	return true
}

func (f *fakeDocker) ContainerLogs(_ context.Context, id string, _ container.LogsOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, err := f.container("ContainerLogs", id)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	_, _ = stdcopy.NewStdWriter(&buf, stdcopy.Stdout).Write([]byte(f.registry[c.cfg.Image].logs))
	return io.NopCloser(&buf), nil
}

func (f *fakeDocker) ContainerStats(context.Context, string, bool) (container.StatsResponseReader, error) {
	return container.StatsResponseReader{}, errors.New("the fake has no statistics")
}

func (f *fakeDocker) NetworkCreate(_ context.Context, name string, _ network.CreateOptions) (network.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("NetworkCreate", name); err != nil {
		return network.CreateResponse{}, err
	}
	if f.networks[name] {
		return network.CreateResponse{}, fmt.Errorf("network with name %s already exists: %w", name, cerrdefs.ErrConflict)
	}
	f.networks[name] = true
	return network.CreateResponse{ID: name}, nil
}

func (f *fakeDocker) NetworkInspect(_ context.Context, name string, _ network.InspectOptions) (network.Inspect, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("NetworkInspect", name); err != nil {
		return network.Inspect{}, err
	}
	if !f.networks[name] {
		return network.Inspect{}, notFound("network: " + name)
	}
	return network.Inspect{ID: name, Name: name}, nil
}

func (f *fakeDocker) NetworkRemove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.call("NetworkRemove", name); err != nil {
		return err
	}
	if !f.networks[name] {
		return notFound("network: " + name)
	}
	delete(f.networks, name)
	return nil
}
