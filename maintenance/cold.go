package maintenance

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/summoner-bot/summoner/internal/human"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// DefaultHelperImage archives and unpacks data folders: any image with a
// tar that knows --numeric-owner, and sh and find for a restore.
const DefaultHelperImage = "busybox:1.36.1"

// Labels of a helper container. It never carries summoner.minion, so no
// listing of a minion's containers (status, stop, banish) ever sees it.
const (
	LabelHelper       = "summoner.helper"        // what it does: "cold-backup", "cold-restore"
	LabelHelperMinion = "summoner.helper.minion" // whose data it holds
)

// ColdDocker is the part of the Engine API a helper container runs
// through; the real client satisfies it.
type ColdDocker interface {
	ContainerCreate(ctx context.Context, cfg *container.Config, host *container.HostConfig, net *network.NetworkingConfig, platform *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerAttach(ctx context.Context, id string, o container.AttachOptions) (dtypes.HijackedResponse, error)
	ContainerStart(ctx context.Context, id string, o container.StartOptions) error
	ContainerWait(ctx context.Context, id string, cond container.WaitCondition) (<-chan container.WaitResponse, <-chan error)
	ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error
}

var _ ColdDocker = (*client.Client)(nil)

// ColdEngine is the part of minions.Engine a cold backup and its restore
// use. Stop and start leave the lock to the caller, who holds it.
type ColdEngine interface {
	Lock(minion, what string) (release func(), err error)
	ColdTarget(minion string) (*minions.ColdTarget, error)
	StopMinion(ctx context.Context, minion string, progress minions.Progress) ([]string, error)
	StartMinion(ctx context.Context, minion string, ids []string, progress minions.Progress) error
	HelperImage(ctx context.Context, ref string, progress minions.Progress) (string, error)
}

var _ ColdEngine = (*minions.Engine)(nil)

// ColdOptions configure cold backups. Zero fields come from the
// Service's Options, where the real client and engine fit both roles.
type ColdOptions struct {
	Docker      ColdDocker
	Engine      ColdEngine
	HelperImage string // DefaultHelperImage if ""
}

// Cold takes cold backups of minions and restores them.
type Cold struct {
	s   *Service
	o   ColdOptions
	log *slog.Logger
}

// Cold gives the Service's cold backups. It fails when the Service's
// Docker or Engine cannot run them and o does not give its own.
func (s *Service) Cold(o ColdOptions) (*Cold, error) {
	if o.Docker == nil {
		d, ok := s.o.Docker.(ColdDocker)
		if !ok {
			return nil, errors.New("cold backups: the Docker client cannot run helper containers")
		}
		o.Docker = d
	}
	if o.Engine == nil {
		e, ok := s.o.Engine.(ColdEngine)
		if !ok {
			return nil, errors.New("cold backups: the engine cannot stop and start whole minions")
		}
		o.Engine = e
	}
	if o.HelperImage == "" {
		o.HelperImage = DefaultHelperImage
	}
	return &Cold{s: s, o: o, log: s.log.With("job", "cold")}, nil
}

// ColdBackup takes a cold backup with the default helper image (see Cold).
func (s *Service) ColdBackup(ctx context.Context, minion string, progress Progress) (*ColdResult, error) {
	c, err := s.Cold(ColdOptions{})
	if err != nil {
		return nil, err
	}
	return c.Backup(ctx, minion, progress)
}

// RestoreCold restores a cold backup with the default helper image (see Cold).
func (s *Service) RestoreCold(ctx context.Context, minion, backupID string, progress Progress) (*RestoreResult, error) {
	c, err := s.Cold(ColdOptions{})
	if err != nil {
		return nil, err
	}
	return c.Restore(ctx, minion, backupID, progress)
}

// ColdResult is a stored cold backup.
type ColdResult struct {
	*storage.StoreResult
	Took     time.Duration // the whole backup
	Downtime time.Duration // how long the minion was stopped
}

// Steps of a cold backup and of its restore, as a ColdError or a
// RestoreError names the one that failed.
const (
	StepHelper     = "getting the helper image"
	StepColdStop   = "stopping the minion"
	StepArchive    = "archiving the data folders"
	StepColdSafety = "taking a safety copy of the data folders"
	StepUnpack     = "unpacking the backup into the data folders"
	StepColdStart  = "starting the minion"
)

// ColdError is a cold backup that failed, and how the minion was left.
type ColdError struct {
	Minion string
	Step   string
	Cause  error
	// BackupID is set when the archive was stored and only starting the
	// minion again failed.
	BackupID string
	// StartErr: the minion could not be started again; it may be down.
	StartErr error
}

func (e *ColdError) Error() string { return e.UserMessage() }

// Unwrap gives the cause.
func (e *ColdError) Unwrap() error { return e.Cause }

// UserMessage says how the backup ended, for chat.
func (e *ColdError) UserMessage() string {
	if e.Cause == nil {
		return fmt.Sprintf("⚠️ The cold backup %s of %s is stored, but starting %s again failed: %s\n`start %s` tries again.",
			e.BackupID, e.Minion, e.Minion, minions.Explain(e.StartErr), e.Minion)
	}
	msg := fmt.Sprintf("The cold backup of %s failed while %s, so nothing was stored.\nWhat went wrong: %s", e.Minion, e.Step, minions.Explain(e.Cause))
	if e.StartErr != nil {
		return "⚠️ " + msg + fmt.Sprintf("\nStarting %s again failed too, so it may be down: %s\n`start %s` tries again.", e.Minion, minions.Explain(e.StartErr), e.Minion)
	}
	return msg + fmt.Sprintf("\n%s runs again as before.", e.Minion)
}

// Backup takes a cold backup: it stops the minion (app first, then its
// database), archives its data folders with a helper container straight
// into the repository, and starts the minion again, whatever happened to
// the archive. It holds the minion's lock throughout.
func (c *Cold) Backup(ctx context.Context, minion string, progress Progress) (*ColdResult, error) {
	started := time.Now()
	release, err := c.o.Engine.Lock(minion, "cold backup")
	if err != nil {
		return nil, err
	}
	defer release()
	t, err := c.o.Engine.ColdTarget(minion)
	if err != nil {
		return nil, err
	}
	fail := &ColdError{Minion: t.Minion}
	dirs, err := existingDirs(t)
	if err != nil {
		fail.Step, fail.Cause = StepArchive, err
		return nil, fail
	}
	// The image comes before anything stops: a missing one costs no downtime.
	ref, err := c.o.Engine.HelperImage(ctx, c.o.HelperImage, progress)
	if err != nil {
		fail.Step, fail.Cause = StepHelper, err
		return nil, fail
	}

	stopped := time.Now()
	ids, err := c.o.Engine.StopMinion(ctx, t.Minion, progress)
	var res *ColdResult
	if err != nil {
		fail.Step, fail.Cause = StepColdStop, err
	} else {
		say(progress, "Archiving the data folders of %s…", t.Minion)
		if res, err = c.archive(ctx, t, dirs, ref); err != nil {
			fail.Step, fail.Cause = StepArchive, err
		}
	}
	fail.StartErr = c.start(ctx, t.Minion, ids, progress)
	downtime := time.Since(stopped)
	switch {
	case fail.Cause != nil:
		c.log.Error("a cold backup failed; nothing was stored", "minion", t.Minion, "step", fail.Step, "err", fail.Cause, "start_err", fail.StartErr)
		return nil, fail
	case fail.StartErr != nil:
		fail.BackupID = res.Manifest.ID
		c.log.Error("starting a minion after its cold backup", "minion", t.Minion, "backup", fail.BackupID, "err", fail.StartErr)
		return nil, fail
	}
	res.Took, res.Downtime = time.Since(started), downtime
	say(progress, "Stored cold backup %s of %s (%s) in %s; %s was stopped for %s.",
		res.Manifest.ID, t.Minion, human.Bytes(res.Manifest.Payload.Size), res.Took.Round(time.Second), t.Minion, downtime.Round(time.Second))
	c.log.Info("took a cold backup", "minion", t.Minion, "backup", res.Manifest.ID, "bytes", res.Manifest.Payload.Size, "took", res.Took, "downtime", downtime)
	return res, nil
}

// start starts what StopMinion stopped. It runs even when the command ran
// out of time (a minion must not stay down for that), but not forever.
func (c *Cold) start(ctx context.Context, minion string, ids []string, progress Progress) error {
	if len(ids) == 0 {
		return nil
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.o.RecoverTimeout)
	defer cancel()
	say(progress, "Starting %s again…", minion)
	return c.o.Engine.StartMinion(sctx, minion, ids, progress)
}

// existingDirs are the data folders a backup archives: a minion without a
// database has no ${DB_DATA} folder, and one with none has nothing to keep.
func existingDirs(t *minions.ColdTarget) ([]minions.DataDir, error) {
	var out []minions.DataDir
	for _, d := range t.Dirs {
		fi, err := os.Stat(d.Path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("looking at the data folder %s: %w", d.Path, err)
		case !fi.IsDir():
			return nil, &userError{msg: fmt.Sprintf("the data folder %s is not a folder", d.Path), pub: fmt.Sprintf("its data folder %q is not a folder", d.Name)}
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, &userError{msg: fmt.Sprintf("%s has no data folder yet, so there is nothing to back up", t.Minion)}
	}
	return out, nil
}

// tarFormat is what a whole archive looks like: whole 512-byte blocks,
// the last one zero (tar's end-of-archive marker).
var tarFormat = format{
	name: "tar archive",
	tail: func(end []byte) bool { return len(end) >= 512 && bytes.Count(end[len(end)-512:], []byte{0}) == 512 },
	want: "the end-of-archive marker",
}

// archive streams the data folders, through a helper container, straight
// into the repository. The pipe ends in the helper's error unless the
// archive is whole, so the repository stores nothing then.
func (c *Cold) archive(ctx context.Context, t *minions.ColdTarget, dirs []minions.DataDir, ref string) (*ColdResult, error) {
	cmd := []string{"-c", "--numeric-owner", "-f", "-", "-C", helperRoot}
	for _, d := range dirs {
		cmd = append(cmd, d.Name)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	// The archive's files, bytes and entries are counted and hashed on
	// the side as it streams, for test restores to compare with later.
	var tally storage.Tally
	go func() {
		cw := newCheckWriter(pw)
		tw := newTallyWriter(ctx)
		err := c.runHelper(ctx, helperRun{
			minion: t.Minion, what: "cold-backup", image: ref, dirs: dirs, readOnly: true,
			entrypoint: []string{"tar"}, cmd: cmd, stdout: io.MultiWriter(cw, tw),
		})
		if err == nil {
			p := cw.problem(tarFormat)
			if p == "" && cw.n%512 != 0 {
				p = "its output was cut short: it is not made of whole tar blocks"
			}
			if p != "" {
				err = &DumpError{Op: "archive", DB: "data folders of " + t.Minion, Tool: "tar", Reason: p}
			}
		}
		// Finished before the repository sees the end of the stream, so
		// the tally is whole when Store asks for it.
		if a, terr := tw.finish(err); terr != nil {
			if err == nil {
				c.log.Warn("counting a cold backup's files; the backup will not record them", "minion", t.Minion, "err", terr)
			}
		} else {
			tally = a.record()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	meta := storage.Meta{Minion: t.Minion, Kind: storage.KindCold, DBKind: t.DBKind, Images: t.Images, Tally: func() storage.Tally { return tally }}
	res, storeErr := c.s.o.Repo.Store(ctx, meta, pr)
	pr.CloseWithError(errStoreStopped) // a helper still writing stops
	helperErr := <-done
	switch {
	case storeErr != nil && errors.Is(helperErr, errStoreStopped):
		return nil, fmt.Errorf("storing the cold backup of %s: %w", t.Minion, storeErr)
	case helperErr != nil:
		return nil, helperErr
	case storeErr != nil:
		return nil, fmt.Errorf("storing the cold backup of %s: %w", t.Minion, storeErr)
	}
	return &ColdResult{StoreResult: res}, nil
}

// helperRoot is where the data folders are mounted in a helper, each
// under its name in the archive.
const helperRoot = "/cold"

// helperRun is one run of a helper container.
type helperRun struct {
	minion, what string
	image        string
	dirs         []minions.DataDir
	readOnly     bool
	entrypoint   []string
	cmd          []string
	stdin        io.Reader // nil: no input
	stdout       io.Writer // nil: kept with stderr, for the error message
}

// helperCaps are all a helper needs to read and write files of any owner
// and keep their owners and modes; it gets no others, and no network.
var helperCaps = []string{"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID"}

// runHelper runs a short-lived container over a minion's data folders:
// create, attach, start, demultiplex, wait for the exit code, and remove
// it in every case. It fails unless the command exited 0 with its input
// read to the end and its output passed on whole.
func (c *Cold) runHelper(ctx context.Context, h helperRun) error {
	tool := h.entrypoint[0]
	fail := func(reason, output string, cause error) error {
		return &DumpError{Op: strings.TrimPrefix(h.what, "cold-"), DB: "data folders of " + h.minion, Tool: tool, Reason: reason, Output: output, Err: cause}
	}
	if err := ctx.Err(); err != nil {
		return fail("it was stopped before it started", "", err)
	}
	mounts := make([]mount.Mount, len(h.dirs))
	for i, d := range h.dirs {
		mounts[i] = mount.Mount{Type: mount.TypeBind, Source: d.Path, Target: helperRoot + "/" + d.Name, ReadOnly: h.readOnly}
	}
	cfg := &container.Config{
		Image: h.image, User: "0:0", WorkingDir: "/",
		// Both set: an image's own entrypoint would otherwise run instead.
		Entrypoint: h.entrypoint, Cmd: h.cmd,
		AttachStdout: true, AttachStderr: true,
		AttachStdin: h.stdin != nil, OpenStdin: h.stdin != nil, StdinOnce: h.stdin != nil,
		Labels: map[string]string{LabelHelper: h.what, LabelHelperMinion: h.minion},
	}
	host := &container.HostConfig{
		Mounts: mounts, NetworkMode: "none",
		CapDrop: []string{"ALL"}, CapAdd: helperCaps, SecurityOpt: []string{"no-new-privileges"},
	}
	name := fmt.Sprintf("summoner-%s-%s-%s", h.what, h.minion, randomSuffix())
	created, err := c.o.Docker.ContainerCreate(ctx, cfg, host, nil, nil, name)
	if err != nil {
		return fmt.Errorf("creating the helper container from %s: %w", h.image, err)
	}
	id := created.ID
	defer func() {
		// Removed even when the command ran out of time; Force stops a
		// helper that still runs.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := c.o.Docker.ContainerRemove(rctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			c.log.Warn("removing a helper container", "container", name, "err", err)
		}
	}()
	att, err := c.o.Docker.ContainerAttach(ctx, id, container.AttachOptions{Stream: true, Stdin: h.stdin != nil, Stdout: true, Stderr: true})
	if err != nil {
		return fmt.Errorf("attaching to the helper container: %w", err)
	}
	defer att.Close() // pump closes it too; this covers a failed start
	// Waiting starts before the container does, so its exit is never missed.
	waitCh, waitErrCh := c.o.Docker.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := c.o.Docker.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("starting the helper container: %w", err)
	}

	st := pump(ctx, att, h.stdin, h.stdout)
	if err := ctx.Err(); err != nil {
		return fail("it was stopped before it finished", st.output, err)
	}
	if st.outErr != nil {
		return fmt.Errorf("passing on the output of %s: %w", tool, st.outErr)
	}
	var code int64
	select {
	case w := <-waitCh:
		if w.Error != nil {
			return fail("Docker could not say how it ended", st.output, errors.New(w.Error.Message))
		}
		code = w.StatusCode
	case err := <-waitErrCh:
		return fail("Docker could not say how it ended", st.output, err)
	case <-ctx.Done():
		return fail("it was stopped before it finished", st.output, ctx.Err())
	}
	switch {
	case code != 0:
		return fail(fmt.Sprintf("%s exited with code %d", tool, code), st.output, nil)
	case st.stdinErr != nil:
		return fail("its input broke off", st.output, st.stdinErr)
	case st.copyErr != nil:
		return fail("its output broke off", st.output, st.copyErr)
	}
	return nil
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Restore replaces a minion's data folders with a cold backup, all or
// nothing:
//
//  1. the backup is checked on every destination before anything is touched;
//  2. the minion stops and a safety copy of its data folders is stored as a
//     normal cold backup;
//  3. the folders are emptied, the backup unpacked into them (owners and
//     modes kept), and the minion started and checked;
//  4. if step 3 fails, the safety copy is unpacked the same way.
//
// It holds the minion's lock throughout. A failure is a *RestoreError.
func (c *Cold) Restore(ctx context.Context, minion, backupID string, progress Progress) (*RestoreResult, error) {
	started := time.Now()
	release, err := c.o.Engine.Lock(minion, "restore")
	if err != nil {
		return nil, err
	}
	defer release()
	t, err := c.o.Engine.ColdTarget(minion)
	if err != nil {
		return nil, err
	}
	fail := &RestoreError{Minion: t.Minion, BackupID: backupID}

	say(progress, "Checking backup %s…", backupID)
	if err := c.check(ctx, t, backupID); err != nil {
		fail.Step, fail.Cause = StepCheck, err
		return nil, fail
	}
	ref, err := c.o.Engine.HelperImage(ctx, c.o.HelperImage, progress)
	if err != nil {
		fail.Step, fail.Cause = StepHelper, err
		return nil, fail
	}
	// Every data folder of the minion is replaced, even one that does not
	// exist yet: Docker binds only folders that exist.
	for _, d := range t.Dirs {
		if err := os.MkdirAll(d.Path, 0o700); err != nil {
			fail.Step, fail.Cause = StepCheck, fmt.Errorf("making the data folder %s: %w", d.Path, err)
			return nil, fail
		}
	}

	ids, err := c.o.Engine.StopMinion(ctx, t.Minion, progress)
	if err != nil {
		fail.Step, fail.Cause = StepColdStop, err
		fail.RecoverErr = c.start(ctx, t.Minion, ids, progress)
		return nil, c.untouched(fail)
	}
	say(progress, "Taking a safety copy of the data folders of %s…", t.Minion)
	safety, err := c.archive(ctx, t, t.Dirs, ref)
	if err != nil {
		fail.Step, fail.Cause = StepColdSafety, err
		fail.RecoverErr = c.start(ctx, t.Minion, ids, progress)
		return nil, c.untouched(fail)
	}
	fail.SafetyID = safety.Manifest.ID
	say(progress, "Safety copy stored as %s.", fail.SafetyID)

	if step, err := c.apply(ctx, t, ref, backupID, ids, progress); err != nil {
		fail.Step, fail.Cause, fail.Touched = step, err, true
		c.log.Error("a cold restore failed; putting the safety copy back", "minion", t.Minion, "backup", backupID, "step", step, "err", err)
		// Putting the data back must happen even when the command ran out
		// of time, but not forever.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.s.o.RecoverTimeout)
		defer cancel()
		say(progress, "That failed; putting back the safety copy %s…", fail.SafetyID)
		// Whatever the failed step started stops again first.
		if _, err := c.o.Engine.StopMinion(rctx, t.Minion, progress); err != nil {
			c.log.Warn("stopping a minion before putting its safety copy back", "minion", t.Minion, "err", err)
		}
		if _, err := c.apply(rctx, t, ref, fail.SafetyID, ids, progress); err != nil {
			c.log.Error("putting the safety copy back", "minion", t.Minion, "safety", fail.SafetyID, "err", err)
			fail.RecoverErr = err
		} else {
			fail.Recovered = true
		}
		return nil, fail
	}
	say(progress, "Restored the data folders of %s from %s.", t.Minion, backupID)
	c.log.Info("restored a cold backup", "minion", t.Minion, "backup", backupID, "safety", fail.SafetyID)
	return &RestoreResult{Minion: t.Minion, BackupID: backupID, SafetyID: fail.SafetyID, Took: time.Since(started)}, nil
}

// untouched is a restore that failed before the data changed; if even
// starting the minion again failed, that is the news.
func (c *Cold) untouched(fail *RestoreError) error {
	c.log.Error("a cold restore failed before touching the data", "minion", fail.Minion, "backup", fail.BackupID, "step", fail.Step, "err", fail.Cause, "start_err", fail.RecoverErr)
	if err := fail.RecoverErr; err != nil {
		// The data is untouched, but the minion may be down: say so.
		fail.RecoverErr = nil
		fail.Cause = &userError{
			msg: fmt.Sprintf("%s; then starting %s again failed too, so it may be down (`start %s` tries again): %s",
				minions.Explain(fail.Cause), fail.Minion, fail.Minion, minions.Explain(err)),
			err: fail.Cause,
			pub: fmt.Sprintf("%s; then starting %s again failed too, so it may be down (`start %s` tries again): %s",
				publicCause(fail.Cause), fail.Minion, fail.Minion, publicCause(err)),
		}
	}
	return fail
}

// check verifies every copy of a backup and that it is a cold backup of
// this minion.
func (c *Cold) check(ctx context.Context, t *minions.ColdTarget, id string) error {
	m, checks, err := c.s.o.Repo.Verify(ctx, id)
	if errors.Is(err, storage.ErrNotExist) {
		return &userError{msg: fmt.Sprintf("there is no backup %s; `backups %s` lists them", id, t.Minion), err: err}
	}
	if err != nil {
		return fmt.Errorf("checking backup %s: %w", id, err)
	}
	for _, ch := range checks {
		if ch.Err != nil {
			return &userError{msg: fmt.Sprintf("the copy of %s on %s is damaged or unreadable (%s)", id, ch.Destination, minions.Explain(ch.Err)), err: ch.Err,
				pub: fmt.Sprintf("the copy of %s on %s is damaged or unreadable", id, ch.Destination)}
		}
		if !ch.Decrypted {
			return &userError{msg: fmt.Sprintf("%s is encrypted and no decryption key (backups.encryption.identity_file) is configured", id)}
		}
	}
	switch {
	case m == nil:
		return &userError{msg: fmt.Sprintf("no destination has a readable copy of %s", id)}
	case m.Minion != t.Minion:
		return &userError{msg: fmt.Sprintf("%s is a backup of %s, not of %s", id, m.Minion, t.Minion)}
	case m.Kind != storage.KindCold:
		return &userError{msg: fmt.Sprintf("%s is a %s backup, not a cold backup of the data folders", id, m.Kind)}
	}
	return nil
}

// unpackScript empties the mounted data folders (not the folders
// themselves: they are mount points) and unpacks the archive from stdin
// over them, as root, keeping the archive's numeric owners and modes.
const unpackScript = `set -e
for d in "$@"; do find "$d" -mindepth 1 -maxdepth 1 -exec rm -rf {} + ; done
tar -x -p --numeric-owner -f - -C ` + helperRoot

// apply unpacks a backup into the stopped minion's data folders and
// starts the containers that ran before. It returns the step that failed.
func (c *Cold) apply(ctx context.Context, t *minions.ColdTarget, ref, id string, ids []string, progress Progress) (string, error) {
	say(progress, "Unpacking %s into the data folders of %s…", id, t.Minion)
	rc, _, err := c.s.o.Repo.Open(ctx, id)
	if err != nil {
		return StepUnpack, fmt.Errorf("opening backup %s: %w", id, err)
	}
	defer rc.Close()
	cmd := []string{"-c", unpackScript, "unpack"}
	for _, d := range t.Dirs {
		cmd = append(cmd, helperRoot+"/"+d.Name)
	}
	// The backup's hash is checked as it is read: a mismatch at its end
	// breaks the input, and runHelper fails then whatever tar says.
	links := &linkOwners{}
	defer links.stop()
	if err := c.runHelper(ctx, helperRun{
		minion: t.Minion, what: "cold-restore", image: ref, dirs: t.Dirs,
		entrypoint: []string{"/bin/sh"}, cmd: cmd, stdin: links.watch(rc),
	}); err != nil {
		return StepUnpack, err
	}
	if script := links.script(t.Dirs); script != "" {
		// busybox tar gives every symbolic link root as owner.
		if err := c.runHelper(ctx, helperRun{
			minion: t.Minion, what: "cold-restore", image: ref, dirs: t.Dirs,
			entrypoint: []string{"/bin/sh"}, cmd: []string{"-s"}, stdin: strings.NewReader(script),
		}); err != nil {
			return StepUnpack, fmt.Errorf("giving the symbolic links back their owners: %w", err)
		}
	}
	if len(ids) > 0 {
		say(progress, "Starting %s…", t.Minion)
		if err := c.o.Engine.StartMinion(ctx, t.Minion, ids, progress); err != nil {
			return StepColdStart, err
		}
	}
	return "", nil
}

// linkOwners notes the owner of every symbolic link in an archive as it
// streams past, to give them back after tar (busybox's does not).
type linkOwners struct {
	links []*tar.Header
	done  chan struct{}
	pw    *io.PipeWriter
}

// stop ends the side reader of a stream that was not read to its end.
func (l *linkOwners) stop() {
	if l.pw != nil {
		l.pw.Close()
	}
}

// watch passes r on and reads the archive's headers on the side.
func (l *linkOwners) watch(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	l.done, l.pw = make(chan struct{}), pw
	go func() {
		defer close(l.done)
		tr := tar.NewReader(pr)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Typeflag == tar.TypeSymlink && (h.Uid != 0 || h.Gid != 0) {
				l.links = append(l.links, h)
			}
		}
		// tar itself judges the archive; this side only keeps reading.
		_, _ = io.Copy(io.Discard, pr)
	}()
	return &teeCloser{r: io.TeeReader(r, pw), pw: pw}
}

// script is a shell script that gives the links back their owners, or ""
// if none needs it. Only names inside the data folders count.
func (l *linkOwners) script(dirs []minions.DataDir) string {
	if l.done == nil {
		return ""
	}
	<-l.done
	var b strings.Builder
	for _, h := range l.links {
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		top, _, _ := strings.Cut(name, "/")
		if !filepath.IsLocal(name) || !slices.ContainsFunc(dirs, func(d minions.DataDir) bool { return d.Name == top }) {
			continue
		}
		fmt.Fprintf(&b, "chown -h %d:%d -- %s\n", h.Uid, h.Gid, shellQuote(helperRoot+"/"+name))
	}
	if b.Len() == 0 {
		return ""
	}
	return "set -e\n" + b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// teeCloser ends the side reader when the stream ends, cleanly or not.
type teeCloser struct {
	r  io.Reader
	pw *io.PipeWriter
}

func (t *teeCloser) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil {
		t.pw.CloseWithError(err)
	}
	return n, err
}
