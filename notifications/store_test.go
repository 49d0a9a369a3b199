package notifications

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := OpenStore(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ids(t *testing.T, s *Store) []string {
	t.Helper()
	evs, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, e.ID)
	}
	return out
}

func TestStoreAcceptDoneReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openTestStore(t, path)
	for _, id := range []string{"a", "b", "c"} {
		fresh, err := s.Accept(Event{ID: id, Title: "t-" + id})
		if err != nil || !fresh {
			t.Fatalf("Accept(%s) = %v, %v", id, fresh, err)
		}
	}
	if fresh, err := s.Accept(Event{ID: "b"}); err != nil || fresh {
		t.Fatalf("replay of b: fresh=%v err=%v", fresh, err)
	}
	if err := s.Done("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Done("nope"); err != nil {
		t.Fatalf("Done of an unknown ID: %v", err)
	}
	if got := fmt.Sprint(ids(t, s)); got != "[a c]" {
		t.Fatalf("pending = %s, want [a c]", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openTestStore(t, path)
	if got := fmt.Sprint(ids(t, s)); got != "[a c]" {
		t.Fatalf("pending after reopen = %s, want [a c]", got)
	}
	for _, id := range []string{"a", "b"} {
		if fresh, err := s.Accept(Event{ID: id}); err != nil || fresh {
			t.Fatalf("replay of %s after reopen: fresh=%v err=%v", id, fresh, err)
		}
	}
	if fresh, _ := s.Accept(Event{ID: "d"}); !fresh {
		t.Fatal("d not fresh")
	}
	if got := fmt.Sprint(ids(t, s)); got != "[a c d]" {
		t.Fatalf("pending = %s, want [a c d] in order", got)
	}
	if _, err := s.Accept(Event{}); err == nil {
		t.Fatal("accepted an event without ID")
	}
}

func TestStoreKeepsDoneIDsSevenDays(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "events.db"))
	now := testNow
	s.now = func() time.Time { return now }
	if _, err := s.Accept(Event{ID: "old"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Accept(Event{ID: "pending"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Done("old"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		after     time.Duration
		oldIsSeen bool
	}{
		{6 * 24 * time.Hour, true},
		{KeepSeen + time.Minute, false},
	} {
		now = testNow.Add(tc.after)
		if err := s.Prune(); err != nil {
			t.Fatal(err)
		}
		// A pending event is never forgotten, however old.
		if fresh, _ := s.Accept(Event{ID: "pending"}); fresh {
			t.Fatalf("after %s: pending event forgotten", tc.after)
		}
		if tc.oldIsSeen {
			if fresh, _ := s.Accept(Event{ID: "old"}); fresh {
				t.Fatalf("after %s: done event forgotten too early", tc.after)
			}
		}
	}
	if fresh, _ := s.Accept(Event{ID: "old"}); !fresh {
		t.Fatal("done event still remembered after KeepSeen")
	}
}

func TestStoreConcurrentAccept(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "events.db"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every ID arrives twice at the same time: exactly one is fresh.
			f, err := s.Accept(Event{ID: fmt.Sprint(i / 2)})
			if err != nil {
				t.Error(err)
			}
			if f {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if fresh != 25 {
		t.Fatalf("fresh = %d, want 25", fresh)
	}
	if n := len(ids(t, s)); n != 25 {
		t.Fatalf("pending = %d, want 25", n)
	}
}

func TestStoreClosedRefusesAccept(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "events.db"))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Racing Close: each call ends, stored or refused, never stuck.
			_, _ = s.Accept(Event{ID: fmt.Sprint(i)})
		}()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := s.Accept(Event{ID: "late"}); err == nil {
		t.Fatal("a closed store accepted an event")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A replay of an event after its Done, and of a still-pending event, is
// dropped after a reopen too: the index is rebuilt from the file.
func TestStoreReplayAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openTestStore(t, path)
	for _, id := range []string{"done", "pending"} {
		if fresh, err := s.Accept(Event{ID: id}); err != nil || !fresh {
			t.Fatalf("Accept(%s) = %v, %v", id, fresh, err)
		}
	}
	if err := s.Done("done"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		s = openTestStore(t, path)
		for _, id := range []string{"done", "pending"} {
			if fresh, err := s.Accept(Event{ID: id, Title: "replay"}); err != nil || fresh {
				t.Fatalf("round %d: replay of %s: fresh=%v err=%v", round, id, fresh, err)
			}
		}
		if got := fmt.Sprint(ids(t, s)); got != "[pending]" {
			t.Fatalf("round %d: pending = %s, want [pending]", round, got)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Done after a reopen finds the pending event's place in the file.
	s = openTestStore(t, path)
	if err := s.Done("pending"); err != nil {
		t.Fatal(err)
	}
	if got := ids(t, s); len(got) != 0 {
		t.Fatalf("pending after Done = %v, want none", got)
	}
	if fresh, _ := s.Accept(Event{ID: "pending"}); fresh {
		t.Fatal("replay after Done accepted as fresh")
	}
	if fresh, _ := s.Accept(Event{ID: "new"}); !fresh {
		t.Fatal("a new event after a reopen not fresh")
	}
}

// Prune forgets the done IDs older than KeepSeen, in memory and on disk,
// and keeps newer done IDs and every pending one.
func TestStorePruneOnlyOldDone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openTestStore(t, path)
	now := testNow
	s.now = func() time.Time { return now }
	for _, id := range []string{"old", "recent", "pending"} {
		if fresh, err := s.Accept(Event{ID: id}); err != nil || !fresh {
			t.Fatalf("Accept(%s) = %v, %v", id, fresh, err)
		}
	}
	if err := s.Done("old"); err != nil {
		t.Fatal(err)
	}
	now = testNow.Add(2 * 24 * time.Hour)
	if err := s.Done("recent"); err != nil {
		t.Fatal(err)
	}
	now = testNow.Add(KeepSeen + time.Hour) // old is past KeepSeen, recent is not
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.known["old"]; ok {
		t.Fatal("old done ID still in memory after Prune")
	}
	for _, id := range []string{"recent", "pending"} {
		if _, ok := s.known[id]; !ok {
			t.Fatalf("%s forgotten in memory by Prune", id)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// On disk: the seen bucket lost old and kept recent.
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSeen)
		if b.Get([]byte("old")) != nil || b.Get([]byte("recent")) == nil {
			return fmt.Errorf("seen bucket: old=%q recent=%q, want old gone and recent kept",
				b.Get([]byte("old")), b.Get([]byte("recent")))
		}
		return nil
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	if fresh, _ := s.Accept(Event{ID: "pending"}); fresh {
		t.Fatal("pending event forgotten")
	}
	if fresh, _ := s.Accept(Event{ID: "old"}); !fresh {
		t.Fatal("old done ID still remembered after Prune")
	}
	if got := fmt.Sprint(ids(t, s)); got != "[pending old]" {
		t.Fatalf("pending = %s, want [pending old]", got)
	}
}

// The same ID many times in one group: exactly one is fresh and one event
// is stored; an ID known from an earlier group is no fresh either.
func TestStoreSameIDInOneGroup(t *testing.T) {
	s := openTestStore(t, filepath.Join(t.TempDir(), "events.db"))
	if fresh, err := s.Accept(Event{ID: "known"}); err != nil || !fresh {
		t.Fatalf("Accept(known) = %v, %v", fresh, err)
	}
	// One group, as the committer would gather it, written directly.
	var group []acceptReq
	for _, id := range []string{"same", "known", "same", "other", "same"} {
		v, err := json.Marshal(Event{ID: id})
		if err != nil {
			t.Fatal(err)
		}
		group = append(group, acceptReq{id: id, v: v})
	}
	fresh, err := s.commit(group)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(fresh); got != "[true false false true false]" {
		t.Fatalf("fresh = %s, want [true false false true false]", got)
	}
	if got := fmt.Sprint(ids(t, s)); got != "[known same other]" {
		t.Fatalf("pending = %s, want [known same other]", got)
	}

	// And through Accept: many concurrent calls with one ID, whichever
	// groups they fall in.
	var wg sync.WaitGroup
	var n atomic.Int32
	for range 64 {
		wg.Go(func() {
			f, err := s.Accept(Event{ID: "burst"})
			if err != nil {
				t.Error(err)
			}
			if f {
				n.Add(1)
			}
		})
	}
	wg.Wait()
	if n.Load() != 1 {
		t.Fatalf("%d of 64 concurrent Accepts of one ID fresh, want 1", n.Load())
	}
	if got := fmt.Sprint(ids(t, s)); got != "[known same other burst]" {
		t.Fatalf("pending = %s, want [known same other burst]", got)
	}
}

// A store written before the in-memory index kept a seen record for every
// pending event too; such a file opens with the same pending events and
// replays, and Done settles them.
func TestStoreOpensOlderLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	accepted := testNow.UnixMilli()
	err = db.Update(func(tx *bolt.Tx) error {
		evs, err := tx.CreateBucket(bucketEvents)
		if err != nil {
			return err
		}
		seenB, err := tx.CreateBucket(bucketSeen)
		if err != nil {
			return err
		}
		for _, id := range []string{"p1", "d1", "p2"} {
			seq, _ := evs.NextSequence()
			r := seen{Seq: seq, Accepted: accepted}
			if id == "d1" {
				r.Done = time.Now().UnixMilli()
			} else {
				v, _ := json.Marshal(Event{ID: id})
				if err := evs.Put(seqKey(seq), v); err != nil {
					return err
				}
			}
			v, _ := json.Marshal(r)
			if err := seenB.Put([]byte(id), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := openTestStore(t, path)
	if got := fmt.Sprint(ids(t, s)); got != "[p1 p2]" {
		t.Fatalf("pending = %s, want [p1 p2]", got)
	}
	for _, id := range []string{"p1", "d1", "p2"} {
		if fresh, _ := s.Accept(Event{ID: id}); fresh {
			t.Fatalf("replay of %s accepted", id)
		}
	}
	if err := s.Done("p1"); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := s.Accept(Event{ID: "p3"}); !fresh {
		t.Fatal("p3 not fresh")
	}
	if got := fmt.Sprint(ids(t, s)); got != "[p2 p3]" {
		t.Fatalf("pending = %s, want [p2 p3]", got)
	}
}

// An event's replay keys mark its replays as its ID does: while pending,
// once done, across a reopen, and until pruned with the ID.
func TestStoreReplayKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	s := openTestStore(t, path)
	now := testNow
	s.now = func() time.Time { return now }
	accept := func(id string, keys ...string) bool {
		t.Helper()
		fresh, err := s.Accept(Event{ID: id}, keys...)
		if err != nil {
			t.Fatal(err)
		}
		return fresh
	}
	if !accept("github:d1", "sha256:body1") {
		t.Fatal("first delivery not fresh")
	}
	for _, tc := range []struct{ id, key string }{
		{"github:d2", "sha256:body1"}, // the same body under a new delivery id
		{"github:d1", "sha256:body2"}, // the same delivery id, another body
		{"sha256:body1", ""},          // the body's hash as an ID (no delivery id)
	} {
		var keys []string
		if tc.key != "" {
			keys = append(keys, tc.key)
		}
		if accept(tc.id, keys...) {
			t.Errorf("%s %v accepted as fresh while github:d1 is pending", tc.id, keys)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	s.now = func() time.Time { return now }
	if accept("github:d3", "sha256:body1") {
		t.Fatal("a pending event's replay key forgotten across a reopen")
	}
	if err := s.Done("github:d1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, path)
	s.now = func() time.Time { return now }
	if accept("github:d4", "sha256:body1") {
		t.Fatal("a done event's replay key forgotten across a reopen")
	}
	if got := fmt.Sprint(ids(t, s)); got != "[]" {
		t.Fatalf("pending = %s, want none", got)
	}
	now = testNow.Add(KeepSeen + time.Hour)
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if len(s.known) != 0 {
		t.Fatalf("after KeepSeen the store still knows %v", s.known)
	}
	if !accept("github:d5", "sha256:body1") {
		t.Fatal("the body's hash still remembered after KeepSeen")
	}
}

// The store forgets old IDs while it runs, not only when it opens.
func TestStorePrunesWhileRunning(t *testing.T) {
	s, err := openStore(filepath.Join(t.TempDir(), "events.db"), nil, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var clock atomic.Int64
	clock.Store(testNow.UnixMilli())
	s.mu.Lock()
	s.now = func() time.Time { return time.UnixMilli(clock.Load()) }
	s.mu.Unlock()
	if _, err := s.Accept(Event{ID: "github:old"}, "sha256:old"); err != nil {
		t.Fatal(err)
	}
	if err := s.Done("github:old"); err != nil {
		t.Fatal(err)
	}
	known := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.known)
	}
	if n := known(); n != 2 {
		t.Fatalf("the store knows %d keys, want 2", n)
	}
	clock.Store(testNow.Add(KeepSeen + time.Minute).UnixMilli())
	deadline := time.Now().Add(30 * time.Second)
	for known() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the running store never pruned the ID and key done past KeepSeen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Close waits for the pruner.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.pruned:
	default:
		t.Fatal("Close returned before the pruner stopped")
	}
}
