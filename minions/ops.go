package minions

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"
)

// ServiceStatus is one container of a minion, as `status` shows it.
type ServiceStatus struct {
	Service, Role, Container string
	State                    string // running, exited, restarting, …
	Health                   string // healthy, unhealthy, starting, or ""
	Image                    string // image:tag as the minion names it
	Since                    time.Time
	CPUPercent               float64
	MemBytes, MemLimit       uint64
}

// MinionStatus is a summoned minion.
type MinionStatus struct {
	Name, Version string
	// URL says where users reach it now, in words: https://<host> when the
	// gateway serves it, else the port it publishes (Address.String).
	URL      string
	Address  // the parts of that
	Services []ServiceStatus
}

// Status reports on one minion, or on every summoned minion if name is "".
func (e *Engine) Status(ctx context.Context, name string) ([]MinionStatus, error) {
	f := filters.NewArgs(filters.Arg("label", LabelMinion))
	if name != "" {
		m, err := e.minion(name)
		if err != nil {
			return nil, err
		}
		f = filters.NewArgs(filters.Arg("label", LabelMinion+"="+m.Name))
	}
	all, err := e.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, explainDocker(err, "listing containers")
	}
	// A container set aside during a change is not the service's.
	list := slices.DeleteFunc(all, func(c container.Summary) bool {
		return strings.HasSuffix(firstOr(c.Names, ""), OldSuffix)
	})
	byMinion := map[string]*MinionStatus{}
	plans := map[string]*Plan{}
	type pending struct {
		ms        *MinionStatus
		idx       int
		id        string
		probeWith *Plan
	}
	var todo []pending
	for _, c := range list {
		mn := c.Labels[LabelMinion]
		ms := byMinion[mn]
		if ms == nil {
			ms = &MinionStatus{Name: mn, Version: c.Labels[LabelVersion]}
			if m, ok := e.cat.Get(mn); ok {
				if st, err := e.o.State.Load(mn); err == nil {
					if p, _, err := e.render(ctx, m, "", st, nil); err == nil {
						ms.Address = p.address()
						plans[mn] = p
					}
				}
			}
			byMinion[mn] = ms
		}
		ss := ServiceStatus{
			Service: c.Labels[labelService], Role: c.Labels[LabelRole], Container: strings.TrimPrefix(firstOr(c.Names, c.ID), "/"),
			State: string(c.State), Image: c.Labels[LabelImage],
		}
		var probeWith *Plan
		if ss.Role == RoleWeb {
			probeWith = plans[mn]
		}
		todo = append(todo, pending{ms: ms, idx: len(ms.Services), id: c.ID, probeWith: probeWith})
		ms.Services = append(ms.Services, ss)
	}
	// Inspect and stats take a moment each: do them at once.
	live := make([]ServiceStatus, len(todo))
	inspected := make([]container.InspectResponse, len(todo))
	var wg sync.WaitGroup
	for i, p := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			live[i], inspected[i] = e.liveStatus(ctx, p.id, p.probeWith)
		}()
	}
	wg.Wait()
	for i, p := range todo {
		s, cur := live[i], &p.ms.Services[p.idx]
		cur.Health, cur.Since, cur.CPUPercent, cur.MemBytes, cur.MemLimit = s.Health, s.Since, s.CPUPercent, s.MemBytes, s.MemLimit
		if c := inspected[i]; p.probeWith != nil && c.ContainerJSONBase != nil {
			// The port the container really publishes, not the one the
			// settings would give it now.
			p.ms.HostIP, p.ms.HostPort = publishedAddr(c, p.probeWith.Minion.Web.Port)
		}
	}
	for _, ms := range byMinion {
		ms.Gateway = e.o.Gateway != nil
		ms.HTTPS = e.served(ms.Host)
		ms.URL = ms.Address.String()
	}
	if name != "" && len(byMinion) == 0 {
		return nil, userErr(nil, "%s is not summoned. `summon %s` brings it up.", name, name)
	}
	var out []MinionStatus
	for _, ms := range byMinion {
		sort.Slice(ms.Services, func(i, j int) bool { return ms.Services[i].Service < ms.Services[j].Service })
		out = append(out, *ms)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// liveStatus inspects a container and samples its CPU and memory. A web
// service without a health check of its own is probed like at summon time,
// so status says whether the app answers, not only whether it runs.
func (e *Engine) liveStatus(ctx context.Context, id string, probeWith *Plan) (ServiceStatus, container.InspectResponse) {
	var s ServiceStatus
	c, err := e.docker.ContainerInspect(ctx, id)
	if err != nil {
		return s, c
	}
	switch {
	case c.State.Health != nil:
		s.Health = string(c.State.Health.Status)
	case probeWith != nil && c.State.Running:
		s.Health = string(container.Unhealthy)
		if e.probe(ctx, probeWith, c) {
			s.Health = string(container.Healthy)
		}
	}
	s.Since, _ = time.Parse(time.RFC3339Nano, c.State.StartedAt)
	if !c.State.Running {
		return s, c
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := e.docker.ContainerStats(sctx, id, false)
	if err != nil {
		return s, c
	}
	defer r.Body.Close()
	var st container.StatsResponse
	if json.NewDecoder(r.Body).Decode(&st) != nil {
		return s, c
	}
	cpuDelta := float64(st.CPUStats.CPUUsage.TotalUsage) - float64(st.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(st.CPUStats.SystemUsage) - float64(st.PreCPUStats.SystemUsage)
	if sysDelta > 0 && cpuDelta >= 0 {
		cpus := float64(st.CPUStats.OnlineCPUs)
		if cpus == 0 {
			cpus = 1
		}
		s.CPUPercent = cpuDelta / sysDelta * cpus * 100
	}
	s.MemBytes, s.MemLimit = st.MemoryStats.Usage-st.MemoryStats.Stats["inactive_file"], st.MemoryStats.Limit
	return s, c
}

func firstOr(names []string, d string) string {
	if len(names) > 0 {
		return names[0]
	}
	return d
}

// Logs returns the last lines of a minion's service (the web service by
// default), with the minion's secrets hidden.
func (e *Engine) Logs(ctx context.Context, name, service string, tail int) (string, error) {
	m, err := e.minion(name)
	if err != nil {
		return "", err
	}
	if service == "" {
		service = m.Web.Service
	}
	cs, err := e.containers(ctx, m.Name)
	if err != nil {
		return "", err
	}
	c, ok := cs[service]
	if !ok {
		if len(cs) == 0 {
			return "", userErr(nil, "%s is not summoned.", m.Name)
		}
		var names []string
		for s := range cs {
			names = append(names, s)
		}
		sort.Strings(names)
		return "", userErr(nil, "%s has no service %q; it has %s.", m.Name, service, strings.Join(names, ", "))
	}
	rc, err := e.docker.ContainerLogs(ctx, c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(tail), Timestamps: false})
	if err != nil {
		return "", explainDocker(err, "reading the logs of "+m.Name)
	}
	defer rc.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil {
		return "", fmt.Errorf("reading the logs of %s: %w", m.Name, err)
	}
	return redact(out.String(), e.secretsOf(m)), nil
}

// Restart, Stop and Start act on every container of a minion, in
// dependency order (stop: the reverse).
func (e *Engine) Restart(ctx context.Context, name string) error { return e.each(ctx, name, "restart") }

// Stop stops a minion's containers; data and containers stay.
func (e *Engine) Stop(ctx context.Context, name string) error { return e.each(ctx, name, "stop") }

// Start starts a stopped minion's containers.
func (e *Engine) Start(ctx context.Context, name string) error { return e.each(ctx, name, "start") }

func (e *Engine) each(ctx context.Context, name, action string) error {
	m, err := e.minion(name)
	if err != nil {
		return err
	}
	return e.change(ctx, m, action, func() error { return e.eachHeld(ctx, m, action) })
}

func (e *Engine) eachHeld(ctx context.Context, m *Minion, action string) error {
	ids, err := e.ordered(ctx, m, action == "stop")
	if err != nil {
		return err
	}
	for _, c := range ids {
		var err error
		switch action {
		case "restart":
			err = e.docker.ContainerRestart(ctx, c.ID, container.StopOptions{})
		case "stop":
			err = e.docker.ContainerStop(ctx, c.ID, container.StopOptions{})
		case "start":
			err = e.docker.ContainerStart(ctx, c.ID, container.StartOptions{})
		}
		if err != nil {
			return explainDocker(err, action+"ing "+strings.TrimPrefix(firstOr(c.Names, c.ID), "/"))
		}
	}
	return nil
}

// ordered lists a minion's containers in dependency order, or reversed.
func (e *Engine) ordered(ctx context.Context, m *Minion, reverse bool) ([]container.Summary, error) {
	cs, err := e.containers(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return nil, userErr(nil, "%s is not summoned.", m.Name)
	}
	order := e.serviceOrder(ctx, m)
	var out []container.Summary
	for _, s := range order {
		if c, ok := cs[s]; ok {
			out = append(out, c)
			delete(cs, s)
		}
	}
	for _, c := range cs { // services no longer in the compose file
		out = append(out, c)
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

func (e *Engine) serviceOrder(ctx context.Context, m *Minion) []string {
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil
	}
	p, _, err := e.render(ctx, m, "", st, nil)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range p.Services {
		out = append(out, s.Service)
	}
	return out
}

// Banish removes a minion's containers, those a change set aside included,
// and its network. Its data stays unless purge is set; then its data
// folders and remembered state are deleted too, but only after a fresh
// listing proves that none of its containers is left: data is never
// deleted while something may still use it, nor while Docker cannot be
// asked.
func (e *Engine) Banish(ctx context.Context, name string, purge bool) error {
	m, err := e.minion(name)
	if err != nil {
		return err
	}
	return e.change(ctx, m, "banish", func() error { return e.banish(ctx, m, purge) })
}

func (e *Engine) banish(ctx context.Context, m *Minion, purge bool) error {
	list, err := e.allContainers(ctx, m.Name)
	if err != nil {
		return keptData(m, purge, err, "listing the containers of "+m.Name)
	}
	if len(list) == 0 && !purge {
		return userErr(nil, "%s is not summoned.", m.Name)
	}
	for _, c := range e.stopOrder(ctx, m, list) {
		cname := strings.TrimPrefix(firstOr(c.Names, c.ID), "/")
		// A graceful stop first, so a database shuts down cleanly; if it
		// fails, the forced removal below still takes the container away.
		if err := e.docker.ContainerStop(ctx, c.ID, container.StopOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("stopping a container before removing it", "minion", m.Name, "container", cname, "err", err)
		}
		if err := e.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return keptData(m, purge, err, "removing "+cname)
		}
	}
	if err := e.docker.NetworkRemove(ctx, m.Name+"_default"); err != nil && !cerrdefs.IsNotFound(err) {
		e.log.Warn("removing a minion's network", "minion", m.Name, "err", err)
	}
	if !purge {
		return nil
	}

	left, err := e.allContainers(ctx, m.Name)
	if err != nil {
		return keptData(m, true, err, "checking that the containers of "+m.Name+" are gone")
	}
	if len(left) > 0 {
		names := make([]string, len(left))
		for i, c := range left {
			names[i] = strings.TrimPrefix(firstOr(c.Names, c.ID), "/")
		}
		sort.Strings(names)
		return userErr(nil, "%s still has containers after I removed them (%s), so I deleted none of its data. Try again in a moment; if they stay, look at them on the server with `docker ps -a --filter label=%s=%s`.",
			m.Name, strings.Join(names, ", "), LabelMinion, m.Name)
	}
	dirs := e.DataDirs(m)
	for _, dir := range dirs {
		// A relative path would be resolved against wherever the bot runs.
		if !filepath.IsAbs(dir) {
			return userErr(nil, "I deleted nothing: the data folder of %s, %s, is not an absolute path; set summoner.vsroot and summoner.dbsroot to absolute paths.", m.Name, dir)
		}
	}
	for _, dir := range dirs {
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("deleting the data of %s in %s: %w", m.Name, dir, err)
		}
	}
	if err := e.o.State.Remove(m.Name); err != nil {
		return fmt.Errorf("forgetting the state of %s: %w", m.Name, err)
	}
	e.log.Info("purged a minion's data", "minion", m.Name, "dirs", dirs)
	return nil
}

// keptData is the error of a banish that stopped on a Docker failure; for
// a purge it says plainly that no data was deleted.
func keptData(m *Minion, purge bool, err error, doing string) error {
	err = explainDocker(err, doing)
	if !purge {
		return err
	}
	var (
		um  interface{ UserMessage() string }
		msg string
	)
	if errors.As(err, &um) {
		msg = um.UserMessage()
	} else {
		msg = "Docker failed: " + firstLine(err.Error()) + "."
	}
	return userErr(err, "%s\nNothing was deleted: the data of %s stays until I can make sure its containers are gone.", msg, m.Name)
}

// allContainers lists every container of a minion, those a change set
// aside (renamed with a .summoner-old suffix, same labels) included.
func (e *Engine) allContainers(ctx context.Context, minion string) ([]container.Summary, error) {
	return e.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelMinion+"="+minion))})
}

