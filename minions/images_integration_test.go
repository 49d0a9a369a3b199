package minions_test

// Integration tests of the database test images that .ci/docker.sh builds
// (mariadb:10.11.9, mongo:6.0.18 and testapp:1.3-migrates): each works
// through the engine as the catalog's images would, with the dump and
// restore tools the maintenance tests will need.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/minions"
)

// imageFixture is an engine over the test minions for one of them, with
// its own folders and port.
type imageFixture struct {
	d      *dockertest.Env
	e      *minions.Engine
	minion string
	dir    string
	port   string
}

func newImageFixture(t *testing.T, minion string) *imageFixture {
	t.Helper()
	d := dockertest.Require(t)
	d.RemoveMinion(t, minion)
	t.Cleanup(func() { d.RemoveMinion(t, minion) })
	cat, err := minions.LoadCatalog("testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	f := &imageFixture{d: d, minion: minion, dir: t.TempDir(), port: freePort(t)}
	f.e = minions.NewEngine(d.Client, cat, minions.EngineOptions{
		Domain: "it.summoner.test", VSRoot: filepath.Join(f.dir, "volumes"), DBSRoot: filepath.Join(f.dir, "databases"),
		Mirror: minions.Mirror{Registry: d.Registry},
		State:  &minions.StateStore{Dir: filepath.Join(f.dir, "state")},
	})
	return f
}

// summon brings the minion up and checks both of its containers run and
// are healthy; it returns the database container's ID.
func (f *imageFixture) summon(t *testing.T, dbContainer string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := f.e.Summon(ctx, f.minion, "", map[string]string{"HTTP_PORT": f.port}, nil); err != nil {
		t.Fatalf("summon %s: %v", f.minion, err)
	}
	st, err := f.e.Status(ctx, f.minion)
	if err != nil || len(st) != 1 || len(st[0].Services) != 2 {
		t.Fatalf("status %+v, %v; want one minion with two services", st, err)
	}
	for _, s := range st[0].Services {
		if s.State != "running" || s.Health != "healthy" {
			t.Errorf("%s is %s, health %q; want running and healthy", s.Service, s.State, s.Health)
		}
	}
	id := ""
	for _, c := range f.d.Containers(t, f.minion) {
		if c.Labels["summoner.role"] == "db" {
			if name := strings.TrimPrefix(c.Names[0], "/"); name != dbContainer {
				t.Errorf("the database container is %s, want %s", name, dbContainer)
			}
			id = c.ID
		}
	}
	if id == "" {
		t.Fatal("no database container")
	}
	return id
}

// secret reads a generated setting from the minion's state.
func (f *imageFixture) secret(t *testing.T, name string) string {
	t.Helper()
	st, err := (&minions.StateStore{Dir: filepath.Join(f.dir, "state")}).Load(f.minion)
	if err != nil || st.Secrets[name] == "" {
		t.Fatalf("no generated %s: %v", name, err)
	}
	return st.Secrets[name]
}

// exec runs cmd in the container and fails unless it exits 0.
func (f *imageFixture) exec(t *testing.T, id string, env []string, cmd ...string) string {
	t.Helper()
	out, code := f.d.Exec(t, id, env, cmd...)
	if code != 0 {
		t.Fatalf("%s: exit %d: %s", strings.Join(cmd, " "), code, out)
	}
	return strings.TrimSpace(out)
}

// ownedBy checks the database's data folder was given to the server's user
// (the official images' uid 999) by the image's entrypoint.
func (f *imageFixture) ownedBy(t *testing.T, sub string, uid uint32) {
	t.Helper()
	dir := filepath.Join(f.dir, "databases", f.minion, sub)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Sys().(*syscall.Stat_t).Uid; got != uid {
		t.Errorf("%s belongs to uid %d, want %d (the database server's user)", dir, got, uid)
	}
}

// banish removes the minion with its data and checks nothing is left.
func (f *imageFixture) banish(t *testing.T) {
	t.Helper()
	if err := f.e.Banish(context.Background(), f.minion, true); err != nil {
		t.Fatalf("banish --purge: %v", err)
	}
	if n := len(f.d.Containers(t, f.minion)); n != 0 {
		t.Fatalf("%d containers left after banish --purge", n)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "databases", f.minion)); !os.IsNotExist(err) {
		t.Fatalf("the database folder is still there after --purge: %v", err)
	}
}

