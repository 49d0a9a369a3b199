package maintenance_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/storage"
)

// fakeVerifyDocker adds containers and networks to fakeDocker: it
// records what was created and what is still there.
type fakeVerifyDocker struct {
	*fakeDocker
	exitOnStart bool // the throwaway database stops at once

	mu         sync.Mutex
	configs    []*container.Config
	hosts      []*container.HostConfig
	netOpts    []network.CreateOptions
	containers map[string]string // id: name, still there
	networks   map[string]string // id: name, still there
}

var _ maintenance.VerifyDocker = (*fakeVerifyDocker)(nil)

func newFakeVerifyDocker(answer func(cmd []string) fakeRun) *fakeVerifyDocker {
	return &fakeVerifyDocker{fakeDocker: &fakeDocker{answer: answer}, containers: map[string]string{}, networks: map[string]string{}}
}

func (f *fakeVerifyDocker) NetworkCreate(_ context.Context, name string, o network.CreateOptions) (network.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.netOpts = append(f.netOpts, o)
	id := "net-" + name
	f.networks[id] = name
	return network.CreateResponse{ID: id}, nil
}

func (f *fakeVerifyDocker) NetworkRemove(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.networks, id)
	return nil
}

func (f *fakeVerifyDocker) ContainerCreate(_ context.Context, c *container.Config, h *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.configs, f.hosts = append(f.configs, c), append(f.hosts, h)
	id := "ctr-" + name
	f.containers[id] = name
	return container.CreateResponse{ID: id}, nil
}

func (f *fakeVerifyDocker) Info(context.Context) (system.Info, error) {
	return system.Info{DockerRootDir: "/var/lib/docker"}, nil
}

// fakeSpace is a disk with a given free space, or an error.
type fakeSpace struct {
	free  uint64
	err   error
	asked []string
}

func (f *fakeSpace) Free(dir string) (uint64, error) {
	f.asked = append(f.asked, dir)
	return f.free, f.err
}

func (f *fakeVerifyDocker) ContainerStart(context.Context, string, container.StartOptions) error {
	return nil
}

func (f *fakeVerifyDocker) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	in := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: id, Image: "sha256:feed", State: &container.State{Running: true}},
		Config:            &container.Config{Image: "postgres:15.10", Cmd: []string{"postgres"}, Env: []string{"POSTGRES_PASSWORD=" + secret}},
	}
	if name, ok := f.containers[id]; ok {
		in.State.Running = !f.exitOnStart
		in.State.ExitCode = map[bool]int{true: 1}[f.exitOnStart]
		in.NetworkSettings = &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{name: {IPAddress: "10.9.0.2"}}}
	}
	return in, nil
}

func (f *fakeVerifyDocker) ContainerRemove(_ context.Context, id string, o container.RemoveOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !o.RemoveVolumes {
		return errors.New("the test wants the anonymous volumes removed too")
	}
	delete(f.containers, id)
	return nil
}

// leftovers lists what was created and not removed.
func (f *fakeVerifyDocker) leftovers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, n := range f.containers {
		out = append(out, "container "+n)
	}
	for _, n := range f.networks {
		out = append(out, "network "+n)
	}
	return out
}

// pgVerify scripts the PostgreSQL tools of a test restore.
type pgVerify struct {
	counts      string // psql's answer
	restoreExit int
	notReady    bool
}

func (p pgVerify) answer(cmd []string) fakeRun {
	switch cmd[0] {
	case "pg_isready":
		return fakeRun{exitCode: map[bool]int{true: 2}[p.notReady]}
	case "pg_restore":
		r := fakeRun{consume: true, exitCode: p.restoreExit}
		if p.restoreExit != 0 {
			r.stderr = "pg_restore: error: could not execute query: ERROR: relation \"people\" already exists\n"
		}
		return r
	case "psql":
		return fakeRun{stdout: []byte(p.counts)}
	}
	return fakeRun{consume: true}
}

type verifyFixture struct {
	*fixture
	vd    *fakeVerifyDocker
	space *fakeSpace
	s     *maintenance.Service
}

