package maintenance_test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// coldRun is how a helper container behaves in coldDocker.
type coldRun struct {
	stdout []byte
	stderr string
	exit   int64
}

// coldDocker runs helper containers by asking answer what each does (by
// its number, from 0, and its command line); it records their configs,
// inputs and removals.
type coldDocker struct {
	answer    func(n int, argv string) coldRun
	createErr error

	mu      sync.Mutex
	configs []*container.Config
	hosts   []*container.HostConfig
	runs    []coldRun
	inputs  []*bytes.Buffer
	removed []string
}

var _ maintenance.ColdDocker = (*coldDocker)(nil)

func argv(c *container.Config) string {
	return strings.Join(append(slices.Clone(c.Entrypoint), c.Cmd...), " ")
}

func (d *coldDocker) ContainerCreate(_ context.Context, cfg *container.Config, host *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, _ string) (container.CreateResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.createErr != nil {
		return container.CreateResponse{}, d.createErr
	}
	d.runs = append(d.runs, d.answer(len(d.configs), argv(cfg)))
	d.configs, d.hosts = append(d.configs, cfg), append(d.hosts, host)
	d.inputs = append(d.inputs, &bytes.Buffer{})
	return container.CreateResponse{ID: fmt.Sprint(len(d.configs) - 1)}, nil
}

func (d *coldDocker) index(id string) int {
	return runIndex(id)
}

func (d *coldDocker) ContainerAttach(_ context.Context, id string, o container.AttachOptions) (dtypes.HijackedResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	i := d.index(id)
	r := d.runs[i]
	stream := muxed(r.stdout, r.stderr)
	c := &fakeConn{mu: &d.mu, input: d.inputs[i], done: make(chan struct{})}
	var out io.Reader = stream
	if o.Stdin {
		// It reads its input to the end before it answers, as tar -x does.
		out = io.MultiReader(waitReader{c.done}, stream)
	}
	return dtypes.HijackedResponse{Conn: c, Reader: bufio.NewReader(out)}, nil
}

func (d *coldDocker) ContainerStart(context.Context, string, container.StartOptions) error {
	return nil
}

func (d *coldDocker) ContainerWait(_ context.Context, id string, _ container.WaitCondition) (<-chan container.WaitResponse, <-chan error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ch := make(chan container.WaitResponse, 1)
	ch <- container.WaitResponse{StatusCode: d.runs[d.index(id)].exit}
	return ch, make(chan error)
}

func (d *coldDocker) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removed = append(d.removed, id)
	return nil
}

func (d *coldDocker) input(i int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return bytes.Clone(d.inputs[i].Bytes())
}

// coldEngine is a minion with two containers and two data folders.
type coldEngine struct {
	dirs     []minions.DataDir
	stopErr  error
	startErr error

	mu     sync.Mutex
	stops  int
	starts [][]string
}

var _ maintenance.ColdEngine = (*coldEngine)(nil)

var coldIDs = []string{"app", "db"} // in the order they stop

func (e *coldEngine) Lock(string, string) (func(), error) { return func() {}, nil }

func (e *coldEngine) ColdTarget(minion string) (*minions.ColdTarget, error) {
	return &minions.ColdTarget{Minion: minion, Dirs: e.dirs, DBKind: "postgres"}, nil
}

func (e *coldEngine) StopMinion(context.Context, string, minions.Progress) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.stops++
	if e.stopErr != nil {
		return coldIDs[:1], e.stopErr
	}
	return coldIDs, nil
}

func (e *coldEngine) StartMinion(_ context.Context, _ string, ids []string, _ minions.Progress) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.starts = append(e.starts, ids)
	return e.startErr
}

func (e *coldEngine) HelperImage(_ context.Context, ref string, _ minions.Progress) (string, error) {
	return "mirror/" + ref, nil
}

