package maintenance_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

const secret = "s3cretPassw0rdForTheTests"

// Well-formed outputs of each tool.
var (
	pgOut    = append([]byte("PGDMP\x01\x0f\x00\x04\x08\x01"), bytes.Repeat([]byte("row data "), 500)...)
	mysqlOut = []byte("-- MariaDB dump 10.19\n" + strings.Repeat("INSERT INTO t VALUES (1);\n", 300) + "-- Dump completed on 2025-01-01 12:00:00\n")
	mongoOut = append(append([]byte{0x6d, 0xe2, 0x99, 0x81}, bytes.Repeat([]byte("bson\x00"), 300)...), 0x00, 0xff, 0xff, 0xff, 0xff)
)

type kindCase struct {
	kind, tool string
	out        []byte
	pwEnv      string // the environment variable that carries the password, "" if a file does
}

var kinds = []kindCase{
	{kind: "postgres", tool: "pg_dump", out: pgOut, pwEnv: "PGPASSWORD"},
	{kind: "mariadb", tool: "mariadb-dump", out: mysqlOut, pwEnv: "MYSQL_PWD"},
	{kind: "mongodb", tool: "mongodump", out: mongoOut},
}

// fakeEngine is the minion side: one running database, an app that
// stops and starts, and a record of what happened.
type fakeEngine struct {
	db        minions.RunningDatabase
	events    []string
	failStart int // fail the nth StartApp (from 1)
	starts    int
}

func (e *fakeEngine) Database(context.Context, string) (*minions.RunningDatabase, error) {
	db := e.db
	return &db, nil
}

func (e *fakeEngine) Lock(string, string) (func(), error) {
	e.events = append(e.events, "lock")
	return func() { e.events = append(e.events, "unlock") }, nil
}

func (e *fakeEngine) StopApp(context.Context, string, minions.Progress) error {
	e.events = append(e.events, "stop")
	return nil
}

func (e *fakeEngine) StartApp(context.Context, string, minions.Progress) error {
	e.starts++
	e.events = append(e.events, "start")
	if e.starts == e.failStart {
		return errors.New("testmin-x.test was not ready after 1m")
	}
	return nil
}

type fixture struct {
	d    *fakeDocker
	e    *fakeEngine
	repo *storage.Repository
	dir  string
	s    *maintenance.Service
}

