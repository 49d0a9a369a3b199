package maintenance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// VerifyDocker is what a test restore needs beyond Docker: a throwaway
// database container on a network of its own. The real client has it;
// Options.Docker is asked for it when a test restore runs.
type VerifyDocker interface {
	Docker
	NetworkCreate(ctx context.Context, name string, o network.CreateOptions) (network.CreateResponse, error)
	NetworkRemove(ctx context.Context, id string) error
	ContainerCreate(ctx context.Context, c *container.Config, h *container.HostConfig, n *network.NetworkingConfig, p *ocispec.Platform, name string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, id string, o container.StartOptions) error
	ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error)
	ContainerRemove(ctx context.Context, id string, o container.RemoveOptions) error
	// Info says where the engine keeps volumes (DockerRootDir): the
	// throwaway database's data goes there, after a free-space check.
	Info(ctx context.Context) (system.Info, error)
}

var _ VerifyDocker = (*client.Client)(nil)

// backupLister finds backups; storage.Repository has it.
type backupLister interface {
	List(ctx context.Context, minion string) ([]storage.Backup, []error)
}

// LabelVerify marks a test restore's container and network with the
// minion it tests (not summoner.minion: they are not part of the minion).
const LabelVerify = "summoner.verify-restore"

// Checks of a test restore, as a VerifyError names the one that failed.
const (
	CheckFind     = "finding the backup"
	CheckChecksum = "the backup's checksum"
	CheckStart    = "starting a throwaway database"
	CheckRestore  = "restoring into the throwaway database"
	CheckCount    = "counting the restored rows"
	CheckCounts   = "comparing row counts with the dump's"
	CheckUnpack   = "unpacking the cold backup"
	CheckFiles    = "comparing files and bytes with the backup's"
	CheckCleanup  = "removing the throwaway database"
)

const (
	// readyTimeout bounds a throwaway database's first start (it
	// initialises an empty data folder first).
	readyTimeout = 3 * time.Minute
	probeTimeout = 15 * time.Second
	// cleanupTimeout bounds removing the throwaway container and network,
	// which runs even when the command's own deadline has passed.
	cleanupTimeout = 2 * time.Minute
)

// CountCheck is one table (collection; or, for a cold backup, "files"
// and "bytes") compared.
type CountCheck struct {
	Name     string
	Expected int64 // recorded at backup time; -1: not recorded
	Found    int64 // after the test restore; -1: not there
}

// OK says whether the check passed; one with nothing recorded passes.
func (c CountCheck) OK() bool { return c.Expected < 0 || c.Expected == c.Found }

// VerifyResult is a test restore and what it found.
type VerifyResult struct {
	Minion, BackupID string
	Kind             string // storage.KindDump or storage.KindCold
	DBKind           string // for a dump
	Created          time.Time
	Size             int64  // the backup's plain bytes
	Image            string // the throwaway database's image
	Checks           []CountCheck
	// Recorded: the backup recorded its counts when it was taken. If not,
	// Checks only show what was found (an older backup).
	Recorded bool
	// Hashed: a cold backup's entries hashed as they did when it was taken.
	Hashed bool
	Took   time.Duration
}

// Failed lists the checks whose counts differ.
func (r *VerifyResult) Failed() []CountCheck {
	var out []CountCheck
	for _, c := range r.Checks {
		if !c.OK() {
			out = append(out, c)
		}
	}
	return out
}

// VerifyError is a test restore that failed: the backup (or its restore)
// is not good. Result holds what was found, when it got that far.
type VerifyError struct {
	Minion, BackupID string
	Check            string // one of the Check constants
	Cause            error
	Result           *VerifyResult
}

func (e *VerifyError) Error() string { return e.UserMessage() }

// Unwrap gives the cause.
func (e *VerifyError) Unwrap() error { return e.Cause }

// UserMessage says which check failed, for chat.
func (e *VerifyError) UserMessage() string {
	id := e.BackupID
	if id == "" {
		id = "its newest backup"
	}
	msg := fmt.Sprintf("❌ The test restore of %s from %s FAILED at %s.\nWhat went wrong: %s", e.Minion, id, e.Check, minions.Explain(e.Cause))
	if e.Result != nil && len(e.Result.Checks) > 0 {
		msg += "\n\n" + e.Result.table()
	}
	return msg
}