func newVerifyFixture(t *testing.T, kind string, answer func([]string) fakeRun) *verifyFixture {
	t.Helper()
	f := newFixture(t, kind, answer)
	vd := newFakeVerifyDocker(answer)
	space := &fakeSpace{free: 1 << 40}
	s := maintenance.New(maintenance.Options{Docker: vd, Engine: f.e, Repo: f.repo, Space: space, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return &verifyFixture{fixture: f, vd: vd, space: space, s: s}
}

func (f *verifyFixture) store(t *testing.T, meta storage.Meta, payload []byte) string {
	t.Helper()
	res, err := f.repo.Store(context.Background(), meta, bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	return res.Manifest.ID
}

func (f *verifyFixture) damage(t *testing.T, id string) { t.Helper(); flipByte(t, f.dir, id) }

// flipByte flips one byte in the middle of a backup's data file in a
// local repository's folder.
func flipByte(t *testing.T, dir, id string) {
	t.Helper()
	p := filepath.Join(dir, id, "data.zst")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x01
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

var pgCounts = map[string]int64{"people": 500, "notes": 2000}

const pgCountsOut = "notes\t2000\npeople\t500\n"

func TestVerifyRestoreOfADump(t *testing.T) {
	for _, tc := range []struct {
		name    string
		script  pgVerify
		counts  map[string]int64 // recorded at dump time
		damage  bool
		exit    bool   // the throwaway database stops at once
		check   string // the check that fails; "" passes
		inError []string
	}{
		{name: "good", script: pgVerify{counts: pgCountsOut}, counts: pgCounts},
		{name: "old dump without counts", script: pgVerify{counts: pgCountsOut}},
		{name: "a row missing", script: pgVerify{counts: "notes\t2000\npeople\t499\n"}, counts: pgCounts,
			check: maintenance.CheckCounts, inError: []string{"people had 500 when the backup was taken, 499 came back", "| people | 500 | 499 | ❌ |"}},
		{name: "a table missing", script: pgVerify{counts: "people\t500\n"}, counts: pgCounts,
			check: maintenance.CheckCounts, inError: []string{"notes had 2000 when the backup was taken, it is missing"}},
		{name: "restore tool fails", script: pgVerify{counts: pgCountsOut, restoreExit: 1}, counts: pgCounts,
			check: maintenance.CheckRestore, inError: []string{"pg_restore exited with code 1", "already exists"}},
		{name: "damaged backup", script: pgVerify{counts: pgCountsOut}, counts: pgCounts, damage: true,
			check: maintenance.CheckChecksum},
		{name: "database stops while starting", script: pgVerify{counts: pgCountsOut, notReady: true}, counts: pgCounts, exit: true,
			check: maintenance.CheckStart, inError: []string{"stopped while starting (exit code 1)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newVerifyFixture(t, "postgres", tc.script.answer)
			f.vd.exitOnStart = tc.exit
			id := f.store(t, storage.Meta{Minion: "testmin", Kind: storage.KindDump, DBKind: "postgres", Counts: tc.counts}, dumpN(0))
			if tc.damage {
				f.damage(t, id)
			}
			var steps []string
			res, err := f.s.VerifyRestore(context.Background(), "testmin", "", func(s string) { steps = append(steps, s) })

			if left := f.vd.leftovers(); len(left) > 0 {
				t.Errorf("left behind: %q", left)
			}
			if len(f.vd.configs) != 1 || len(f.vd.netOpts) != 1 {
				t.Fatalf("%d containers and %d networks created, want one each", len(f.vd.configs), len(f.vd.netOpts))
			}
			throwawayIsPrivate(t, f.vd)
			f.noSecretsOnCommandLines(t)
			joined := strings.Join(steps, "\n")
			if !strings.Contains(joined, "Removing the throwaway database") {
				t.Errorf("progress:\n%s", joined)
			}

			if tc.check == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if res.BackupID != id || len(res.Checks) != 2 || len(res.Failed()) != 0 || res.Recorded != (tc.counts != nil) {
					t.Fatalf("result %+v", res)
				}
				text := res.Text()
				for _, w := range []string{"✅ The test restore of testmin from " + id, "| people | ", "| 500 | ✅ |"} {
					if !strings.Contains(text, w) {
						t.Errorf("the report lacks %q:\n%s", w, text)
					}
				}
				if tc.counts == nil && !strings.Contains(text, "did not record its row counts") {
					t.Errorf("the report does not say the counts were not recorded:\n%s", text)
				}
				return
			}
			var ve *maintenance.VerifyError
			if !errors.As(err, &ve) || ve.Check != tc.check {
				t.Fatalf("err = %v, want a failure at %q", err, tc.check)
			}
			msg := ve.UserMessage()
			for _, w := range append(tc.inError, "❌ The test restore of testmin from "+id+" FAILED at "+tc.check) {
				if !strings.Contains(msg, w) {
					t.Errorf("the message lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(msg, secret) {
				t.Error("the message shows the minion's password")
			}
		})
	}
}

// throwawayIsPrivate: the throwaway database is on an internal network
// of its own, with a password of its own, never the minion's.
func throwawayIsPrivate(t *testing.T, vd *fakeVerifyDocker) {
	t.Helper()
	o, c, h := vd.netOpts[0], vd.configs[0], vd.hosts[0]
	if !o.Internal || o.Labels[maintenance.LabelVerify] != "testmin" {
		t.Errorf("network options %+v", o)
	}
	if !strings.HasPrefix(string(h.NetworkMode), "summoner-verify-testmin-") || c.Image != "sha256:feed" || !slices.Equal(c.Cmd, []string{"postgres"}) {
		t.Errorf("container %+v on %s", c, h.NetworkMode)
	}
	if _, ok := c.Labels["summoner.minion"]; ok {
		t.Error("the throwaway container would count as one of the minion's")
	}
	var pw string
	for _, e := range c.Env {
		if strings.Contains(e, secret) {
			t.Errorf("the throwaway database got the minion's password: %s", e)
		}
		if v, ok := strings.CutPrefix(e, "POSTGRES_PASSWORD="); ok {
			pw = v
		}
	}
	if len(pw) < 24 || !slices.Contains(c.Env, "POSTGRES_USER=app") || !slices.Contains(c.Env, "POSTGRES_DB=appdb") {
		t.Errorf("env %q", c.Env)
	}
	// The throwaway's password reaches its tools through the environment only.
	argv, env := vd.commands()
	if !slices.Contains(env, "PGPASSWORD="+pw) {
		t.Errorf("the tools did not get the throwaway password: %q", env)
	}
	for _, a := range argv {
		if strings.Contains(a, pw) {
			t.Errorf("a command line holds the throwaway password: %s", a)
		}
	}
}

func TestDumpRecordsRowCounts(t *testing.T) {
	p := &pgScript{outs: [][]byte{dumpN(0)}}
	answer := func(cmd []string) fakeRun {
		if cmd[0] == "psql" {
			return fakeRun{stdout: []byte(pgCountsOut)}
		}
		return p.answer(cmd)
	}
	f := newFixture(t, "postgres", answer)
	res, err := f.s.Dump(context.Background(), "testmin", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, m, err := f.repo.Open(context.Background(), res.Manifest.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Counts) != 2 || m.Counts["people"] != 500 || m.Counts["notes"] != 2000 {
		t.Errorf("recorded counts %v", m.Counts)
	}
}

func TestDumpWithoutCountsStillStores(t *testing.T) {
	p := &pgScript{outs: [][]byte{dumpN(0)}}
	answer := func(cmd []string) fakeRun {
		if cmd[0] == "psql" {
			return fakeRun{exitCode: 2, stderr: "psql: error: permission denied"}
		}
		return p.answer(cmd)
	}
	f := newFixture(t, "postgres", answer)
	res, err := f.s.Dump(context.Background(), "testmin", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Counts != nil {
		t.Errorf("counts %v", res.Manifest.Counts)
	}
}

func tarOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	if err := tw.WriteHeader(&tar.Header{Name: "data/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[n]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "data/link", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestVerifyRestoreOfAColdBackup(t *testing.T) {
	files := map[string]string{"data/a.txt": "hello", "data/sub/b.bin": strings.Repeat("x", 3000), "../../escape": "no"}
	good := tarOf(t, files)
	const wantFiles, wantBytes = 3, 5 + 3000 + 2
	// The tally a cold backup records, as it would have streamed past.
	recorded := func(t *testing.T, payload []byte) storage.Tally {
		a, err := maintenance.ScanArchive(context.Background(), bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	other := tarOf(t, map[string]string{"data/a.txt": "HELLO", "data/sub/b.bin": strings.Repeat("x", 3000), "../../escape": "no"})
	// A header whose checksum no longer matches: the stored bytes are the
	// ones written (the repository's hash passes), but the archive is bad.
	badHeader := bytes.Clone(good)
	badHeader[512+10] ^= 0xff
	for _, tc := range []struct {
		name    string
		payload []byte
		counts  map[string]int64
		tally   []byte // the archive whose tally was recorded
		damage  bool
		check   string
		inText  string
	}{
		{name: "good", payload: good, tally: good, inText: "and their contents hash the same"},
		{name: "counts only", payload: good, counts: map[string]int64{"files": wantFiles, "bytes": wantBytes}, inText: "It holds the files and bytes it held"},
		{name: "nothing recorded", payload: good, inText: "did not record its file count and size"},
		{name: "a file fewer than recorded", payload: good, counts: map[string]int64{"files": wantFiles + 1, "bytes": wantBytes},
			check: maintenance.CheckFiles, inText: "files had 4 when the backup was taken, 3 came back"},
		{name: "same sizes, other contents", payload: good, tally: other, check: maintenance.CheckFiles, inText: "their SHA-256 does not match"},
		{name: "corrupted header", payload: badHeader, check: maintenance.CheckUnpack, inText: "reading the archive after 0 files"},
		{name: "archive cut inside a file's padding", payload: good[:1024+200], check: maintenance.CheckUnpack, inText: "cut short"},
		{name: "archive cut at a file's end", payload: good[:1536], check: maintenance.CheckUnpack, inText: "cut short after 1 files"},
		{name: "archive cut inside a file", payload: good[:3072+100], check: maintenance.CheckUnpack, inText: "unexpected EOF"},
		{name: "damaged backup", payload: good, damage: true, check: maintenance.CheckChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newVerifyFixture(t, "postgres", pgVerify{}.answer)
			meta := storage.Meta{Minion: "testmin", Kind: storage.KindCold, Counts: tc.counts}
			if tc.tally != nil {
				tally := recorded(t, tc.tally)
				meta.Tally = func() storage.Tally { return tally }
			}
			id := f.store(t, meta, tc.payload)
			if tc.damage {
				f.damage(t, id)
			}
			// Nothing may be written: a temporary folder that does not
			// exist makes any attempt fail.
			t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "absent"))
			res, err := f.s.VerifyRestore(context.Background(), "testmin", id, nil)
			if len(f.vd.configs) != 0 {
				t.Error("a container was made for a cold backup")
			}
			if tc.check == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c := res.Checks; len(c) < 2 || c[0].Found != wantFiles || c[1].Found != wantBytes {
					t.Errorf("checks %+v", c)
				}
				if !strings.Contains(res.Text(), tc.inText) || !strings.Contains(res.Text(), "nothing written to disk") {
					t.Errorf("report:\n%s", res.Text())
				}
				return
			}
			var ve *maintenance.VerifyError
			if !errors.As(err, &ve) || ve.Check != tc.check || !strings.Contains(ve.UserMessage(), tc.inText) {
				t.Fatalf("err = %v, want a failure at %q saying %q", err, tc.check, tc.inText)
			}
			if !strings.Contains(ve.UserMessage(), "FAILED") {
				t.Errorf("a bad archive is not reported as failed:\n%s", ve.UserMessage())
			}
		})
	}
}

func TestVerifyRestoreFindsTheBackup(t *testing.T) {
	f := newVerifyFixture(t, "postgres", pgVerify{counts: pgCountsOut}.answer)
	for _, tc := range []struct {
		name, id, want string
	}{
		{"no backups", "", "testmin has no backups yet"},
		{"unknown id", "testmin/20200101T000000Z-dump", "there is no backup testmin/20200101T000000Z-dump of testmin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.s.VerifyRestore(context.Background(), "testmin", tc.id, nil)
			var ve *maintenance.VerifyError
			if !errors.As(err, &ve) || ve.Check != maintenance.CheckFind || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	old := f.store(t, storage.Meta{Minion: "testmin", Kind: storage.KindDump, DBKind: "postgres", Counts: pgCounts}, dumpN(0))
	f.damage(t, old) // only the newest is tested by default
	f.store(t, storage.Meta{Minion: "other", Kind: storage.KindDump, DBKind: "postgres"}, dumpN(2))
	newest := f.store(t, storage.Meta{Minion: "testmin", Kind: storage.KindDump, DBKind: "postgres", Counts: pgCounts}, dumpN(1))
	res, err := f.s.VerifyRestore(context.Background(), "testmin", "", nil)
	if err != nil || res.BackupID != newest {
		t.Fatalf("tested %+v, %v; want the newest, %s", res, err, newest)
	}
}

func TestVerifyRestoreRefusesWithoutRoom(t *testing.T) {
	for _, tc := range []struct {
		name   string
		space  fakeSpace
		refuse bool   // a *NoRoomError, not a failed test
		check  string // else the failed check, "" for a pass
	}{
		{name: "room enough", space: fakeSpace{free: 2 << 30}},
		{name: "too little room", space: fakeSpace{free: 100 << 20}, refuse: true},
		{name: "a remote engine's root cannot be measured", space: fakeSpace{err: fmt.Errorf("statfs: %w", fs.ErrNotExist)}},
		{name: "the free space cannot be read", space: fakeSpace{err: errors.New("statfs: input/output error")}, check: maintenance.CheckStart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newVerifyFixture(t, "postgres", pgVerify{counts: pgCountsOut}.answer)
			*f.space = tc.space
			id := f.store(t, storage.Meta{Minion: "testmin", Kind: storage.KindDump, DBKind: "postgres", Counts: pgCounts}, dumpN(0))
			_, err := f.s.VerifyRestore(context.Background(), "testmin", id, nil)
			if !slices.Equal(f.space.asked, []string{"/var/lib/docker"}) {
				t.Errorf("free space asked of %q, want Docker's data root", f.space.asked)
			}
			var room *maintenance.NoRoomError
			var ve *maintenance.VerifyError
			switch {
			case tc.refuse:
				if !errors.As(err, &room) || errors.As(err, &ve) {
					t.Fatalf("err = %v, want a refusal", err)
				}
				msg := room.UserMessage()
				for _, want := range []string{"did not run", "100 MiB free", "needs about 1.0 GiB", "says nothing about the backup"} {
					if !strings.Contains(msg, want) {
						t.Errorf("refusal %q does not say %q", msg, want)
					}
				}
				if strings.Contains(msg, "FAILED") || strings.Contains(msg, "/var/lib/docker") {
					t.Errorf("refusal %q reads as a failure or shows a path", msg)
				}
				if len(f.vd.configs) != 0 || len(f.vd.netOpts) != 0 {
					t.Error("a throwaway database was started without room for it")
				}
			case tc.check != "":
				if !errors.As(err, &ve) || ve.Check != tc.check {
					t.Fatalf("err = %v, want a failure at %q", err, tc.check)
				}
			default:
				if err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestVerifyRestoreNewestOfAKind(t *testing.T) {
	f := newVerifyFixture(t, "postgres", pgVerify{counts: pgCountsOut}.answer)
	_, err := f.s.VerifyRestoreNewest(context.Background(), "testmin", storage.KindCold, nil)
	if !errors.Is(err, maintenance.ErrNoBackup) || !strings.Contains(err.Error(), "testmin has no cold backups yet") {
		t.Fatalf("no cold backup yet: %v", err)
	}
	dump := f.store(t, storage.Meta{Minion: "testmin", Kind: storage.KindDump, DBKind: "postgres", Counts: pgCounts}, dumpN(0))
	cold := f.store(t, storage.Meta{Minion: "testmin", Kind: storage.KindCold}, tarOf(t, map[string]string{"data/a": "a"}))
	for kind, want := range map[string]string{storage.KindCold: cold, storage.KindDump: dump} {
		res, err := f.s.VerifyRestoreNewest(context.Background(), "testmin", kind, nil)
		if err != nil || res.BackupID != want {
			t.Errorf("newest %q: tested %+v, %v; want %s", kind, res, err, want)
		}
	}
}
