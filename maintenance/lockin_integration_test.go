package maintenance_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/storage"
)

// TestADumpRestoresByHandWithStandardTools: no lock-in. An encrypted dump
// comes back with age, zstd and pg_restore alone, as the README shows.
func TestADumpRestoresByHandWithStandardTools(t *testing.T) {
	for _, tool := range []string{"age", "zstd", "docker"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", tool, err)
		}
	}
	f := newITFixture(t, "testmin")
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(t.TempDir(), "backup.key")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.repo, err = storage.NewRepository(storage.Options{Backends: []storage.Backend{&storage.Local{Root: f.dir}}, Recipients: []string{id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	f.s = maintenance.New(maintenance.Options{Docker: f.d.Client, Engine: f.e, Repo: f.repo})
	f.psql(t, `CREATE TABLE people (id int PRIMARY KEY, name text);
		INSERT INTO people SELECT i, 'person ' || i FROM generate_series(1, 3000) i;`)
	want := f.checksums(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := f.s.Dump(ctx, f.minion, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.psql(t, "DROP TABLE people")

	// The README's steps, with nothing of Summoner's.
	data := filepath.Join(f.dir, res.Manifest.ID, res.Manifest.DataFile)
	plain := filepath.Join(t.TempDir(), "testmin.pgdump")
	sh(t, nil, "age -d -i "+key+" "+data+" | zstd -d -o "+plain)
	db := f.db(t)
	sh(t, nil, "docker cp "+plain+" "+db.Container+":/tmp/testmin.pgdump")
	// The password comes from the environment (-e NAME copies it), never
	// from a command line.
	sh(t, []string{"PGPASSWORD=" + db.Password}, "docker exec -e PGPASSWORD "+db.Container+
		" pg_restore --clean --if-exists -h 127.0.0.1 -U "+db.User+" -d "+db.Name+" /tmp/testmin.pgdump")
	if got := f.checksums(t); got != want {
		t.Fatalf("restored by hand:\n%s\nwant:\n%s", got, want)
	}
}

func sh(t *testing.T, env []string, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-o", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.SplitN(script, " ", 2)[0], err, out)
	}
}
