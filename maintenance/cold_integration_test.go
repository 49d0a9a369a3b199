package maintenance_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/summoner-bot/summoner/maintenance"
)

// The helper image in tests: the registry's testapp holds a static
// busybox, whose tar keeps numeric owners.
const itHelperImage = "summoner/testapp:1.0"

func TestColdBackupSurvivesAPurgeWithOwnersAndModes(t *testing.T) {
	f := newITFixture(t, "testmin")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cold, err := f.s.Cold(maintenance.ColdOptions{HelperImage: itHelperImage})
	if err != nil {
		t.Fatal(err)
	}
	target, err := f.e.ColdTarget(f.minion)
	if err != nil {
		t.Fatal(err)
	}
	data, dbData := target.Dirs[0].Path, target.Dirs[1].Path

	f.psql(t, `CREATE TABLE kept (note text); INSERT INTO kept VALUES ('written before the cold backup');`)
	writeOwnedFiles(t, filepath.Join(data, "uploads"))
	password := f.db(t).Password // the purge forgets it; the new summon makes another
	want, wantPG := snapshot(t, data), statLine(t, filepath.Join(dbData, "pg"))

	var steps []string
	progress := func(s string) { steps = append(steps, s) }
	res, err := cold.Backup(ctx, f.minion, progress)
	if err != nil {
		t.Fatalf("cold backup: %v\nprogress:\n%s", err, strings.Join(steps, "\n"))
	}
	t.Logf("cold backup progress:\n%s", strings.Join(steps, "\n"))
	if res.Manifest.Kind != "cold" || res.Manifest.Payload.Size == 0 {
		t.Fatalf("stored %+v, want a non-empty cold backup", res.Manifest)
	}
	assertAllRunning(t, f)
	assertNoHelper(t, f)

	if err := f.e.Banish(ctx, f.minion, true); err != nil {
		t.Fatalf("banish --purge: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "uploads")); !os.IsNotExist(err) {
		t.Fatalf("the data folder is still there after the purge: %v", err)
	}
	if _, err := f.e.Summon(ctx, f.minion, "", map[string]string{"HTTP_PORT": itFreePort(t)}, nil); err != nil {
		t.Fatalf("summon again: %v", err)
	}
	if got := f.psql(t, "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'"); got != "0" {
		t.Fatalf("a fresh summon already has the table (%s): the purge kept data", got)
	}

	steps = nil
	rr, err := cold.Restore(ctx, f.minion, res.Manifest.ID, progress)
	if err != nil {
		t.Fatalf("cold restore: %v\nprogress:\n%s", err, strings.Join(steps, "\n"))
	}
	t.Logf("cold restore progress:\n%s", strings.Join(steps, "\n"))
	if got := snapshot(t, data); got != want {
		t.Errorf("the data folder after the restore:\n%s\nwant:\n%s", got, want)
	}
	if got := statLine(t, filepath.Join(dbData, "pg")); got != wantPG {
		t.Errorf("the database folder after the restore: %s, want %s", got, wantPG)
	}
	if got := f.psql(t, "SELECT note FROM kept"); got != "written before the cold backup" {
		t.Errorf("the row after the restore: %q", got)
	}
	if ids := f.backups(t); len(ids) != 2 || !contains(ids, rr.SafetyID) {
		t.Errorf("backups %q, want the cold backup and the safety copy %s", ids, rr.SafetyID)
	}
	assertAllRunning(t, f)
	assertNoHelper(t, f)
	// The restored database knows the old password only: the minion's
	// remembered state came back with it, and its containers use it.
	db := f.db(t)
	if db.Password != password {
		t.Errorf("after the restore the minion remembers another database password than the restored database's")
	}
	if out, code := f.d.Exec(t, db.ContainerID, []string{"PGPASSWORD=" + password}, "psql", "-h", "127.0.0.1", "-U", db.User, "-d", db.Name, "-tAc", "SELECT note FROM kept"); code != 0 || strings.TrimSpace(out) != "written before the cold backup" {
		t.Errorf("logging in over the network with the restored password: exit %d: %s", code, out)
	}
	for _, c := range f.d.Containers(t, f.minion) {
		if c.Labels["summoner.role"] == "web" {
			out, _ := f.d.Exec(t, c.ID, nil, "sh", "-c", "echo $DATABASE_URL")
			if !strings.Contains(out, ":"+password+"@") {
				t.Errorf("the app's database URL does not carry the restored password")
			}
		}
	}
}

// writeOwnedFiles makes files and folders with several owners and modes,
// setgid and a symbolic link among them.
func writeOwnedFiles(t *testing.T, dir string) {
	t.Helper()
	type entry struct {
		path     string
		mode     fs.FileMode
		uid, gid int
		body     string // "" for a folder
	}
	for _, e := range []entry{
		{path: "a.txt", mode: 0o640, uid: 1000, gid: 1000, body: "first"},
		{path: "secret", mode: 0o600, uid: 33, gid: 33, body: "only www-data reads this"},
		{path: "shared", mode: 0o2775 | fs.ModeDir | fs.ModeSetgid, uid: 1234, gid: 5678},
		{path: "shared/b", mode: 0o444, uid: 0, gid: 5678, body: "read only"},
		{path: "shared/run.sh", mode: 0o755, uid: 4321, gid: 4321, body: "#!/bin/sh\n"},
	} {
		p := filepath.Join(dir, e.path)
		var err error
		if e.body == "" {
			err = os.Mkdir(p, 0o700)
		} else {
			err = os.WriteFile(p, []byte(e.body), 0o600)
		}
		if err == nil {
			err = os.Chown(p, e.uid, e.gid)
		}
		if err == nil {
			err = os.Chmod(p, e.mode&fs.ModePerm|e.mode&fs.ModeSetgid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(dir, "link"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists every entry under dir with its mode, owner and content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, rel+" "+statLine(t, p))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func statLine(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	line := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		line += " -> " + target
	case fi.Mode().IsRegular():
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		line += fmt.Sprintf(" %x", sha256.Sum256(b))
	}
	return line
}

func assertAllRunning(t *testing.T, f *itFixture) {
	t.Helper()
	cs := f.d.Containers(t, f.minion)
	if len(cs) == 0 {
		t.Fatal("the minion has no containers")
	}
	for _, c := range cs {
		if c.State != container.StateRunning {
			t.Errorf("%s is %s, want running", c.Names, c.State)
		}
	}
}

func assertNoHelper(t *testing.T, f *itFixture) {
	t.Helper()
	list, err := f.d.Client.ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", maintenance.LabelHelperMinion+"="+f.minion))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) > 0 {
		t.Errorf("helper containers left: %v", list[0].Names)
	}
}
