package minions

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"golang.org/x/sync/errgroup"
)

// OldSuffix ends the name of a container set aside while its replacement
// proves itself (testmin-example.org.summoner-old). Only deploy makes such
// names; one left by a crash is sorted out by the next summon or update.
const OldSuffix = ".summoner-old"

// nameOf is a listed container's name without Docker's leading slash.
func nameOf(c container.Summary) string {
	if len(c.Names) == 0 {
		return c.ID
	}
	return strings.TrimPrefix(c.Names[0], "/")
}

// containers lists the minion's current containers by service. Containers
// set aside by a change carry the same labels, so they are told apart by
// name and left out.
func (e *Engine) containers(ctx context.Context, minion string) (map[string]container.Summary, error) {
	current, _, err := e.listContainers(ctx, minion)
	return current, err
}

// listContainers lists the minion's containers by service: the current
// ones, and those a change set aside.
func (e *Engine) listContainers(ctx context.Context, minion string) (current, old map[string]container.Summary, err error) {
	list, err := e.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelMinion+"="+minion))})
	if err != nil {
		return nil, nil, explainDocker(err, "listing the containers of "+minion)
	}
	current, old = map[string]container.Summary{}, map[string]container.Summary{}
	for _, c := range list {
		if strings.HasSuffix(nameOf(c), OldSuffix) {
			old[c.Labels[labelService]] = c
		} else {
			current[c.Labels[labelService]] = c
		}
	}
	return current, old, nil
}

// recoverLeftovers finishes a change that a crash interrupted, and returns
// the current containers. An old container whose service has no current
// one is the last good one: it gets its name back. One whose service has
// a current container is no longer needed and is removed.
func (e *Engine) recoverLeftovers(ctx context.Context, minion string) (map[string]container.Summary, error) {
	current, old, err := e.listContainers(ctx, minion)
	if err != nil {
		return nil, err
	}
	for svc, c := range old {
		name := nameOf(c)
		if _, ok := current[svc]; ok {
			e.log.Warn("removing a container set aside by an interrupted change", "minion", minion, "container", name)
			if err := e.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				return nil, explainDocker(err, "removing the leftover "+name)
			}
			continue
		}
		back := strings.TrimSuffix(name, OldSuffix)
		e.log.Warn("renaming back a container set aside by an interrupted change", "minion", minion, "container", back)
		if err := e.docker.ContainerRename(ctx, c.ID, back); err != nil {
			return nil, explainDocker(err, "renaming the leftover "+name+" back to "+back)
		}
		c.Names = []string{"/" + back}
		current[svc] = c
	}
	return current, nil
}

// undo remembers what a change did, to take it back if it fails.
type undo struct {
	mu         sync.Mutex
	containers []string // created by the change
	network    string   // created by the change
	dirs       []string // created folders, outermost first
	retired    []retired
	started    []string // unchanged containers the change started
}

// retired is an old container set aside while its replacement starts.
type retired struct {
	id, name, service string
	running           bool // it ran before the change
	renamed           bool // it carries OldSuffix now
}

func (u *undo) addContainer(id string) {
	u.mu.Lock()
	u.containers = append(u.containers, id)
	u.mu.Unlock()
}

func (u *undo) addStarted(id string) {
	u.mu.Lock()
	u.started = append(u.started, id)
	u.mu.Unlock()
}