// stopOrder sorts a minion's containers so that dependents stop before
// what they depend on; services no longer in the compose file go first.
func (e *Engine) stopOrder(ctx context.Context, m *Minion, list []container.Summary) []container.Summary {
	order := e.serviceOrder(ctx, m)
	rank := func(c container.Summary) int {
		if i := slices.Index(order, c.Labels[labelService]); i >= 0 {
			return i
		}
		return len(order)
	}
	out := slices.Clone(list)
	slices.SortStableFunc(out, func(a, b container.Summary) int { return cmp.Compare(rank(b), rank(a)) })
	return out
}

// Summoned tells whether a minion has anything to banish: a container (one
// set aside by a change included), a data folder or remembered state. The
// folders are looked at first, so a minion with data is known even while
// Docker does not answer; an unknown minion is an error for the user.
func (e *Engine) Summoned(ctx context.Context, name string) (bool, error) {
	m, err := e.minion(name)
	if err != nil {
		return false, err
	}
	paths := e.DataDirs(m)
	if e.o.State != nil && e.o.State.Dir != "" {
		paths = append(paths, filepath.Join(e.o.State.Dir, m.Name))
	}
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return true, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("looking for the data of %s: %w", m.Name, err)
		}
	}
	list, err := e.allContainers(ctx, m.Name)
	if err != nil {
		return false, explainDocker(err, "listing the containers of "+m.Name)
	}
	return len(list) > 0, nil
}

// DataDirs are the folders holding a minion's data.
func (e *Engine) DataDirs(m *Minion) []string {
	return []string{filepath.Join(e.o.VSRoot, m.Name), filepath.Join(e.o.DBSRoot, m.Name)}
}
