package maintenance_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// mongo runs the test image's mongojson tool in the database container.
func (f *itFixture) mongo(t *testing.T, args ...string) string {
	t.Helper()
	out, code := f.d.Exec(t, f.db(t).ContainerID, nil, append([]string{"mongojson"}, args...)...)
	if code != 0 {
		t.Fatalf("mongojson %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return strings.TrimSpace(out)
}

// TestMongoDumpAndRestoreRoundTrip: a MongoDB-compatible server (FerretDB)
// with the real mongodump and mongorestore: every document comes back.
func TestMongoDumpAndRestoreRoundTrip(t *testing.T) {
	f := newITFixture(t, "testmongo")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var docs []string
	for i := range 300 {
		docs = append(docs, fmt.Sprintf(`{"_id":%d,"title":"card %d","lane":%d}`, i, i, i%7))
	}
	f.mongo(t, append([]string{"insert", "appdb", "cards"}, docs...)...)
	f.mongo(t, "insert", "appdb", "boards", `{"_id":"b1","name":"ops"}`, `{"_id":"b2","name":"dev"}`)
	want := f.mongo(t, "dump", "appdb")

	res, err := f.s.Dump(ctx, f.minion, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.mongo(t, "run", "appdb", `{"delete":"cards","deletes":[{"q":{"lane":3},"limit":0}]}`)
	f.mongo(t, "insert", "appdb", "boards", `{"_id":"b3","name":"new"}`)
	if f.mongo(t, "dump", "appdb") == want {
		t.Fatal("the changes changed nothing")
	}
	rr, err := f.s.Restore(ctx, f.minion, res.Manifest.ID, nil)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := f.mongo(t, "dump", "appdb"); got != want {
		t.Errorf("after the restore the documents differ (%d lines, want %d)", strings.Count(got, "\n"), strings.Count(want, "\n"))
	}
	if ids := f.backups(t); len(ids) != 2 || !contains(ids, rr.SafetyID) {
		t.Errorf("backups %q, want the dump and the safety dump %s", ids, rr.SafetyID)
	}
}