// deploy makes the plan's containers run, all or nothing. Images are
// pulled before anything is touched. Containers whose configuration
// changed are stopped and set aside (renamed, not removed), the new ones
// created, started in dependency order and waited for; only when all are
// ready are the old ones removed. On any failure the new ones are removed
// and the old ones put back, and the error is a *ChangeError saying how it
// ended. A first summon (nothing there before) removes what it made and
// returns the cause as is.
func (e *Engine) deploy(ctx context.Context, p *Plan, existing map[string]container.Summary, alwaysPull bool, progress Progress) (err error) {
	// Services start and are waited for in parallel: one at a time to the
	// caller's progress, which need not be safe for concurrent use.
	var sayMu sync.Mutex
	say := func(format string, args ...any) {
		if progress != nil {
			sayMu.Lock()
			defer sayMu.Unlock()
			progress(fmt.Sprintf(format, args...))
		}
	}
	u := &undo{}
	defer func() {
		if err != nil {
			err = e.takeBack(ctx, p, existing, u, err, say)
		}
	}()

	for _, s := range p.Services {
		if err := e.pull(ctx, s, alwaysPull, say); err != nil {
			return err
		}
	}
	if err := e.ensureNetwork(ctx, p, u); err != nil {
		return err
	}
	if err := ensureDirs(p, u); err != nil {
		return err
	}

	// Stop the containers to replace in reverse dependency order (those of
	// services the minion no longer has first), so nothing loses what it
	// depends on while it still runs.
	keep := map[string]container.Summary{}
	var replace []container.Summary
	for _, svc := range sortedKeys(existing) {
		if p.Service(svc) == nil {
			replace = append(replace, existing[svc])
		}
	}
	for _, s := range slices.Backward(p.Services) {
		c, ok := existing[s.Service]
		switch {
		case !ok:
		case c.Labels[LabelHash] == s.Hash:
			keep[s.Service] = c
		default:
			replace = append(replace, c)
		}
	}
	for _, c := range replace {
		if err := e.setAside(ctx, c, u, say); err != nil {
			return err
		}
	}

	// Create every new container at once (as compose does); only starting
	// them has to follow the dependencies.
	ids := make([]string, len(p.Services))
	running := make([]bool, len(p.Services))
	pg, pctx := errgroup.WithContext(ctx)
	for i, s := range p.Services {
		if c, ok := keep[s.Service]; ok {
			ids[i], running[i] = c.ID, c.State == container.StateRunning
			continue
		}
		pg.Go(func() (err error) {
			ids[i], err = e.create(pctx, p, s, u, say)
			return err
		})
	}
	if err := pg.Wait(); err != nil {
		return err
	}

	timeout := e.healthTimeout(p.Minion)
	started := map[string]chan struct{}{}
	healthy := map[string]chan struct{}{}
	for _, s := range p.Services {
		started[s.Service], healthy[s.Service] = make(chan struct{}), make(chan struct{})
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, s := range p.Services {
		g.Go(func() error {
			for dep, cond := range s.DependsOn {
				wait := started[dep]
				if cond == "service_healthy" {
					wait = healthy[dep]
				}
				select {
				case <-wait:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			id := ids[i]
			// Restarts are counted from now: a kept container Docker
			// restarted last week is not failing today. Docker resets the
			// count when we start one.
			restarts := -1
			if !running[i] {
				say("Starting %s…", s.Container)
				if _, kept := keep[s.Service]; kept {
					u.addStarted(id)
				}
				if err := e.docker.ContainerStart(gctx, id, container.StartOptions{}); err != nil {
					return explainDocker(err, "starting "+s.Container)
				}
				restarts = 0
			}
			close(started[s.Service])
			if err := e.waitHealthy(gctx, p, s, id, timeout, restarts, say); err != nil {
				return err
			}
			close(healthy[s.Service])
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}

	// Proven: the old containers can go. One that will not is harmless
	// (stopped, renamed); the next summon removes it.
	for _, r := range u.retired {
		if err := e.docker.ContainerRemove(ctx, r.id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("removing a replaced container", "minion", p.Minion.Name, "container", r.name, "err", err)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// setAside stops an old container and renames it out of its replacement's
// way, remembering it so that a failure can put it back.
func (e *Engine) setAside(ctx context.Context, c container.Summary, u *undo, say func(string, ...any)) error {
	name := nameOf(c)
	// Remembered before stopping: a stop that fails may have stopped it.
	u.retired = append(u.retired, retired{id: c.ID, name: name, service: c.Labels[labelService], running: c.State == container.StateRunning})
	r := &u.retired[len(u.retired)-1]
	say("Replacing %s…", name)
	if r.running {
		if err := e.docker.ContainerStop(ctx, c.ID, container.StopOptions{}); err != nil {
			return explainDocker(err, "stopping the old "+name)
		}
	}
	if err := e.docker.ContainerRename(ctx, c.ID, name+OldSuffix); err != nil {
		return explainDocker(err, "setting the old "+name+" aside")
	}
	r.renamed = true
	return nil
}

// create makes a service's new container, first removing a leftover of
// ours that holds its name.
func (e *Engine) create(ctx context.Context, p *Plan, s *ServicePlan, u *undo, say func(string, ...any)) (string, error) {
	if err := e.removeStray(ctx, s.Container); err != nil {
		return "", err
	}
	say("Creating %s…", s.Container)
	created, err := e.docker.ContainerCreate(ctx, s.Config, s.Host, p.NetworkingConfig(s), nil, s.Container)
	if err != nil {
		return "", explainDocker(err, "creating "+s.Container)
	}
	u.addContainer(created.ID)
	return created.ID, nil
}

// removeStray removes a container that has the name we need but no
// Summoner labels for this minion only if it is ours (an earlier crash);
// someone else's container is reported, never touched.
func (e *Engine) removeStray(ctx context.Context, name string) error {
	c, err := e.docker.ContainerInspect(ctx, name)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return explainDocker(err, "looking for container "+name)
	}
	if c.Config == nil || c.Config.Labels[LabelMinion] == "" {
		return userErr(nil, "A container named %s already exists and was not made by Summoner; rename or remove it first.", name)
	}
	if err := e.docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return explainDocker(err, "removing the leftover "+name)
	}
	return nil
}

// takeBack undoes a failed change. With nothing there before it removes
// what it made and returns the cause; otherwise it puts the old
// containers back and says how that went in a *ChangeError.
func (e *Engine) takeBack(ctx context.Context, p *Plan, existing map[string]container.Summary, u *undo, cause error, say func(string, ...any)) error {
	// Putting things back must happen even when the command ran out of
	// time, but not forever.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.healthTimeout(p.Minion)+2*time.Minute)
	defer cancel()
	if len(existing) == 0 {
		if err := e.rollback(rctx, u); err != nil {
			e.log.Error("removing what a failed summon made", "minion", p.Minion.Name, "err", err)
		}
		return cause
	}
	e.log.Warn("a change failed; putting back what ran before", "minion", p.Minion.Name, "err", cause)
	say("That failed; putting back what ran before…")
	ce := &ChangeError{Minion: p.Minion.Name, Cause: cause, WasStopped: true}
	for _, c := range existing {
		if c.State == container.StateRunning {
			ce.WasStopped = false
		}
	}
	if err := e.restore(rctx, p, u, say); err != nil {
		e.log.Error("putting a minion back after a failed change", "minion", p.Minion.Name, "err", err)
		ce.RestoreErr = err
		return ce
	}
	ce.Restored = true
	return ce
}

// restore puts back what ran before a failed change: the new containers
// go (they hold the names and ports), the unchanged ones the change
// started stop again, the old ones get their names back and start in
// dependency order, each waited for as a new one would be.
func (e *Engine) restore(ctx context.Context, p *Plan, u *undo, say func(string, ...any)) error {
	if err := e.rollback(ctx, u); err != nil {
		return err
	}
	for _, id := range u.started {
		if err := e.docker.ContainerStop(ctx, id, container.StopOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			return explainDocker(err, "stopping "+id+" again")
		}
	}
	for _, r := range slices.Backward(u.retired) {
		if !r.renamed {
			continue
		}
		if err := e.docker.ContainerRename(ctx, r.id, r.name); err != nil {
			return explainDocker(err, "renaming the old "+r.name+" back")
		}
	}
	timeout := e.healthTimeout(p.Minion)
	for _, r := range slices.Backward(u.retired) {
		if !r.running {
			continue
		}
		if err := e.startBack(ctx, p, r, timeout, say); err != nil {
			return err
		}
	}
	return nil
}

// startBack starts an old container again and waits until it is ready,
// probing it where it publishes its own port (the plan's may differ).
func (e *Engine) startBack(ctx context.Context, p *Plan, r retired, timeout time.Duration, say func(string, ...any)) error {
	c, err := e.docker.ContainerInspect(ctx, r.id)
	if err != nil {
		return explainDocker(err, "looking at the old "+r.name)
	}
	s := &ServicePlan{Service: r.service, Role: RoleService, Container: r.name}
	if c.Config != nil {
		s.Role = c.Config.Labels[LabelRole]
	}
	before := *p
	before.HostIP, before.HostPort = publishedAddr(c, p.Minion.Web.Port)
	say("Starting %s again…", r.name)
	if err := e.docker.ContainerStart(ctx, r.id, container.StartOptions{}); err != nil {
		return explainDocker(err, "starting the old "+r.name+" again")
	}
	return e.waitHealthy(ctx, &before, s, r.id, timeout, 0, say)
}

// rollback removes what a failed change created. Folders are removed only
// when empty: data is never deleted by a failure. Only failing to remove
// a container is an error: it may hold a name or port the old one needs.
func (e *Engine) rollback(ctx context.Context, u *undo) error {
	var errs []error
	for _, id := range u.containers {
		if err := e.docker.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, explainDocker(err, "removing the new container "+shortID(id)))
		}
	}
	if u.network != "" {
		if err := e.docker.NetworkRemove(ctx, u.network); err != nil && !cerrdefs.IsNotFound(err) {
			e.log.Warn("removing a network after a failed summon", "network", u.network, "err", err)
		}
	}
	for i := len(u.dirs) - 1; i >= 0; i-- {
		_ = os.Remove(u.dirs[i]) // fails, as it should, if anything was written there
	}
	return errors.Join(errs...)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// waitHealthy waits until a started container is ready: its health check
// passes, or, without one, the web port answers (other services: it keeps
// running). A container that exits or restarts fails at once, with its
// last log lines. restarts is its restart count when the step began, -1
// to take the count it has now.
func (e *Engine) waitHealthy(ctx context.Context, p *Plan, s *ServicePlan, id string, timeout time.Duration, restarts int, say func(string, ...any)) error {
	deadline := time.Now().Add(timeout)
	first := true
	runningSince := time.Time{}
	for {
		c, err := e.docker.ContainerInspect(ctx, id)
		if err != nil {
			return explainDocker(err, "checking "+s.Container)
		}
		if restarts < 0 {
			restarts = c.RestartCount
		}
		st := c.State
		switch {
		case st.Status == container.StateExited || st.Status == container.StateDead || st.Restarting || c.RestartCount > restarts:
			return userErr(nil, "%s stopped right after starting (exit code %d). Its last log lines:\n%s",
				s.Container, st.ExitCode, e.tail(ctx, id, 8, p.Secrets))
		case st.Health != nil && st.Health.Status == container.Healthy:
			say("%s is healthy.", s.Container)
			return nil
		case st.Health != nil && st.Health.Status == container.Unhealthy:
			return userErr(nil, "%s is unhealthy: %s", s.Container, lastProbe(st.Health, p.Secrets))
		case st.Health == nil && s.Role == RoleWeb:
			if e.probe(ctx, p, c) {
				say("%s answers.", s.Container)
				return nil
			}
		case st.Health == nil && st.Running:
			if runningSince.IsZero() {
				runningSince = time.Now()
			} else if time.Since(runningSince) >= 500*time.Millisecond {
				return nil
			}
		}
		if first {
			say("Waiting for %s to be ready…", s.Container)
			first = false
		}
		if time.Now().After(deadline) {
			return userErr(nil, "%s was not ready after %s. Its last log lines:\n%s", s.Container, timeout, e.tail(ctx, id, 8, p.Secrets))
		}
		// Poll fast while a quick start is likely, then back off: most
		// containers are ready in seconds, a few (GitLab) take minutes.
		wait := 50 * time.Millisecond
		if time.Until(deadline) < timeout-10*time.Second {
			wait = 500 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// ChangeError is a change to a running minion (a summon with new
// settings, an update) that failed. Restored says whether what ran before
// runs again; if not, RestoreErr says why and the minion is down.
type ChangeError struct {
	Minion     string
	Cause      error // why the change failed
	Restored   bool
	RestoreErr error
	// WasStopped: the minion was stopped before the change, so putting
	// it back leaves it stopped.
	WasStopped bool
}

func (e *ChangeError) Error() string { return e.UserMessage() }

// UserMessage says how the change ended, for chat.
func (e *ChangeError) UserMessage() string {
	if e.Restored {
		back := e.Minion + " runs again as before."
		if e.WasStopped {
			back = e.Minion + " is back as it was: stopped (`start " + e.Minion + "` starts it)."
		}
		return "The change to " + e.Minion + " failed, so I put back what ran before: " + back +
			"\nWhat went wrong: " + explainCause(e.Cause)
	}
	return "⚠️ " + e.Minion + " is DOWN. The change failed, and putting back what ran before failed too." +
		"\nWhat went wrong: " + explainCause(e.Cause) +
		"\nWhy it could not be put back: " + explainCause(e.RestoreErr) +
		"\nRun `summon " + e.Minion + "` to bring it back with its last good settings, then `status " + e.Minion + "` to check it."
}

// Unwrap gives the cause (RestoreErr is logged where it happens).
func (e *ChangeError) Unwrap() error { return e.Cause }

// explainCause is an error in words for chat: a user message as is, an
// internal error by its first line only.
func explainCause(err error) string {
	var um interface{ UserMessage() string }
	switch {
	case err == nil:
		return "(unknown)"
	case errors.As(err, &um):
		return um.UserMessage()
	case errors.Is(err, context.DeadlineExceeded):
		return "it took longer than the command may run"
	case errors.Is(err, context.Canceled):
		return "it was cancelled"
	}
	return firstLine(err.Error())
}
