package maintenance_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"

	"github.com/summoner-bot/summoner/maintenance"
)

// Test restores on the real engine: a good dump of each kind verifies
// with the rows it was dumped with, a dump with one flipped byte fails
// loudly, and no throwaway container or network is left either way.

type verifyKind struct {
	minion string
	// fill writes known data; want is what the counts must say.
	fill func(t *testing.T, f *itFixture)
	want map[string]int64
}

var verifyKinds = []verifyKind{
	{
		minion: "testmin",
		fill: func(t *testing.T, f *itFixture) {
			f.psql(t, `CREATE TABLE people (id int PRIMARY KEY, name text);
				INSERT INTO people SELECT i, 'person ' || i FROM generate_series(1, 500) i;
				CREATE TABLE notes (id serial PRIMARY KEY, person int REFERENCES people, body text);
				INSERT INTO notes (person, body) SELECT 1 + i % 500, md5(i::text) FROM generate_series(1, 2000) i;
				CREATE SCHEMA audit; CREATE TABLE audit.log (at timestamptz DEFAULT now()); INSERT INTO audit.log DEFAULT VALUES;
				CREATE TABLE empty (x int);`)
		},
		want: map[string]int64{"people": 500, "notes": 2000, "audit.log": 1, "empty": 0},
	},
	{
		minion: "testmaria",
		fill: func(t *testing.T, f *itFixture) {
			f.mariadb(t, "CREATE TABLE people (id INT PRIMARY KEY, name TEXT);"+
				"INSERT INTO people SELECT seq, CONCAT('person ', seq) FROM seq_1_to_500;"+
				"CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, person INT, body TEXT, FOREIGN KEY (person) REFERENCES people(id));"+
				"INSERT INTO notes (person, body) SELECT 1 + seq % 500, MD5(seq) FROM seq_1_to_2000;"+
				"CREATE TABLE `odd name` (x INT); CREATE TABLE empty (x INT); INSERT INTO `odd name` VALUES (1), (2), (3);")
		},
		want: map[string]int64{"people": 500, "notes": 2000, "odd name": 3, "empty": 0},
	},
	{
		minion: "testmongo",
		fill: func(t *testing.T, f *itFixture) {
			db := f.db(t)
			for coll, n := range map[string]int{"people": 50, "notes": 120} {
				docs := make([]string, n)
				for i := range docs {
					docs[i] = fmt.Sprintf(`{"_id": %d, "body": "%s %d"}`, i+1, coll, i+1)
				}
				if out, code := f.d.Exec(t, db.ContainerID, nil, append([]string{"mongojson", "insert", "appdb", coll}, docs...)...); code != 0 {
					t.Fatalf("inserting into %s: %s", coll, out)
				}
			}
		},
		want: map[string]int64{"people": 50, "notes": 120},
	},
}

func TestVerifyRestoreOnTheRealEngine(t *testing.T) {
	for _, k := range verifyKinds {
		t.Run(k.minion, func(t *testing.T) {
			f := newITFixture(t, k.minion)
			t.Cleanup(func() { removeThrowaways(t, f) })
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
			defer cancel()
			k.fill(t, f)

			good, err := f.s.Dump(ctx, f.minion, nil)
			if err != nil {
				t.Fatal(err)
			}
			if k.minion != "testmongo" && fmt.Sprint(good.Manifest.Counts) != fmt.Sprint(k.want) {
				t.Errorf("the dump recorded %v, want %v", good.Manifest.Counts, k.want)
			}

			var steps []string
			res, err := f.s.VerifyRestore(ctx, f.minion, "", func(s string) { steps = append(steps, s) })
			if err != nil {
				t.Fatalf("a good dump failed its test restore: %v\nprogress:\n%s", err, strings.Join(steps, "\n"))
			}
			found := map[string]int64{}
			for _, c := range res.Checks {
				found[c.Name] = c.Found
			}
			if res.BackupID != good.Manifest.ID || fmt.Sprint(found) != fmt.Sprint(k.want) || len(res.Failed()) > 0 {
				t.Errorf("result %+v, found %v, want %v", res, found, k.want)
			}
			t.Logf("report:\n%s\nprogress:\n%s", res.Text(), strings.Join(steps, "\n"))
			noThrowawaysLeft(t, f)

			bad, err := f.s.Dump(ctx, f.minion, nil)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, f.dir, bad.Manifest.ID)
			_, err = f.s.VerifyRestore(ctx, f.minion, bad.Manifest.ID, nil)
			var ve *maintenance.VerifyError
			if !errors.As(err, &ve) || ve.Check != maintenance.CheckChecksum || ve.BackupID != bad.Manifest.ID {
				t.Fatalf("a damaged dump: err = %v, want a failure at %q", err, maintenance.CheckChecksum)
			}
			t.Logf("damaged: %s", ve.UserMessage())
			noThrowawaysLeft(t, f)
		})
	}
}

// A count that differs from the recorded one is reported table by table.
func TestVerifyRestoreCountMismatchOnTheRealEngine(t *testing.T) {
	f := newITFixture(t, "testmin")
	t.Cleanup(func() { removeThrowaways(t, f) })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	verifyKinds[0].fill(t, f)
	if _, err := f.s.Dump(ctx, f.minion, nil); err != nil {
		t.Fatal(err)
	}
	list, errs := f.repo.List(ctx, f.minion)
	if len(errs) > 0 || len(list) != 1 {
		t.Fatal(list, errs)
	}
	m := list[0].Manifest
	m.Counts["people"] = 501 // as if the dump had lost a row
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, m.ID, "manifest.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}

	_, err = f.s.VerifyRestore(ctx, f.minion, m.ID, nil)
	var ve *maintenance.VerifyError
	if !errors.As(err, &ve) || ve.Check != maintenance.CheckCounts || !strings.Contains(err.Error(), "| people | 501 | 500 | ❌ |") {
		t.Fatalf("err = %v, want a count mismatch on people", err)
	}
	noThrowawaysLeft(t, f)
}

func throwawayFilter(f *itFixture) filters.Args {
	return filters.NewArgs(filters.Arg("label", maintenance.LabelVerify+"="+f.minion))
}

func noThrowawaysLeft(t *testing.T, f *itFixture) {
	t.Helper()
	ctx := context.Background()
	cs, err := f.d.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: throwawayFilter(f)})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := f.d.Client.NetworkList(ctx, network.ListOptions{Filters: throwawayFilter(f)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		t.Errorf("throwaway container left: %v", c.Names)
	}
	for _, n := range ns {
		t.Errorf("throwaway network left: %s", n.Name)
	}
}

// removeThrowaways cleans up after a failed test, so the next run starts clean.
func removeThrowaways(t *testing.T, f *itFixture) {
	ctx := context.Background()
	cs, _ := f.d.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: throwawayFilter(f)})
	for _, c := range cs {
		_ = f.d.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	}
	_, _ = f.d.Client.NetworksPrune(ctx, throwawayFilter(f))
}
