package maintenance_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// The integration tests run testmin (PostgreSQL) on the real engine, with
// a repository on a temporary folder.

type itFixture struct {
	d      *dockertest.Env
	e      *minions.Engine
	repo   *storage.Repository
	gated  *gatedRepo
	s      *maintenance.Service
	dir    string // the repository's folder
	minion string
}

func newITFixture(t *testing.T, minion string) *itFixture {
	t.Helper()
	d := dockertest.Require(t)
	d.RemoveMinion(t, minion)
	t.Cleanup(func() { d.RemoveMinion(t, minion) })
	cat, err := minions.LoadCatalog("../minions/testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := &itFixture{d: d, dir: filepath.Join(dir, "backups"), minion: minion}
	f.e = minions.NewEngine(d.Client, cat, minions.EngineOptions{
		Domain: "it.summoner.test", VSRoot: filepath.Join(dir, "volumes"), DBSRoot: filepath.Join(dir, "databases"),
		Mirror: minions.Mirror{Registry: d.Registry}, State: &minions.StateStore{Dir: filepath.Join(dir, "state")},
	})
	f.repo, err = storage.NewRepository(storage.Options{Backends: []storage.Backend{&storage.Local{Root: f.dir}}, VerifyCopies: true})
	if err != nil {
		t.Fatal(err)
	}
	f.gated = &gatedRepo{Repository: f.repo}
	f.s = maintenance.New(maintenance.Options{Docker: d.Client, Engine: f.e, Repo: f.gated})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := f.e.Summon(ctx, minion, "", map[string]string{"HTTP_PORT": itFreePort(t)}, nil); err != nil {
		t.Fatalf("summon %s: %v", minion, err)
	}
	return f
}

func itFreePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// gatedRepo holds a dump's stream until the test opens the gate, so the
// test can look at the processes while the dump runs.
type gatedRepo struct {
	*storage.Repository
	started chan struct{} // closed at the dump's first bytes
	gate    chan struct{} // the dump goes on once it is closed
}

func (g *gatedRepo) hold() {
	g.started, g.gate = make(chan struct{}), make(chan struct{})
}

func (g *gatedRepo) Store(ctx context.Context, meta storage.Meta, payload io.Reader) (*storage.StoreResult, error) {
	if g.gate != nil {
		payload = &gatedReader{r: payload, g: g}
	}
	return g.Repository.Store(ctx, meta, payload)
}

type gatedReader struct {
	r     io.Reader
	g     *gatedRepo
	first bool
}

func (r *gatedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if !r.first {
		r.first = true
		close(r.g.started)
		<-r.g.gate
	}
	return n, err
}

func (f *itFixture) db(t *testing.T) *minions.RunningDatabase {
	t.Helper()
	db, err := f.e.Database(context.Background(), f.minion)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func (f *itFixture) psql(t *testing.T, sql string) string {
	t.Helper()
	db := f.db(t)
	out, code := f.d.Exec(t, db.ContainerID, nil, "psql", "-v", "ON_ERROR_STOP=1", "-U", db.User, "-d", db.Name, "-tAc", sql)
	if code != 0 {
		t.Fatalf("psql %q: exit %d: %s", sql, code, out)
	}
	return strings.TrimSpace(out)
}

// checksums is every table's row count and content hash.
func (f *itFixture) checksums(t *testing.T) string {
	t.Helper()
	tables := strings.Fields(f.psql(t, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"))
	sort.Strings(tables)
	var out []string
	for _, tb := range tables {
		out = append(out, tb+": "+f.psql(t, "SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '-') FROM "+tb+" t"))
	}
	return strings.Join(out, "\n")
}

func (f *itFixture) backups(t *testing.T) []string {
	t.Helper()
	list, errs := f.repo.List(context.Background(), f.minion)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var ids []string
	for _, b := range list {
		ids = append(ids, b.Manifest.ID)
	}
	return ids
}

func TestPostgresDumpAndRestoreRoundTrip(t *testing.T) {
	f := newITFixture(t, "testmin")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f.psql(t, `CREATE TABLE people (id int PRIMARY KEY, name text, born date);
		INSERT INTO people SELECT i, 'person ' || i, date '1970-01-01' + i FROM generate_series(1, 500) i;
		CREATE TABLE notes (id serial PRIMARY KEY, person int REFERENCES people, body text);
		INSERT INTO notes (person, body) SELECT 1 + i % 500, repeat(md5(i::text), 3) FROM generate_series(1, 2000) i;`)
	want := f.checksums(t)

	res, err := f.s.Dump(ctx, f.minion, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := res.Manifest.ID

	f.psql(t, `UPDATE people SET name = 'changed' WHERE id < 100; DELETE FROM notes WHERE id % 3 = 0;
		DELETE FROM people WHERE id > 400 AND NOT EXISTS (SELECT 1 FROM notes WHERE person = people.id);
		CREATE TABLE IF NOT EXISTS extra (x int); INSERT INTO notes (person, body) VALUES (1, 'new');`)
	changed := f.checksums(t)
	if changed == want {
		t.Fatal("the changes changed nothing")
	}

	var steps []string
	rr, err := f.s.Restore(ctx, f.minion, id, func(s string) { steps = append(steps, s) })
	if err != nil {
		t.Fatalf("restore: %v\nprogress:\n%s", err, strings.Join(steps, "\n"))
	}
	// A table made after the dump stays (pg_restore --clean drops only
	// what the dump holds); every table of the dump is as it was.
	got := withoutTable(f.checksums(t), "extra")
	if got != want {
		t.Errorf("after the restore:\n%s\nwant:\n%s", got, want)
	}
	if ids := f.backups(t); len(ids) != 2 || !contains(ids, rr.SafetyID) {
		t.Errorf("backups %q, want the dump and the safety dump %s", ids, rr.SafetyID)
	}
	t.Logf("restore progress:\n%s", strings.Join(steps, "\n"))

	// The safety dump holds the changed data: restoring it undoes the restore.
	if _, err := f.s.Restore(ctx, f.minion, rr.SafetyID, nil); err != nil {
		t.Fatal(err)
	}
	if got := f.checksums(t); got != changed {
		t.Errorf("after restoring the safety dump:\n%s\nwant:\n%s", got, changed)
	}
}

func TestPostgresRestoreOfADamagedBackupTouchesNothing(t *testing.T) {
	f := newITFixture(t, "testmin")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f.psql(t, `CREATE TABLE t (id int, v text); INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 1000) i;`)
	res, err := f.s.Dump(ctx, f.minion, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(f.dir, res.Manifest.ID, res.Manifest.DataFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x01
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	f.psql(t, `DELETE FROM t WHERE id > 10`)
	before := f.checksums(t)
	web := f.webStartedAt(t)

	_, err = f.s.Restore(ctx, f.minion, res.Manifest.ID, nil)
	var re *maintenance.RestoreError
	if !errors.As(err, &re) || re.Touched || !strings.Contains(err.Error(), "is damaged") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	if got := f.checksums(t); got != before {
		t.Errorf("the data changed:\n%s\nwas:\n%s", got, before)
	}
	if ids := f.backups(t); len(ids) != 1 {
		t.Errorf("backups %q: a safety dump was taken for a refused restore", ids)
	}
	if f.webStartedAt(t) != web {
		t.Error("the app was restarted")
	}
}

func (f *itFixture) webStartedAt(t *testing.T) string {
	t.Helper()
	for _, c := range f.d.Containers(t, f.minion) {
		if c.Labels[minions.LabelRole] == minions.RoleWeb {
			in, err := f.d.Client.ContainerInspect(context.Background(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			return in.State.StartedAt
		}
	}
	t.Fatal("no web container")
	return ""
}

// While a dump runs, no process shows the password in its arguments: not
// on the host, not in the container. Then the database is killed mid-dump,
// and nothing is stored.
func TestPostgresDumpKeepsThePasswordOffCommandLines(t *testing.T) {
	f := newITFixture(t, "testmin")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Enough data that pg_dump blocks on its output while the test looks.
	f.psql(t, `CREATE TABLE big AS SELECT i, repeat(md5(i::text), 4) AS v FROM generate_series(1, 100000) i;`)
	db := f.db(t)
	if len(db.Password) < 16 {
		t.Fatalf("no password to look for")
	}

	for _, kill := range []bool{false, true} {
		f.gated.hold()
		done := make(chan error, 1)
		go func() {
			_, err := f.s.Dump(ctx, f.minion, nil)
			done <- err
		}()
		select {
		case <-f.gated.started:
		case err := <-done:
			t.Fatalf("the dump ended before the test could look: %v", err)
		}
		if !kill {
			hostSawDump := scanHost(t, db.Password)
			inside, code := f.d.Exec(t, db.ContainerID, nil, "sh", "-c", `for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < "$f"; echo; done`)
			if code != 0 {
				t.Fatalf("listing the container's processes: %s", inside)
			}
			if strings.Contains(inside, db.Password) {
				t.Errorf("a process in the container shows the password")
			}
			if !strings.Contains(inside, "pg_dump -Fc -Z0") || !hostSawDump {
				t.Errorf("pg_dump was not running while the test looked (host saw it: %v); the container had:\n%s", hostSawDump, inside)
			}
			close(f.gated.gate)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := f.d.Client.ContainerKill(ctx, db.ContainerID, "KILL"); err != nil {
			t.Fatal(err)
		}
		close(f.gated.gate)
		err := <-done
		var de *maintenance.DumpError
		if !errors.As(err, &de) || strings.Contains(err.Error(), db.Password) {
			t.Fatalf("a dump whose database was killed: %v", err)
		}
		t.Logf("killed mid-dump: %v", err)
	}
	if ids := f.backups(t); len(ids) != 1 {
		t.Errorf("backups %q, want only the dump that worked", ids)
	}
	if st, err := f.d.Client.ContainerInspect(ctx, db.ContainerID); err == nil && st.State.Status == container.StateRunning {
		t.Log("the database was restarted by its policy")
	}
}

// scanHost reads every process's arguments on the host; it reports
// whether pg_dump was among them.
func scanHost(t *testing.T, password string) bool {
	t.Helper()
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	saw := false
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended
		}
		if bytes.Contains(b, []byte(password)) {
			t.Errorf("%s shows the password", p)
		}
		if bytes.HasPrefix(b, []byte("pg_dump\x00")) {
			saw = true
		}
	}
	return saw
}

func withoutTable(sums, table string) string {
	var keep []string
	for _, l := range strings.Split(sums, "\n") {
		if !strings.HasPrefix(l, table+": ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mariadb runs SQL in testmaria's database, the password in the
// environment as the dumper passes it.
func (f *itFixture) mariadb(t *testing.T, sql string) string {
	t.Helper()
	db := f.db(t)
	out, code := f.d.Exec(t, db.ContainerID, []string{"MYSQL_PWD=" + db.Password}, "mariadb", "-N", "-B", "--user="+db.User, db.Name, "-e", sql)
	if code != 0 {
		t.Fatalf("mariadb %q: exit %d: %s", sql, code, out)
	}
	return strings.TrimSpace(out)
}

func (f *itFixture) mariadbChecksums(t *testing.T) string {
	t.Helper()
	return f.mariadb(t, `SET SESSION group_concat_max_len = 100000000;
		SELECT 'people', COUNT(*), COALESCE(MD5(GROUP_CONCAT(CONCAT_WS('|', id, name, born) ORDER BY id SEPARATOR ',')), '-') FROM people;
		SELECT 'notes', COUNT(*), COALESCE(MD5(GROUP_CONCAT(CONCAT_WS('|', id, person, body) ORDER BY id SEPARATOR ',')), '-') FROM notes;`)
}

func TestMariaDBDumpAndRestoreRoundTrip(t *testing.T) {
	f := newITFixture(t, "testmaria")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f.mariadb(t, `CREATE TABLE people (id INT PRIMARY KEY, name TEXT, born DATE);
		INSERT INTO people SELECT seq, CONCAT('person ', seq), DATE_ADD('1970-01-01', INTERVAL seq DAY) FROM seq_1_to_500;
		CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, person INT, body TEXT, FOREIGN KEY (person) REFERENCES people(id));
		INSERT INTO notes (person, body) SELECT 1 + seq % 500, REPEAT(MD5(seq), 3) FROM seq_1_to_2000;
		CREATE TRIGGER notes_body BEFORE INSERT ON notes FOR EACH ROW SET NEW.body = TRIM(NEW.body);`)
	want := f.mariadbChecksums(t)

	res, err := f.s.Dump(ctx, f.minion, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.mariadb(t, `UPDATE people SET name = 'changed' WHERE id < 100; DELETE FROM notes WHERE id % 3 = 0;
		INSERT INTO notes (person, body) VALUES (1, 'new'); DROP TRIGGER notes_body;`)
	if f.mariadbChecksums(t) == want {
		t.Fatal("the changes changed nothing")
	}
	rr, err := f.s.Restore(ctx, f.minion, res.Manifest.ID, nil)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := f.mariadbChecksums(t); got != want {
		t.Errorf("after the restore:\n%s\nwant:\n%s", got, want)
	}
	if trig := f.mariadb(t, `SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE()`); trig != "1" {
		t.Errorf("the trigger was not restored: %s", trig)
	}
	if ids := f.backups(t); len(ids) != 2 || !contains(ids, rr.SafetyID) {
		t.Errorf("backups %q, want the dump and the safety dump %s", ids, rr.SafetyID)
	}
}
