package maintenance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/maintenance"
)

// TestADumpThatFailsHalfwayStoresNothing: mariadb-dump writes the tables,
// then fails on a view whose table is gone and exits non-zero. What it
// wrote is not a backup: nothing is stored, and the tool's words are in
// the error.
func TestADumpThatFailsHalfwayStoresNothing(t *testing.T) {
	f := newITFixture(t, "testmaria")
	f.mariadb(t, `CREATE TABLE people (id INT PRIMARY KEY, name TEXT);
		INSERT INTO people SELECT seq, CONCAT('person ', seq) FROM seq_1_to_5000;
		CREATE TABLE gone (x INT);
		CREATE VIEW zz_broken AS SELECT x FROM gone;
		DROP TABLE gone;`)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err := f.s.Dump(ctx, f.minion, nil)
	var de *maintenance.DumpError
	if !errors.As(err, &de) {
		t.Fatalf("dump: %v (%T), want a *DumpError", err, err)
	}
	msg := de.UserMessage()
	for _, w := range []string{"exited with code", "zz_broken"} {
		if !strings.Contains(msg, w) {
			t.Errorf("the message lacks %q:\n%s", w, msg)
		}
	}
	if strings.Contains(msg, f.db(t).Password) {
		t.Error("the message shows the password")
	}
	if ids := f.backups(t); len(ids) != 0 {
		t.Fatalf("a dump that failed halfway was stored: %q", ids)
	}
	t.Logf("%s", msg)
}
