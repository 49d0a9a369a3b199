package notifications

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
