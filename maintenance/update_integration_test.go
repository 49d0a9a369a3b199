package maintenance_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/maintenance"
)

// TestFailedUpdateGetsItsDataBack: a new version that migrates the
// database and then fails its health check is rolled back with the data as
// they were: the old image runs again, on the dump taken before the update.
func TestFailedUpdateGetsItsDataBack(t *testing.T) {
	f := newITFixture(t, "testmin")
	f.psql(t, `CREATE TABLE notes (id int PRIMARY KEY, body text);
		INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 200) i;`)
	want := f.checksums(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var (
		mu    sync.Mutex // the engine reports from several goroutines
		steps []string
	)
	res, err := f.s.Update(ctx, f.e, f.minion, "1.3-migrates", true, func(s string) {
		mu.Lock()
		steps = append(steps, s)
		mu.Unlock()
	})
	var se *maintenance.SafeUpdateError
	if !errors.As(err, &se) || res == nil || !res.DataRestored || res.Dump == "" {
		t.Fatalf("update: %+v, %v\nprogress:\n%s", res, err, strings.Join(steps, "\n"))
	}
	for _, w := range []string{"rolled it back to 1.0", "Its data were put back from the dump taken just before the update (" + res.Dump + ")", "config error after migrating"} {
		if !strings.Contains(se.UserMessage(), w) {
			t.Errorf("the message lacks %q:\n%s", w, se.UserMessage())
		}
	}
	// The dump's tables are as before; a table the new version created
	// stays (pg_restore --clean drops what the dump holds) but is empty of
	// meaning to the old version.
	if got := withoutTable(f.checksums(t), "migrated_v13"); got != want {
		t.Errorf("after the rollback the data are:\n%s\nwant:\n%s", got, want)
	}
	st, err := f.e.Status(ctx, f.minion)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st[0].Services {
		if s.State != "running" || (s.Service == "web" && s.Image != "summoner/testapp:1.0") {
			t.Errorf("after the rollback %s is %s with %s", s.Service, s.State, s.Image)
		}
	}
	t.Logf("progress:\n%s", strings.Join(steps, "\n"))
}