// Text renders a passed test restore for chat.
func (r *VerifyResult) Text() string {
	var b strings.Builder
	what := fmt.Sprintf("restored into a throwaway %s database", r.DBKind)
	if r.Kind == storage.KindCold {
		what = "every entry read through, nothing written to disk"
	}
	fmt.Fprintf(&b, "✅ The test restore of %s from %s (%s, %s) passed: %s in %s.\n",
		r.Minion, r.BackupID, r.Created.UTC().Format("2006-01-02 15:04 UTC"), humanBytes(r.Size), what, r.Took.Round(time.Second))
	switch {
	case r.Kind == storage.KindCold && r.Hashed:
		b.WriteString("It holds the files and bytes it held when it was taken, and their contents hash the same.\n")
	case r.Kind == storage.KindCold && r.Recorded:
		b.WriteString("It holds the files and bytes it held when it was taken.\n")
	case r.Kind == storage.KindCold:
		b.WriteString("This backup did not record its file count and size, so I checked that every file in it is whole, as the archive itself lists it.\n")
	case r.Recorded:
		b.WriteString("Every table has the rows it had when it was dumped.\n")
	default:
		b.WriteString("This dump did not record its row counts (it is older), so I can only show what came back.\n")
	}
	if len(r.Checks) > 0 {
		b.WriteString("\n" + r.table())
	}
	return strings.TrimRight(b.String(), "\n")
}