type coldFixture struct {
	d    *coldDocker
	e    *coldEngine
	repo *storage.Repository
	root string // the repository's folder
	s    *maintenance.Service
	cold *maintenance.Cold
}

func newColdFixture(t *testing.T, answer func(n int, argv string) coldRun) *coldFixture {
	t.Helper()
	dir := t.TempDir()
	f := &coldFixture{d: &coldDocker{answer: answer}, root: filepath.Join(dir, "backups")}
	f.e = &coldEngine{dirs: []minions.DataDir{{Name: "data", Path: filepath.Join(dir, "v")}, {Name: "db_data", Path: filepath.Join(dir, "d")}}}
	for _, d := range f.e.dirs {
		if err := os.MkdirAll(d.Path, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	f.repo, err = storage.NewRepository(storage.Options{Backends: []storage.Backend{&storage.Local{Root: f.root}}})
	if err != nil {
		t.Fatal(err)
	}
	f.s = maintenance.New(maintenance.Options{Repo: f.repo, RecoverTimeout: time.Minute})
	f.cold, err = f.s.Cold(maintenance.ColdOptions{Docker: f.d, Engine: f.e})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *coldFixture) stored(t *testing.T) []string {
	t.Helper()
	list, errs := f.repo.List(context.Background(), "testmin")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var ids []string
	for _, b := range list {
		ids = append(ids, b.Manifest.ID)
	}
	return ids
}

// testArchive is a small whole tar archive with a file and a link.
func testArchive(t *testing.T, body string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000},
		{Name: "data/f", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 33, Gid: 33, Size: int64(len(body))},
		{Name: "data/it's", Typeflag: tar.TypeSymlink, Linkname: "f", Uid: 1000, Gid: 1000},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestColdBackupFailures(t *testing.T) {
	whole := testArchive(t, "content")
	for _, tc := range []struct {
		name      string
		run       coldRun
		createErr error
		stopErr   error
		wantStep  string
		wantMsg   string
		wantStart []string
		helpers   int // helper containers created, and removed
	}{
		{name: "the helper exits non-zero after part of the archive", run: coldRun{stdout: whole[:1024], stderr: "tar: data/x: Permission denied", exit: 1},
			wantStep: maintenance.StepArchive, wantMsg: "tar exited with code 1", wantStart: coldIDs, helpers: 1},
		{name: "the stream is empty", run: coldRun{exit: 0},
			wantStep: maintenance.StepArchive, wantMsg: "it produced no output", wantStart: coldIDs, helpers: 1},
		{name: "the archive is cut short", run: coldRun{stdout: whole[:512]},
			wantStep: maintenance.StepArchive, wantMsg: "cut short", wantStart: coldIDs, helpers: 1},
		{name: "the helper cannot be created", createErr: errors.New("no such image"),
			wantStep: maintenance.StepArchive, wantMsg: "no such image", wantStart: coldIDs},
		{name: "a container does not stop", stopErr: errors.New("stopping testmin: timeout"),
			wantStep: maintenance.StepColdStop, wantMsg: "timeout", wantStart: coldIDs[:1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newColdFixture(t, func(int, string) coldRun { return tc.run })
			f.d.createErr, f.e.stopErr = tc.createErr, tc.stopErr
			res, err := f.cold.Backup(context.Background(), "testmin", nil)
			var ce *maintenance.ColdError
			if !errors.As(err, &ce) || res != nil {
				t.Fatalf("got %v, %v; want a *ColdError", res, err)
			}
			if ce.Step != tc.wantStep || !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), "runs again") {
				t.Errorf("error (step %q): %v\nwant step %q and %q", ce.Step, err, tc.wantStep, tc.wantMsg)
			}
			if ids := f.stored(t); len(ids) != 0 {
				t.Errorf("stored %v; want nothing", ids)
			}
			if len(f.e.starts) != 1 || !slices.Equal(f.e.starts[0], tc.wantStart) {
				t.Errorf("started %v; want %v once", f.e.starts, tc.wantStart)
			}
			if len(f.d.configs) != tc.helpers || len(f.d.removed) != tc.helpers {
				t.Errorf("%d helpers created, %d removed; want %d", len(f.d.configs), len(f.d.removed), tc.helpers)
			}
		})
	}
}

