package maintenance_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/summoner-bot/summoner/maintenance"
)

// pgScript plays pg_dump and pg_restore: each dump gives the next of
// outs; restores read their input and exit with the next of restoreExits.
type pgScript struct {
	mu           sync.Mutex
	outs         [][]byte
	restoreExits []int
}

func (p *pgScript) answer(cmd []string) fakeRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch cmd[0] {
	case "pg_dump":
		out := p.outs[0]
		p.outs = p.outs[1:]
		return fakeRun{stdout: out}
	case "pg_restore":
		code := 0
		if len(p.restoreExits) > 0 {
			code, p.restoreExits = p.restoreExits[0], p.restoreExits[1:]
		}
		return fakeRun{consume: true, exitCode: code, stderr: map[bool]string{true: "pg_restore: error: could not execute query\n"}[code != 0]}
	}
	return fakeRun{}
}

func dumpN(n int) []byte {
	return append([]byte("PGDMP"), bytes.Repeat([]byte{byte('a' + n)}, 1000)...)
}

// restoreFixture has one stored backup (dumpN(0)); the next dump, the
// safety dump, is dumpN(1).
func restoreFixture(t *testing.T, restoreExits ...int) (*fixture, string, *pgScript) {
	t.Helper()
	p := &pgScript{outs: [][]byte{dumpN(0), dumpN(1)}, restoreExits: restoreExits}
	f := newFixture(t, "postgres", p.answer)
	res, err := f.s.Dump(context.Background(), "testmin", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.e.events = nil
	return f, res.Manifest.ID, p
}

// restored lists the inputs pg_restore was given, in order.
func (f *fixture) restored() [][]byte {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	var out [][]byte
	for i, e := range f.d.execs {
		if e.Cmd[0] == "pg_restore" {
			out = append(out, f.d.inputs[i].Bytes())
		}
	}
	return out
}

func TestRestore(t *testing.T) {
	f, id, _ := restoreFixture(t)
	var steps []string
	res, err := f.s.Restore(context.Background(), "testmin", id, func(s string) { steps = append(steps, s) })
	if err != nil {
		t.Fatal(err)
	}
	if res.BackupID != id || res.SafetyID == "" || res.SafetyID == id {
		t.Fatalf("result %+v", res)
	}
	if got := f.restored(); len(got) != 1 || !bytes.Equal(got[0], dumpN(0)) {
		t.Errorf("pg_restore was not given the backup: %d restores", len(got))
	}
	if want := []string{"lock", "stop", "start", "unlock"}; !slices.Equal(f.e.events, want) {
		t.Errorf("engine events %q, want %q", f.e.events, want)
	}
	// The safety dump is a normal backup holding the data from before.
	rc, m, err := f.repo.Open(context.Background(), res.SafetyID)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if m.Kind != "dump" || m.Payload.Size != int64(len(dumpN(1))) {
		t.Errorf("safety dump manifest %+v", m)
	}
	joined := strings.Join(steps, "\n")
	for _, w := range []string{"Checking backup " + id, "Taking a safety dump", "Safety dump stored as " + res.SafetyID, "Restoring " + id, "Restored testmin from " + id} {
		if !strings.Contains(joined, w) {
			t.Errorf("progress lacks %q:\n%s", w, joined)
		}
	}
	argv, env := f.d.commands()
	for _, a := range argv {
		if strings.HasPrefix(a, "pg_restore") && (!strings.Contains(a, "--clean --if-exists") || strings.Contains(a, secret)) {
			t.Errorf("restore command %q", a)
		}
	}
	if !slices.Contains(env, "PGPASSWORD="+secret) {
		t.Errorf("env %q", env)
	}
}

func TestRestoreRefusedBeforeTouchingAnything(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, f *fixture, id string) string // returns the id to restore
		want  string
	}{
		{"one flipped byte", func(t *testing.T, f *fixture, id string) string {
			path := filepath.Join(f.dir, id, "data.zst")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 0x01
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return id
		}, "is damaged or unreadable"},
		{"no such backup", func(*testing.T, *fixture, string) string { return "testmin/20990101T000000Z-dump" }, "there is no backup"},
		{"another minion's", func(_ *testing.T, f *fixture, id string) string { f.e.db.Minion = "other"; return id }, "is a backup of testmin, not of other"},
		{"another kind of database", func(_ *testing.T, f *fixture, id string) string { f.e.db.Kind = "mariadb"; return id }, "is a postgres dump and testmin runs mariadb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, id, _ := restoreFixture(t)
			id = tc.setup(t, f, id)
			before := len(f.files(t))
			_, err := f.s.Restore(context.Background(), f.e.db.Minion, id, nil)
			var re *maintenance.RestoreError
			if !errors.As(err, &re) || re.Touched || re.Step != maintenance.StepCheck || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "I changed nothing") {
				t.Fatalf("err = %v, want a refusal saying %q", err, tc.want)
			}
			if want := []string{"lock", "unlock"}; !slices.Equal(f.e.events, want) {
				t.Errorf("the app was touched: %q", f.e.events)
			}
			if n := len(f.restored()); n > 0 {
				t.Errorf("pg_restore ran %d times", n)
			}
			if after := len(f.files(t)); after != before {
				t.Errorf("a safety dump was taken: %d files, then %d", before, after)
			}
		})
	}
}