func (r *VerifyResult) table() string {
	name := "Table"
	switch {
	case r.Kind == storage.KindCold:
		name = "What"
	case r.DBKind == "mongodb":
		name = "Collection"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | At backup time | Restored | |\n|---|---:|---:|---|\n", name)
	for _, c := range r.Checks {
		exp, found, verdict := "not recorded", "missing", "✅"
		if c.Expected >= 0 {
			exp = fmt.Sprint(c.Expected)
		}
		if c.Found >= 0 {
			found = fmt.Sprint(c.Found)
		}
		if !c.OK() {
			verdict = "❌"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Name, exp, found, verdict)
	}
	return strings.TrimRight(b.String(), "\n")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// VerifyRestore proves that a backup can be restored ("" = the minion's
// newest backup), without touching the minion:
//
//   - a dump is restored into a throwaway container of the database's
//     image, on a private network, and its rows are counted and compared
//     with those recorded when it was dumped;
//   - a cold backup is read through as a stream, entry by entry, writing
//     nothing, and its files, bytes and their hash are compared with
//     those recorded when it was taken.
//
// The throwaway container and its network are always removed. A backup that fails a check is a *VerifyError naming it.
func (s *Service) VerifyRestore(ctx context.Context, minion, backupID string, progress Progress) (*VerifyResult, error) {
	return s.verifyRestore(ctx, minion, backupID, "", progress)
}

// ErrNoBackup is matched (errors.Is) by a test restore that found no
// backup to test: the minion has none of the kind asked for yet.
var ErrNoBackup = errors.New("no backup to test")

// VerifyRestoreNewest test-restores the minion's newest backup of a kind
// (storage.KindDump or storage.KindCold): the scheduled jobs test dumps
// and cold backups of a minion with a database on schedules of their own.
func (s *Service) VerifyRestoreNewest(ctx context.Context, minion, kind string, progress Progress) (*VerifyResult, error) {
	return s.verifyRestore(ctx, minion, "", kind, progress)
}

func (s *Service) verifyRestore(ctx context.Context, minion, backupID, kind string, progress Progress) (*VerifyResult, error) {
	started := time.Now()
	fail := func(check string, cause error, res *VerifyResult) error {
		id := backupID
		if res != nil {
			id = res.BackupID
		}
		s.log.Error("a test restore failed", "minion", minion, "backup", id, "check", check, "err", cause)
		return &VerifyError{Minion: minion, BackupID: id, Check: check, Cause: cause, Result: res}
	}
	m, err := s.findBackup(ctx, minion, backupID, kind, progress)
	if err != nil {
		return nil, fail(CheckFind, err, nil)
	}
	res := &VerifyResult{Minion: m.Minion, BackupID: m.ID, Kind: m.Kind, DBKind: m.DBKind, Created: m.Created, Size: m.Payload.Size}
	var check string
	switch m.Kind {
	case storage.KindDump:
		check, err = s.verifyDump(ctx, m, res, progress)
	case storage.KindCold:
		check, err = s.verifyCold(ctx, m, res, progress)
	default:
		check, err = CheckFind, fmt.Errorf("%s is a %q backup, which I cannot test", m.ID, m.Kind)
	}
	res.Took = time.Since(started)
	var room *NoRoomError
	if errors.As(err, &room) {
		return nil, room // a refusal, not a failed test: nothing was tested
	}
	if err != nil {
		return nil, fail(check, err, res)
	}
	s.log.Info("a test restore passed", "minion", res.Minion, "backup", res.BackupID, "checks", len(res.Checks), "took", res.Took)
	return res, nil
}

// findBackup reads the manifest of a backup, or of the minion's newest
// (of kind, unless kind is "").
func (s *Service) findBackup(ctx context.Context, minion, id, kind string, progress Progress) (*storage.Manifest, error) {
	lister, canList := s.o.Repo.(backupLister)
	what := "backup"
	if kind != "" {
		what = reportKind(kind)
	}
	switch {
	case id == "" && !canList:
		return nil, errors.New("the backup repository cannot list backups; name the backup to test")
	case id == "":
		say(progress, "Looking for the newest %s of %s…", what, minion)
	default:
		say(progress, "Looking for backup %s…", id)
	}
	if canList {
		list, errs := lister.List(ctx, minion)
		for _, b := range list {
			if b.Manifest.Minion == minion && (id == "" || b.Manifest.ID == id) && (kind == "" || b.Manifest.Kind == kind) {
				return b.Manifest, nil
			}
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("listing the backups of %s: %w", minion, errors.Join(errs...))
		}
		if id == "" {
			return nil, &userError{msg: fmt.Sprintf("%s has no %ss yet", minion, what), err: ErrNoBackup}
		}
		return nil, &userError{msg: fmt.Sprintf("there is no backup %s of %s; `backups %s` lists them", id, minion, minion), err: storage.ErrNotExist}
	}
	// Without a list, opening the backup gives its manifest.
	rc, m, err := s.o.Repo.Open(ctx, id)
	if errors.Is(err, storage.ErrNotExist) {
		return nil, &userError{msg: fmt.Sprintf("there is no backup %s; `backups %s` lists them", id, minion), err: err}
	}
	if err != nil {
		return nil, fmt.Errorf("reading backup %s: %w", id, err)
	}
	rc.Close()
	if m.Minion != minion {
		return nil, &userError{msg: fmt.Sprintf("%s is a backup of %s, not of %s", id, m.Minion, minion)}
	}
	return m, nil
}

// checkedOpen opens a backup and remembers the error its reader ended
// with: the repository's checksum check fails the read, and a restore
// tool only sees its input stop.
func (s *Service) checkedOpen(ctx context.Context, id string) (*errReader, error) {
	rc, _, err := s.o.Repo.Open(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("opening backup %s: %w", id, err)
	}
	return &errReader{rc: rc}, nil
}

type errReader struct {
	rc  io.ReadCloser
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

// finish reads what the tool left unread, so the checksum, checked at
// the end, is checked even when the tool stopped early; it returns the
// read error, if any.
func (r *errReader) finish() error {
	if r.err == nil {
		_, _ = io.Copy(io.Discard, r)
	}
	r.rc.Close()
	return r.err
}

// verifyDump restores a dump into a throwaway database and compares the
// counts. It returns the check that failed.
func (s *Service) verifyDump(ctx context.Context, m *storage.Manifest, res *VerifyResult, progress Progress) (check string, err error) {
	vd, ok := s.o.Docker.(VerifyDocker)
	if !ok {
		return CheckStart, errors.New("the Docker client given to maintenance cannot create containers")
	}
	d, err := s.dumper(m.DBKind)
	if err != nil {
		return CheckStart, err
	}
	count, err := counterFor(m.DBKind)
	if err != nil {
		return CheckStart, err
	}
	live, err := s.o.Engine.Database(ctx, m.Minion)
	if err != nil {
		return CheckStart, fmt.Errorf("finding the database of %s, whose image the test restore uses: %w", m.Minion, err)
	}
	if live.Kind != m.DBKind {
		return CheckFind, &userError{msg: fmt.Sprintf("%s is a %s dump and %s now runs %s", m.ID, m.DBKind, m.Minion, live.Kind)}
	}

	// Its data goes in an anonymous volume under Docker's data root, never
	// under /tmp; a disk too small is refused before anything is written.
	info, err := vd.Info(ctx)
	if err != nil {
		return CheckStart, fmt.Errorf("asking Docker where it keeps volumes: %w", err)
	}
	if err := s.checkRoom(info.DockerRootDir, m); err != nil {
		return CheckStart, err
	}

	tb := &throwaway{d: vd, log: s.log}
	// Removed however the test ends, even past the command's deadline; a
	// leftover fails a test that passed otherwise.
	defer func() {
		say(progress, "Removing the throwaway database…")
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if rerr := tb.remove(cctx); rerr != nil && err == nil {
			check, err = CheckCleanup, rerr
		}
	}()
	say(progress, "Starting a throwaway %s database on a private network…", m.DBKind)
	db, err := tb.start(ctx, live)
	if err != nil {
		return CheckStart, err
	}
	res.Image = tb.image
	say(progress, "Waiting for the throwaway database to accept connections…")
	if err := tb.waitReady(ctx, db); err != nil {
		return CheckStart, err
	}

	say(progress, "Restoring %s into it…", m.ID)
	r, err := s.checkedOpen(ctx, m.ID)
	if err != nil {
		return CheckChecksum, err
	}
	restoreErr := d.Restore(ctx, db, r)
	if readErr := r.finish(); readErr != nil {
		// The tool's failure follows from its input breaking off.
		return CheckChecksum, damaged(m.ID, readErr)
	}
	if restoreErr != nil {
		return CheckRestore, restoreErr
	}

	say(progress, "Counting the restored rows…")
	found, err := count(ctx, vd, db)
	if err != nil {
		return CheckCount, err
	}
	res.Recorded = m.Counts != nil
	res.Checks = compareCounts(m.Counts, found)
	if bad := res.Failed(); len(bad) > 0 {
		return CheckCounts, &userError{msg: countsDiffer(bad, "table")}
	}
	return "", nil
}

// damaged says a backup failed its integrity check as it was read back.
func damaged(id string, err error) error {
	return &userError{msg: fmt.Sprintf("backup %s is damaged: what is stored no longer matches what was written (%v)", id, err), err: err,
		pub: fmt.Sprintf("backup %s is damaged: what is stored no longer matches what was written", id)}
}

// compareCounts lines up what was recorded with what was found, by name.
func compareCounts(recorded, found map[string]int64) []CountCheck {
	var names []string
	for n := range found {
		names = append(names, n)
	}
	for n := range recorded {
		if _, ok := found[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	out := make([]CountCheck, 0, len(names))
	for _, n := range names {
		c := CountCheck{Name: n, Expected: -1, Found: -1}
		if v, ok := found[n]; ok {
			c.Found = v
		}
		if v, ok := recorded[n]; ok {
			c.Expected = v
		} else if recorded != nil {
			c.Expected = 0 // recorded, and not there at backup time
		}
		out = append(out, c)
	}
	return out
}

func countsDiffer(bad []CountCheck, what string) string {
	var parts []string
	for _, c := range bad {
		found := "it is missing"
		if c.Found >= 0 {
			found = fmt.Sprintf("%d came back", c.Found)
		}
		parts = append(parts, fmt.Sprintf("%s had %d when the backup was taken, %s", c.Name, c.Expected, found))
	}
	return fmt.Sprintf("%d %s(s) differ: %s", len(bad), what, strings.Join(parts, "; "))
}

// throwaway is a database container of its own, on an internal network
// of its own, with a password made for it.
type throwaway struct {
	d     VerifyDocker
	log   *slog.Logger
	image string
	netID string
	ctrID string
	name  string
	ip    string
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("making a random name: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// start creates the throwaway database from the live one's image, entry
// point and command (the minion's own server flags), never its
// environment, which holds its secrets.
func (t *throwaway) start(ctx context.Context, live *Database) (*Database, error) {
	in, err := t.d.ContainerInspect(ctx, live.ContainerID)
	if err != nil {
		return nil, fmt.Errorf("reading the image of %s: %w", live.Container, err)
	}
	// Created from the image ID: exactly the running one, and present
	// here; its name is for the report.
	if in.ContainerJSONBase == nil || in.Image == "" {
		return nil, fmt.Errorf("reading the image of %s: Docker did not say it", live.Container)
	}
	t.image = in.Image
	if in.Config != nil && in.Config.Image != "" {
		t.image = in.Config.Image
	}
	suffix, err := randomHex(4)
	if err != nil {
		return nil, err
	}
	password, err := randomHex(18)
	if err != nil {
		return nil, err
	}
	t.name = fmt.Sprintf("summoner-verify-%s-%s", live.Minion, suffix)
	labels := map[string]string{LabelVerify: live.Minion}
	net, err := t.d.NetworkCreate(ctx, t.name, network.CreateOptions{Driver: "bridge", Internal: true, Labels: labels})
	if err != nil {
		return nil, fmt.Errorf("creating the private network %s: %w", t.name, err)
	}
	t.netID = net.ID
	cfg := &container.Config{Image: in.Image, Env: throwawayEnv(live, password), Labels: labels}
	if in.Config != nil {
		cfg.Entrypoint, cfg.Cmd, cfg.User = in.Config.Entrypoint, in.Config.Cmd, in.Config.User
	}
	host := &container.HostConfig{NetworkMode: container.NetworkMode(t.name)}
	created, err := t.d.ContainerCreate(ctx, cfg, host, nil, nil, t.name)
	if err != nil {
		return nil, fmt.Errorf("creating the throwaway database %s: %w", t.name, redactErr(err, []string{password}))
	}
	t.ctrID = created.ID
	if err := t.d.ContainerStart(ctx, t.ctrID, container.StartOptions{}); err != nil {
		return nil, fmt.Errorf("starting the throwaway database %s: %w", t.name, err)
	}
	after, err := t.d.ContainerInspect(ctx, t.ctrID)
	if err != nil {
		return nil, fmt.Errorf("inspecting the throwaway database %s: %w", t.name, err)
	}
	if after.NetworkSettings != nil {
		if ep := after.NetworkSettings.Networks[t.name]; ep != nil {
			t.ip = ep.IPAddress
		}
	}
	return &Database{
		Minion: live.Minion, Kind: live.Kind, Service: live.Service,
		ContainerID: t.ctrID, Container: t.name, Image: t.image,
		Name: live.Name, User: live.User, Password: password, Secrets: []string{password},
	}, nil
}

// throwawayEnv is what the official images read to create the database,
// the user and the password on their first start.
func throwawayEnv(live *Database, password string) []string {
	switch live.Kind {
	case "postgres":
		user := live.User
		if user == "" {
			user = "postgres"
		}
		return []string{"POSTGRES_USER=" + user, "POSTGRES_PASSWORD=" + password, "POSTGRES_DB=" + live.Name}
	case "mysql", "mariadb":
		env := []string{"MARIADB_ROOT_PASSWORD=" + password, "MYSQL_ROOT_PASSWORD=" + password,
			"MARIADB_DATABASE=" + live.Name, "MYSQL_DATABASE=" + live.Name}
		if live.User != "" && live.User != "root" {
			env = append(env, "MARIADB_USER="+live.User, "MARIADB_PASSWORD="+password, "MYSQL_USER="+live.User, "MYSQL_PASSWORD="+password)
		}
		return env
	case "mongodb":
		if live.User == "" {
			return nil // the live one runs without authentication too
		}
		return []string{"MONGO_INITDB_ROOT_USERNAME=" + live.User, "MONGO_INITDB_ROOT_PASSWORD=" + password}
	}
	return nil
}

// probe is a command that succeeds once the database takes connections
// on its network address: the official images first run a server for
// initialisation that listens only locally, then the real one.
func (t *throwaway) probe(ctx context.Context, db *Database) error {
	host := t.ip
	if host == "" {
		host = "127.0.0.1"
	}
	var s execSpec
	switch db.Kind {
	case "postgres":
		s = execSpec{Cmd: []string{"pg_isready", "-q", "-h", host, "-U", db.User, "-d", db.Name}, Env: pgEnv(db)}
	case "mysql", "mariadb":
		s = execSpec{Cmd: either("mariadb", "mysql", "-h", host, "--user="+db.User, db.Name, "-e", "SELECT 1"), Env: mysqlEnv(db)}
	case "mongodb":
		_, err := countMongoAt(ctx, t.d, db, "--host="+host)
		return err
	default:
		return fmt.Errorf("no readiness check for database kind %q", db.Kind)
	}
	_, err := runTool(ctx, t.d, db, "start", s.Cmd[0], s)
	return err
}

// waitReady polls the probe, with backoff, until it succeeds, the
// container stops, or readyTimeout passes.
func (t *throwaway) waitReady(ctx context.Context, db *Database) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	wait := 200 * time.Millisecond
	var last error
	for {
		pctx, pcancel := context.WithTimeout(ctx, probeTimeout)
		last = t.probe(pctx, db)
		pcancel()
		if last == nil {
			return nil
		}
		in, err := t.d.ContainerInspect(ctx, t.ctrID)
		if err == nil && in.ContainerJSONBase != nil && in.State != nil && !in.State.Running {
			return fmt.Errorf("the throwaway database stopped while starting (exit code %d); the image may need settings the test restore does not give it", in.State.ExitCode)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the throwaway database was not ready after %s: %w", readyTimeout, errors.Join(ctx.Err(), last))
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// remove deletes the container (with its anonymous volumes) and the
// network; a second call does nothing.
func (t *throwaway) remove(ctx context.Context) error {
	var errs []error
	if t.ctrID != "" {
		if err := t.d.ContainerRemove(ctx, t.ctrID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("removing the throwaway container %s: %w", t.name, err))
		} else {
			t.ctrID = ""
		}
	}
	if t.netID != "" {
		if err := t.d.NetworkRemove(ctx, t.netID); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("removing the private network %s: %w", t.name, err))
		} else {
			t.netID = ""
		}
	}
	err := errors.Join(errs...)
	if err != nil {
		t.log.Error("cleaning up after a test restore; remove it by hand (docker rm -f, docker network rm)", "name", t.name, "err", err)
	}
	return err
}

func isNotFound(err error) bool {
	var nf interface{ NotFound() }
	return errors.As(err, &nf) || strings.Contains(strings.ToLower(err.Error()), "no such")
}

// verifyCold reads a cold backup through as a stream, entry by entry,
// writing nothing anywhere (a data set may be larger than any scratch
// space: /tmp is often a tmpfs), and compares its files, bytes, entries
// and their hash with those recorded when it was taken. A backup that
// recorded none still has every entry read and its end marker checked.
func (s *Service) verifyCold(ctx context.Context, m *storage.Manifest, res *VerifyResult, progress Progress) (string, error) {
	say(progress, "Reading %s through, entry by entry…", m.ID)
	r, err := s.checkedOpen(ctx, m.ID)
	if err != nil {
		return CheckChecksum, err
	}
	found, scanErr := scanArchive(ctx, r)
	if readErr := r.finish(); readErr != nil {
		return CheckChecksum, damaged(m.ID, readErr)
	}
	if scanErr != nil {
		return CheckUnpack, scanErr
	}
	rec := func(key string) int64 {
		if v, ok := m.Counts[key]; ok {
			return v
		}
		return -1
	}
	res.Checks = []CountCheck{{Name: CountFiles, Expected: rec(CountFiles), Found: found.files}, {Name: CountBytes, Expected: rec(CountBytes), Found: found.bytes}}
	if rec(CountEntries) >= 0 {
		res.Checks = append(res.Checks, CountCheck{Name: CountEntries, Expected: rec(CountEntries), Found: found.entries})
	}
	res.Recorded = rec(CountFiles) >= 0 || rec(CountBytes) >= 0
	if bad := res.Failed(); len(bad) > 0 {
		return CheckFiles, &userError{msg: countsDiffer(bad, "total")}
	}
	if m.EntriesSHA256 != "" {
		if found.digest() != m.EntriesSHA256 {
			return CheckFiles, &userError{msg: "the entries' contents differ from those recorded when the backup was taken (their SHA-256 does not match)"}
		}
		res.Hashed = true
	}
	return "", nil
}