func TestColdBackupStoresTheArchiveAndStartsAgain(t *testing.T) {
	whole := testArchive(t, "content")
	f := newColdFixture(t, func(int, string) coldRun { return coldRun{stdout: whole} })
	var steps []string
	res, err := f.cold.Backup(context.Background(), "testmin", func(s string) { steps = append(steps, s) })
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Kind != storage.KindCold || res.Manifest.Payload.Size != int64(len(whole)) {
		t.Errorf("stored %+v", res.Manifest)
	}
	// Counted and hashed as it streamed: a test restore compares them.
	if c := res.Manifest.Counts; c["files"] != 1 || c["bytes"] != int64(len("content")) || c["entries"] != 3 || len(res.Manifest.EntriesSHA256) != 64 {
		t.Errorf("recorded counts %v, entries hash %q", c, res.Manifest.EntriesSHA256)
	}
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "absent")) // a test restore writes nothing
	vr, err := f.s.VerifyRestore(context.Background(), "testmin", res.Manifest.ID, nil)
	if err != nil || !vr.Hashed || len(vr.Failed()) != 0 {
		t.Fatalf("test restore of the backup just taken: %+v, %v", vr, err)
	}
	cfg, host := f.d.configs[0], f.d.hosts[0]
	if got := argv(cfg); got != "tar -c --numeric-owner -f - -C /cold data db_data" || cfg.Image != "mirror/"+maintenance.DefaultHelperImage {
		t.Errorf("ran %q from %s", got, cfg.Image)
	}
	for _, m := range host.Mounts {
		if !m.ReadOnly {
			t.Errorf("%s is mounted read-write", m.Source)
		}
	}
	if host.NetworkMode != "none" || cfg.Labels[maintenance.LabelHelperMinion] != "testmin" {
		t.Errorf("network %q, labels %v", host.NetworkMode, cfg.Labels)
	}
	if len(f.e.starts) != 1 || len(f.d.removed) != 1 {
		t.Errorf("starts %v, removed %v", f.e.starts, f.d.removed)
	}
	if last := steps[len(steps)-1]; !strings.Contains(last, res.Manifest.ID) {
		t.Errorf("last progress %q does not name the backup", last)
	}

	// Starting again fails: the backup is stored, and the reply says so.
	f.e.startErr = errors.New("postgres is unhealthy")
	_, err = f.cold.Backup(context.Background(), "testmin", nil)
	var ce *maintenance.ColdError
	if !errors.As(err, &ce) || ce.BackupID == "" || !strings.Contains(err.Error(), "is stored, but starting testmin again failed") {
		t.Errorf("got %v; want a stored backup and a failed start", err)
	}
}

