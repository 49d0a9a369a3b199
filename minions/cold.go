package minions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
)

// DataDir is one data folder of a minion, with the name it has inside a
// cold backup's archive.
type DataDir struct {
	Name string // "data" for ${DATA}, "db_data" for ${DB_DATA}
	Path string // on the host
}

// ColdTarget is what a cold backup of a minion needs to know.
type ColdTarget struct {
	Minion string
	// Dirs are the minion's data folders; a folder that is both ${DATA}
	// and ${DB_DATA} is listed once, so it is never archived twice.
	Dirs   []DataDir
	DBKind string            // "" without a database
	Images map[string]string // of its last good deployment, for the manifest
}

// ColdTarget names a minion's data folders for a cold backup or restore.
// The folders must be absolute: Docker would not bind a relative one, and
// it would mean wherever the bot runs.
func (e *Engine) ColdTarget(name string) (*ColdTarget, error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	t := &ColdTarget{Minion: m.Name}
	if m.Database != nil {
		t.DBKind = m.Database.Kind
	}
	for i, dir := range e.DataDirs(m) {
		if !filepath.IsAbs(dir) {
			return nil, userErr(nil, "The data folder of %s, %s, is not an absolute path; set summoner.vsroot and summoner.dbsroot to absolute paths.", m.Name, dir)
		}
		dir = filepath.Clean(dir)
		if slices.ContainsFunc(t.Dirs, func(d DataDir) bool { return d.Path == dir }) {
			continue
		}
		t.Dirs = append(t.Dirs, DataDir{Name: []string{"data", "db_data"}[i], Path: dir})
	}
	if e.o.State != nil {
		st, err := e.o.State.Load(m.Name)
		if err != nil {
			return nil, err
		}
		t.Images = st.Images
		// The remembered state (generated database passwords) goes with
		// the data: restored data folders hold a database that knows only
		// the passwords of their time.
		if dir := filepath.Join(e.o.State.Dir, m.Name); filepath.IsAbs(dir) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("making the state folder of %s: %w", m.Name, err)
			}
			t.Dirs = append(t.Dirs, DataDir{Name: "state", Path: filepath.Clean(dir)})
		}
	}
	return t, nil
}

// StopMinion stops every running container of a minion, dependents first
// (the app, then its database), and returns the IDs it stopped, in the
// order it stopped them, so StartMinion starts those and no others. On
// failure it still returns the ones it stopped. Like StopApp, it leaves the
// lock to the caller.
func (e *Engine) StopMinion(ctx context.Context, name string, progress Progress) ([]string, error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	defer e.changed(ctx, m.Name)
	list, err := e.ordered(ctx, m, true)
	if err != nil {
		return nil, err
	}
	var stopped []string
	for _, c := range list {
		if c.State != container.StateRunning && c.State != container.StateRestarting {
			continue
		}
		if progress != nil {
			progress(fmt.Sprintf("Stopping %s…", nameOf(c)))
		}
		if err := e.docker.ContainerStop(ctx, c.ID, container.StopOptions{}); err != nil {
			// It may have stopped after all: starting it again is harmless.
			return append(stopped, c.ID), explainDocker(err, "stopping "+nameOf(c))
		}
		stopped = append(stopped, c.ID)
	}
	return stopped, nil
}

// StartMinion starts the given containers of a minion (StopMinion's
// answer) in dependency order, the database first, and waits until each
// is ready, as a summon does. It leaves the lock to the caller.
func (e *Engine) StartMinion(ctx context.Context, name string, ids []string, progress Progress) error {
	if len(ids) == 0 {
		return nil
	}
	m, err := e.minion(name)
	if err != nil {
		return err
	}
	defer e.changed(ctx, m.Name)
	// After a cold restore the remembered state may be the backup's: its
	// containers must be made again with those passwords, or the app could
	// not log in to its restored database. All or nothing, as a summon.
	if stale, err := e.staleContainers(ctx, m); err == nil && stale {
		_, err := e.summonHeld(ctx, m, "", nil, progress)
		return err
	}
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return err
	}
	p, _, err := e.render(ctx, m, "", st, nil)
	if err != nil {
		return err
	}
	list, err := e.ordered(ctx, m, false)
	if err != nil {
		return err
	}
	timeout := e.healthTimeout(m)
	for _, c := range list {
		if !slices.Contains(ids, c.ID) {
			continue
		}
		say("Starting %s…", nameOf(c))
		if err := e.docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			return explainDocker(err, "starting "+nameOf(c))
		}
		// The plan's probe, under the container's own name (a container
		// from before a settings change keeps its name). A service gone
		// from the compose file is only started.
		s := p.Service(c.Labels[labelService])
		if s == nil {
			continue
		}
		sc := *s
		sc.Container = nameOf(c)
		if err := e.waitHealthy(ctx, p, &sc, c.ID, timeout, 0, say); err != nil {
			return err
		}
	}
	return nil
}

// HelperImage makes sure a helper image (the one that archives data
// folders) is here, pulling it through the registry mirror if it is
// missing, and returns the reference to create containers from.
func (e *Engine) HelperImage(ctx context.Context, ref string, progress Progress) (string, error) {
	pull, err := e.o.Mirror.Rewrite(ref)
	if err != nil {
		return "", err
	}
	if _, err := e.docker.ImageInspect(ctx, pull); err == nil {
		return pull, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", explainDocker(err, "looking for image "+pull)
	}
	if progress != nil {
		progress(fmt.Sprintf("Pulling %s…", pull))
	}
	rc, err := e.docker.ImagePull(ctx, pull, image.PullOptions{})
	if err != nil {
		return "", userErr(err, "Pulling the helper image %s failed: %s", pull, firstLine(err.Error()))
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return pull, nil
		} else if err != nil {
			return "", fmt.Errorf("reading the pull of %s: %w", pull, err)
		}
		if msg.Error != "" {
			return "", userErr(errors.New(msg.Error), "Pulling the helper image %s failed: %s", pull, firstLine(msg.Error))
		}
	}
}

// staleContainers tells whether the minion's containers were made from
// another configuration than its remembered state renders now.
func (e *Engine) staleContainers(ctx context.Context, m *Minion) (bool, error) {
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return false, err
	}
	plan, _, err := e.render(ctx, m, "", st, nil)
	if err != nil {
		return false, err
	}
	existing, err := e.containers(ctx, m.Name)
	if err != nil {
		return false, err
	}
	for _, s := range plan.Services {
		if c, ok := existing[s.Service]; ok && c.Labels[LabelHash] != s.Hash {
			return true, nil
		}
	}
	return false, nil
}