func newFixture(t *testing.T, kind string, answer func(cmd []string) fakeRun) *fixture {
	t.Helper()
	f := &fixture{d: &fakeDocker{answer: answer}, dir: t.TempDir()}
	f.e = &fakeEngine{db: minions.RunningDatabase{
		Minion: "testmin", Kind: kind, Service: "db", ContainerID: "c0ffee", Container: "db-testmin-x.test",
		Name: "appdb", User: "app", Password: secret, Secrets: []string{secret},
	}}
	var err error
	f.repo, err = storage.NewRepository(storage.Options{Backends: []storage.Backend{&storage.Local{Root: f.dir}}, VerifyCopies: true})
	if err != nil {
		t.Fatal(err)
	}
	f.s = maintenance.New(maintenance.Options{Docker: f.d, Engine: f.e, Repo: f.repo, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return f
}

// files lists every file the repository's folder holds.
func (f *fixture) files(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// noSecretsOnCommandLines checks every command that ran.
func (f *fixture) noSecretsOnCommandLines(t *testing.T) {
	t.Helper()
	argv, _ := f.d.commands()
	for _, a := range argv {
		if strings.Contains(a, secret) {
			t.Errorf("the password is on a command line: %s", a)
		}
	}
}

// answerFor makes the tool of a kind behave as run; helpers (sh, rm)
// succeed, restores read their input.
func answerFor(tool string, run fakeRun) func(cmd []string) fakeRun {
	return func(cmd []string) fakeRun {
		if slices.Contains(cmd, tool) || strings.Contains(strings.Join(cmd, " "), tool) {
			return run
		}
		return fakeRun{consume: true}
	}
}

func TestDumpStoresAWholeDump(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.kind, func(t *testing.T) {
			f := newFixture(t, k.kind, answerFor(k.tool, fakeRun{stdout: k.out, stderr: "done\n", runningFor: 2}))
			var steps []string
			res, err := f.s.Dump(context.Background(), "testmin", func(s string) { steps = append(steps, s) })
			if err != nil {
				t.Fatal(err)
			}
			m := res.Manifest
			if m.Minion != "testmin" || m.Kind != storage.KindDump || m.DBKind != k.kind || m.Payload.Size != int64(len(k.out)) {
				t.Errorf("manifest %+v", m)
			}
			rc, _, err := f.repo.Open(context.Background(), m.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, k.out) {
				t.Errorf("the stored dump differs from the tool's output (%d bytes, %v)", len(got), err)
			}
			if len(steps) == 0 || !strings.Contains(steps[0], "Dumping the "+k.kind+" database of testmin") {
				t.Errorf("progress: %q", steps)
			}
			f.noSecretsOnCommandLines(t)
			argv, env := f.d.commands()
			if k.pwEnv != "" && !slices.Contains(env, k.pwEnv+"="+secret) {
				t.Errorf("the password is not in the exec's environment as %s: %q", k.pwEnv, env)
			}
			if k.kind == "mongodb" {
				mongoConfigWrittenAndRemoved(t, f, argv)
			}
		})
	}
}

// mongoConfigWrittenAndRemoved: the password went into a config file
// through an exec's input, and the file was removed after the tool ran.
func mongoConfigWrittenAndRemoved(t *testing.T, f *fixture, argv []string) {
	t.Helper()
	if in := f.d.input("umask 077 && cat > \"$0\""); !strings.Contains(in, "password: "+secret) {
		t.Errorf("the config file written is %q", in)
	}
	if len(argv) != 3 || !strings.HasPrefix(argv[0], "sh -c umask 077") || !strings.HasPrefix(argv[2], "rm -f /tmp/summoner-") {
		t.Fatalf("commands: %q", argv)
	}
	path := strings.TrimPrefix(argv[2], "rm -f ")
	if !strings.HasSuffix(argv[0], path) || !strings.Contains(argv[1], "--config="+path) {
		t.Errorf("the tool did not use the file that was written and removed: %q", argv)
	}
}

func TestFailedDumpStoresNothing(t *testing.T) {
	for _, k := range kinds {
		half := k.out[:len(k.out)/2]
		for _, tc := range []struct {
			name string
			run  fakeRun
			want string
		}{
			{"exits non-zero after part of its output", fakeRun{stdout: half, stderr: "FATAL: connection to server lost (password " + secret + ")\n", exitCode: 1}, "exited with code 1"},
			{"exits 0 with no output", fakeRun{}, "it produced no output"},
			{"output without its end", fakeRun{stdout: half}, "cut short"},
			{"killed mid-dump", fakeRun{stdout: half, exitCode: 137}, "was killed (exit code 137"},
			{"not its format", fakeRun{stdout: []byte("Usage: ...\n-- Dump completed\n\x00\xff\xff\xff\xff")}, "does not start as"},
		} {
			if k.kind == "postgres" && tc.name == "output without its end" {
				continue // the custom format has no end marker: pg_dump's exit code says it
			}
			if k.kind == "mariadb" && tc.name == "not its format" {
				continue // SQL has no header to check
			}
			t.Run(k.kind+"/"+tc.name, func(t *testing.T) {
				f := newFixture(t, k.kind, answerFor(k.tool, tc.run))
				_, err := f.s.Dump(context.Background(), "testmin", nil)
				var de *maintenance.DumpError
				if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want a DumpError saying %q", err, tc.want)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows the password: %v", err)
				}
				if tc.run.stderr != "" && !strings.Contains(err.Error(), "FATAL: connection to server lost (password ***)") {
					t.Errorf("the error lacks the tool's message: %v", err)
				}
				if files := f.files(t); len(files) > 0 {
					t.Errorf("a failed dump left files in the repository: %q", files)
				}
				if list, _ := f.repo.List(context.Background(), ""); len(list) > 0 {
					t.Errorf("a failed dump is listed as a backup: %+v", list[0].Manifest)
				}
				f.noSecretsOnCommandLines(t)
				if k.kind == "mongodb" {
					argv, _ := f.d.commands()
					if !strings.HasPrefix(argv[len(argv)-1], "rm -f /tmp/summoner-") {
						t.Errorf("the config file was not removed after a failure: %q", argv)
					}
				}
			})
		}
	}
}

// The repository failing is said as such, not as a dump that broke.
func TestDumpWhenStoringFails(t *testing.T) {
	f := newFixture(t, "postgres", answerFor("pg_dump", fakeRun{stdout: pgOut}))
	f.e.db.Minion = "Bad Name"
	_, err := f.s.Dump(context.Background(), "testmin", nil)
	var de *maintenance.DumpError
	if err == nil || errors.As(err, &de) || !strings.Contains(err.Error(), "bad minion name") {
		t.Fatalf("err = %v", err)
	}
}

func TestDumpCancelled(t *testing.T) {
	f := newFixture(t, "postgres", answerFor("pg_dump", fakeRun{stdout: pgOut}))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.s.Dump(ctx, "testmin", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if files := f.files(t); len(files) > 0 {
		t.Errorf("a cancelled dump left files: %q", files)
	}
}

func TestDatabaseNeverPrintsItsPassword(t *testing.T) {
	db := maintenance.Database{Minion: "testmin", Kind: "postgres", Password: secret}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "db", db)
	err := &maintenance.DumpError{Op: "dump", DB: db.String(), Tool: "pg_dump", Reason: "r"}
	for _, s := range []string{buf.String(), err.Error()} {
		if strings.Contains(s, secret) {
			t.Errorf("password in %q", s)
		}
	}
}