func TestColdRestore(t *testing.T) {
	good, current := testArchive(t, "the backup"), testArchive(t, "the current data")
	unpackFails := map[int]bool{} // by helper number
	answer := func(n int, argv string) coldRun {
		switch {
		case strings.HasPrefix(argv, "tar -c"):
			return coldRun{stdout: current}
		case unpackFails[n]:
			return coldRun{stderr: "tar: short read", exit: 1}
		}
		return coldRun{}
	}
	setup := func(t *testing.T) (*coldFixture, string) {
		f := newColdFixture(t, answer)
		res, err := f.repo.Store(context.Background(), storage.Meta{Minion: "testmin", Kind: storage.KindCold}, bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		return f, res.Manifest.ID
	}

	t.Run("a good backup is unpacked over emptied folders", func(t *testing.T) {
		clear(unpackFails)
		f, id := setup(t)
		rr, err := f.cold.Restore(context.Background(), "testmin", id, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Helpers: the safety copy, the unpack, the links' owners.
		if len(f.d.configs) != 3 || !bytes.Equal(f.d.input(1), good) {
			t.Fatalf("%d helpers; the unpack got %d bytes, want the backup's %d", len(f.d.configs), len(f.d.input(1)), len(good))
		}
		if got := argv(f.d.configs[1]); !strings.Contains(got, "tar -x -p --numeric-owner") || !strings.HasSuffix(got, "/cold/data /cold/db_data") {
			t.Errorf("unpacked with %q", got)
		}
		if got := string(f.d.input(2)); !strings.Contains(got, `chown -h 1000:1000 -- '/cold/data/it'\''s'`) {
			t.Errorf("links' script:\n%s", got)
		}
		if !slices.Contains(f.stored(t), rr.SafetyID) || len(f.e.starts) != 1 || len(f.d.removed) != 3 {
			t.Errorf("safety %s in %v; starts %v; removed %v", rr.SafetyID, f.stored(t), f.e.starts, f.d.removed)
		}
	})

	t.Run("a failed unpack puts the safety copy back", func(t *testing.T) {
		clear(unpackFails)
		unpackFails[1] = true
		f, id := setup(t)
		_, err := f.cold.Restore(context.Background(), "testmin", id, nil)
		var re *maintenance.RestoreError
		if !errors.As(err, &re) || !re.Touched || !re.Recovered || re.SafetyID == "" || re.Step != maintenance.StepUnpack {
			t.Fatalf("got %#v", err)
		}
		if !strings.Contains(err.Error(), re.SafetyID) {
			t.Errorf("the message does not name the safety copy: %v", err)
		}
		// The safety copy, the failed unpack, the safety unpack, its links.
		if len(f.d.configs) != 4 || !bytes.Equal(f.d.input(2), current) {
			t.Errorf("%d helpers; the second unpack got %d bytes, want the safety copy's %d", len(f.d.configs), len(f.d.input(2)), len(current))
		}
		if len(f.e.starts) != 1 || f.e.stops != 2 {
			t.Errorf("stops %d, starts %v; want 2 and one start", f.e.stops, f.e.starts)
		}
	})

	t.Run("a damaged backup is refused before anything stops", func(t *testing.T) {
		clear(unpackFails)
		f, id := setup(t)
		file := filepath.Join(f.root, id, "data.zst")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 0xff
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = f.cold.Restore(context.Background(), "testmin", id, nil)
		var re *maintenance.RestoreError
		if !errors.As(err, &re) || re.Touched || re.Step != maintenance.StepCheck {
			t.Fatalf("got %v; want a refusal at the check", err)
		}
		if f.e.stops != 0 || len(f.d.configs) != 0 {
			t.Errorf("stops %d, helpers %d; want nothing touched", f.e.stops, len(f.d.configs))
		}
	})

	t.Run("a dump is not a cold backup", func(t *testing.T) {
		f, _ := setup(t)
		res, err := f.repo.Store(context.Background(), storage.Meta{Minion: "testmin", Kind: storage.KindDump, DBKind: "postgres"}, strings.NewReader("PGDMP"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.cold.Restore(context.Background(), "testmin", res.Manifest.ID, nil)
		if err == nil || !strings.Contains(err.Error(), "not a cold backup") || f.e.stops != 0 {
			t.Errorf("got %v, %d stops", err, f.e.stops)
		}
	})

	t.Run("a failed safety copy starts the minion and touches nothing", func(t *testing.T) {
		f, id := setup(t)
		f.d.answer = func(int, string) coldRun { return coldRun{exit: 2} }
		_, err := f.cold.Restore(context.Background(), "testmin", id, nil)
		var re *maintenance.RestoreError
		if !errors.As(err, &re) || re.Touched || re.Step != maintenance.StepColdSafety || len(f.e.starts) != 1 {
			t.Errorf("got %v, starts %v", err, f.e.starts)
		}
	})
}