func TestMariaDBImage(t *testing.T) {
	f := newImageFixture(t, "testmaria")
	db := f.summon(t, "mariadb-testmaria-it.summoner.test")
	f.ownedBy(t, "mysql", 999)

	// Passwords travel in MYSQL_PWD, never on a command line.
	app := []string{"MYSQL_PWD=" + f.secret(t, "DB_PASSWORD")}
	sql := func(env []string, user, q string) string {
		t.Helper()
		// Over TCP, as the web app and other containers connect.
		return f.exec(t, db, env, "mariadb", "--protocol=tcp", "-h", "127.0.0.1", "-u", user, "--batch", "--skip-column-names", "appdb", "-e", q)
	}
	sql(app, "app", "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'written by the test')")
	if got := sql(app, "app", "SELECT body FROM notes"); got != "written by the test" {
		t.Fatalf("read back %q", got)
	}
	root := []string{"MYSQL_PWD=" + f.secret(t, "DB_ROOT_PASSWORD")}
	if got := sql(root, "root", "SELECT COUNT(*) FROM appdb.notes"); got != "1" {
		t.Fatalf("root counts %q rows", got)
	}
	if out, code := f.d.Exec(t, db, []string{"MYSQL_PWD=wrong"}, "mariadb", "--protocol=tcp", "-h", "127.0.0.1", "-u", "app", "appdb", "-e", "SELECT 1"); code == 0 {
		t.Fatalf("a wrong password was let in: %s", out)
	}

	// Both names of the dump tool, and a dump that restores.
	for _, dump := range []string{"mariadb-dump", "mysqldump"} {
		if out := f.exec(t, db, app, dump, "-u", "app", "--single-transaction", "appdb"); !strings.Contains(out, "INSERT INTO `notes`") || !strings.Contains(out, "(1,'written by the test')") {
			t.Fatalf("%s lacks the row:\n%s", dump, out)
		}
	}
	f.exec(t, db, app, "sh", "-c", `mysqldump -u app --single-transaction appdb >/tmp/appdb.sql &&
		mysql -u app appdb -e 'DROP TABLE notes' && mysql -u app appdb </tmp/appdb.sql && rm /tmp/appdb.sql`)
	if got := sql(app, "app", "SELECT body FROM notes"); got != "written by the test" {
		t.Fatalf("after a dump and restore the row is %q", got)
	}
	f.exec(t, db, nil, "healthcheck.sh", "--connect", "--innodb_initialized")
	f.banish(t)
}

func TestMongoImage(t *testing.T) {
	f := newImageFixture(t, "testmongo")
	db := f.summon(t, "mongodb-testmongo-it.summoner.test")
	f.ownedBy(t, "mongodb", 999)

	// mongojson logs in as MONGO_INITDB_ROOT_USERNAME, from the container's
	// environment.
	// The catalog's wekan checks its database's health so.
	f.exec(t, db, nil, "mongosh", "--quiet", "--eval", "db.runCommand({ping:1})")
	f.exec(t, db, nil, "mongojson", "insert", "appdb", "notes", `{"_id": 1, "body": "written by the test"}`, `{"_id": 2, "n": {"$numberLong": "42"}}`)
	if got := f.exec(t, db, nil, "mongojson", "count", "appdb"); got != `{"notes":2}` {
		t.Fatalf("count %s", got)
	}
	if got := f.exec(t, db, nil, "mongojson", "run", "appdb", `{"find": "notes", "filter": {"_id": 1}}`); !strings.Contains(got, `"body":"written by the test"`) {
		t.Fatalf("find answered %s", got)
	}
	before := f.exec(t, db, nil, "mongojson", "dump")
	if !strings.Contains(before, `"document":{"_id":{"$numberInt":"2"},"n":{"$numberLong":"42"}}`) {
		t.Fatalf("dump does not keep types:\n%s", before)
	}
	if out, code := f.d.Exec(t, db, []string{"MONGO_URI=mongodb://127.0.0.1:27017/"}, "mongojson", "count", "appdb"); code == 0 {
		t.Fatalf("the database answered without a login: %s", out)
	}

	// The real tools round-trip the database through an archive. A dump
	// of the one database: admin's users do not restore on this server.
	f.exec(t, db, nil, "sh", "-c", `set -e
		auth="--username=$MONGO_INITDB_ROOT_USERNAME --password=$MONGO_INITDB_ROOT_PASSWORD --authenticationDatabase=admin"
		mongodump $auth --quiet --db=appdb --archive=/tmp/appdb.gz --gzip
		mongojson run appdb '{"dropDatabase": 1}'
		mongorestore $auth --quiet --drop --archive=/tmp/appdb.gz --gzip
		rm /tmp/appdb.gz`)
	if after := f.exec(t, db, nil, "mongojson", "dump"); after != before {
		t.Fatalf("after mongodump and mongorestore the documents are\n%s\nwant\n%s", after, before)
	}
	f.banish(t)
}

// The bad release for the "updates roll back data" tests migrates
// testmin's database, then exits 1. Run beside a summoned testmin, on its
// network, as the engine would run it.
func TestMigratingTestappImage(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.summon(t, "1.0")
	f.psql(t, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('written by 1.0')")

	image := f.d.Registry + "/summoner/testapp:1.3-migrates"
	url := "postgres://app:" + secret(t, f) + "@db:5432/appdb"
	c, err := f.d.Client.ContainerCreate(ctx,
		&container.Config{Image: image, Env: []string{"DATABASE_URL=" + url}, Labels: map[string]string{"summoner.minion": testMinion, "summoner.test": "1"}},
		&container.HostConfig{},
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{testMinion + "_default": {}}},
		nil, "testmin-migrates-it.summoner.test")
	if err != nil {
		t.Fatalf("creating a container of %s (built by .ci/docker.sh images?): %v", image, err)
	}
	t.Cleanup(func() {
		_ = f.d.Client.ContainerRemove(context.Background(), c.ID, container.RemoveOptions{Force: true})
	})
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := f.d.Client.ContainerStart(wctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := f.d.Client.ContainerWait(wctx, c.ID, container.WaitConditionNotRunning)
	select {
	case w := <-waitC:
		if w.StatusCode != 1 {
			t.Fatalf("the migrating app exited %d, want 1", w.StatusCode)
		}
	case err := <-errC:
		t.Fatalf("waiting for the migrating app: %v", err)
	}
	if got := f.psql(t, "SELECT note FROM migrated_v13"); got != "migrated by testapp 1.3" {
		t.Fatalf("migrated_v13 holds %q", got)
	}
	if got := f.psql(t, "SELECT body FROM notes"); got != "migrated by 1.3" {
		t.Fatalf("the note is %q after the migration", got)
	}
}
