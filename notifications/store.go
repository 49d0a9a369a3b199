package notifications

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// KeepSeen is how long the ID of a delivered event is remembered, so that
// a provider's late retry is still recognised as a replay.
const KeepSeen = 7 * 24 * time.Hour

var (
	bucketEvents = []byte("events") // seq (big-endian) -> Event, accepted and not done
	bucketSeen   = []byte("seen")   // event ID -> seen record
)

// seen is what the store remembers of every event ID it accepted.
type seen struct {
	Seq      uint64 `json:"seq"`
	Accepted int64  `json:"accepted"` // Unix ms
	Done     int64  `json:"done,omitempty"`
}

// Store persists accepted events (one bbolt file) until they are done, and
// remembers their IDs for KeepSeen so replays are dropped. It is safe for
// concurrent use.
type Store struct {
	db  *bolt.DB
	log *slog.Logger
	now func() time.Time

	reqs      chan acceptReq
	quit      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the committer has returned
	closeOnce sync.Once
}

// OpenStore opens or creates the store at path.
func OpenStore(path string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating the folder of the event store: %w", err)
	}
	// InitialMmapSize: a store that grows under a burst is not re-mapped
	// (which blocks every reader and writer) until it passes 64 MiB; the
	// file itself still grows only as needed. NoGrowSync stays off: on
	// ext4, skipping the fsync after growing the file is not safe.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true,
		FreelistType: bolt.FreelistMapType, InitialMmapSize: 64 << 20})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("event store %s is in use by another summoner process", path)
		}
		return nil, fmt.Errorf("opening the event store %s: %w", path, err)
	}
	s := &Store{db: db, log: log, now: time.Now,
		reqs: make(chan acceptReq, maxGroup), quit: make(chan struct{}), stopped: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketSeen} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return s.prune(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing the event store %s: %w", path, err)
	}
	go s.committer()
	return s, nil
}

// Close stops accepting, waits for the commit in progress, and closes the
// file. Accept calls still queued fail, so their callers answer no 2xx and
// the provider retries.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.stopped
		err = s.db.Close()
	})
	return err
}

// Accept stores ev durably (the write is synced before it returns) unless
// its ID was seen before, in which case fresh is false and nothing changes.
// Concurrent calls share one commit: while one fsync runs, the next calls
// queue and are written together (group commit), so the fsync cost is paid
// once per group, not once per webhook, without waiting on a timer.
func (s *Store) Accept(ev Event) (fresh bool, err error) {
	if ev.ID == "" {
		return false, errors.New("accepting an event: no ID")
	}
	v, err := json.Marshal(ev)
	if err != nil {
		return false, fmt.Errorf("encoding event %s: %w", ev.ID, err)
	}
	r := acceptReq{id: []byte(ev.ID), v: v, res: make(chan acceptRes, 1)}
	select {
	case s.reqs <- r:
	case <-s.quit:
		return false, fmt.Errorf("storing event %s: the store is closed", ev.ID)
	}
	var res acceptRes
	select {
	case res = <-r.res:
	case <-s.stopped:
		// The committer answers before it stops: look once more.
		select {
		case res = <-r.res:
		default:
			res.err = errors.New("the store is closed")
		}
	}
	if res.err != nil {
		return false, fmt.Errorf("storing event %s: %w", ev.ID, res.err)
	}
	return res.fresh, nil
}

type acceptReq struct {
	id, v []byte
	res   chan acceptRes
}

type acceptRes struct {
	fresh bool
	err   error
}

// maxGroup bounds one commit, so a flood cannot make one transaction huge.
const maxGroup = 512

// committer writes queued Accepts, each group in one transaction.
func (s *Store) committer() {
	defer close(s.stopped)
	for {
		var group []acceptReq
		select {
		case r := <-s.reqs:
			group = append(group, r)
		case <-s.quit:
			return
		}
	gather:
		for len(group) < maxGroup {
			select {
			case r := <-s.reqs:
				group = append(group, r)
			default:
				break gather
			}
		}
		fresh := make([]bool, len(group))
		err := s.db.Update(func(tx *bolt.Tx) error {
			clear(fresh)
			ids, evs := tx.Bucket(bucketSeen), tx.Bucket(bucketEvents)
			now := s.now().UnixMilli()
			for i, r := range group {
				// Seen before, or earlier in this same group.
				if ids.Get(r.id) != nil {
					continue
				}
				seq, err := evs.NextSequence()
				if err != nil {
					return err
				}
				rec, err := json.Marshal(seen{Seq: seq, Accepted: now})
				if err != nil {
					return err
				}
				if err := ids.Put(r.id, rec); err != nil {
					return err
				}
				if err := evs.Put(seqKey(seq), r.v); err != nil {
					return err
				}
				fresh[i] = true
			}
			return nil
		})
		for i, r := range group {
			r.res <- acceptRes{fresh: fresh[i] && err == nil, err: err}
		}
	}
}

// Pending lists the events accepted and not yet done, in the order they
// were accepted.
func (s *Store) Pending() ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				// One damaged record must not hide the others.
				s.log.Error("skipping an unreadable stored event", "key", binary.BigEndian.Uint64(k), "err", err)
				return nil
			}
			out = append(out, ev)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing pending events: %w", err)
	}
	return out, nil
}

// Done records that the event with this ID was handled: it leaves Pending,
// and its ID is still remembered for KeepSeen. Unknown IDs are no error.
func (s *Store) Done(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketSeen)
		v := ids.Get([]byte(id))
		if v == nil {
			return nil
		}
		var r seen
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if r.Done != 0 {
			return nil
		}
		if err := tx.Bucket(bucketEvents).Delete(seqKey(r.Seq)); err != nil {
			return err
		}
		r.Done = s.now().UnixMilli()
		rec, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return ids.Put([]byte(id), rec)
	})
	if err != nil {
		return fmt.Errorf("marking event %s done: %w", id, err)
	}
	return nil
}

// Prune forgets the IDs of events done more than KeepSeen ago; OpenStore
// calls it, a long-running daemon may call it daily.
func (s *Store) Prune() error {
	if err := s.db.Update(s.prune); err != nil {
		return fmt.Errorf("pruning the event store: %w", err)
	}
	return nil
}

func (s *Store) prune(tx *bolt.Tx) error {
	limit := s.now().Add(-KeepSeen).UnixMilli()
	ids := tx.Bucket(bucketSeen)
	var old [][]byte
	err := ids.ForEach(func(k, v []byte) error {
		var r seen
		// Pending events are never forgotten; only done ones age out.
		if json.Unmarshal(v, &r) == nil && r.Done != 0 && r.Done < limit {
			old = append(old, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Deleting while iterating would skip keys: delete afterwards.
	for _, k := range old {
		if err := ids.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func seqKey(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}