func TestFailedRestorePutsTheSafetyDumpBack(t *testing.T) {
	for _, tc := range []struct {
		name         string
		restoreExits []int
		failStart    int
		step         string
		recovered    bool
	}{
		{name: "pg_restore fails", restoreExits: []int{1}, step: maintenance.StepRestore, recovered: true},
		{name: "the app does not start", failStart: 1, step: maintenance.StepStart, recovered: true},
		{name: "the safety dump fails too", restoreExits: []int{1, 1}, step: maintenance.StepRestore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, id, _ := restoreFixture(t, tc.restoreExits...)
			f.e.failStart = tc.failStart
			var steps []string
			_, err := f.s.Restore(context.Background(), "testmin", id, func(s string) { steps = append(steps, s) })
			var re *maintenance.RestoreError
			if !errors.As(err, &re) || !re.Touched || re.Step != tc.step || re.Recovered != tc.recovered || re.SafetyID == "" {
				t.Fatalf("err = %#v", err)
			}
			got := f.restored()
			if len(got) != 2 || !bytes.Equal(got[0], dumpN(0)) || !bytes.Equal(got[1], dumpN(1)) {
				t.Errorf("want the backup, then the safety dump restored; got %d restores", len(got))
			}
			msg := err.Error()
			if !strings.Contains(msg, re.SafetyID) || strings.Contains(msg, secret) {
				t.Errorf("message: %s", msg)
			}
			if tc.recovered && !strings.Contains(msg, "so I put back the data it had just before") {
				t.Errorf("message: %s", msg)
			}
			if !tc.recovered && !strings.Contains(msg, "`restore testmin "+re.SafetyID+"` tries again") {
				t.Errorf("message: %s", msg)
			}
			if !strings.Contains(strings.Join(steps, "\n"), "That failed; putting back the safety dump "+re.SafetyID) {
				t.Errorf("progress: %q", steps)
			}
			if f.e.events[len(f.e.events)-1] != "unlock" {
				t.Errorf("the lock was kept: %q", f.e.events)
			}
		})
	}
}

// A backup that breaks while it is read fails the restore even when the
// tool, given a clean end, would exit 0.
func TestRestoreFailsOnABrokenInput(t *testing.T) {
	d := &fakeDocker{answer: func([]string) fakeRun { return fakeRun{consume: true} }}
	db := &maintenance.Database{Kind: "postgres", ContainerID: "c0ffee", Password: secret}
	r := &failingReader{data: dumpN(0)}
	err := (&maintenance.Postgres{Docker: d}).Restore(context.Background(), db, r)
	var de *maintenance.DumpError
	if !errors.As(err, &de) || !errors.Is(err, errDisk) {
		t.Fatalf("err = %v", err)
	}
}

var errDisk = errors.New("disk read error")

type failingReader struct{ data []byte }

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, errDisk
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}
