package notifications

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// KeepSeen is how long the ID of a delivered event is remembered, so that
// a provider's late retry is still recognised as a replay.
const KeepSeen = 7 * 24 * time.Hour

// pruneEvery is how often a running store forgets the IDs past KeepSeen.
const pruneEvery = time.Hour

var (
	bucketEvents = []byte("events") // seq (big-endian) -> Event, accepted and not done
	bucketSeen   = []byte("seen")   // event ID -> seen record, for done events
)

// seen is the record of a done event's ID in bucket "seen". Stores written
// before the in-memory index also hold records with Done == 0, for events
// still pending; they are read as pending.
type seen struct {
	Seq      uint64 `json:"seq"`
	Accepted int64  `json:"accepted"` // Unix ms
	Done     int64  `json:"done,omitempty"`
}

// Store persists accepted events (one bbolt file) until they are done, and
// remembers their IDs for KeepSeen so replays are dropped. It is safe for
// concurrent use.
//
// The IDs it knows (pending events and events done within KeepSeen) are
// also held in memory, rebuilt from the file at open, so that accepting an
// event writes only the event itself under the next sequence key: a group
// commit then dirties a few B-tree pages at the end of "events" rather
// than one random page per event, and its fsync stays short. The "seen"
// record of an ID is written by Done, off the webhook's 2xx path. The
// index costs some tens of bytes per event of the last KeepSeen.
type Store struct {
	db  *bolt.DB
	log *slog.Logger
	now func() time.Time

	// mu guards known and is held across every write transaction, so the
	// index and the file change together: an ID is in known exactly when
	// its event is in "events" (pending) or its record in "seen" (done).
	mu    sync.Mutex
	known map[string]idState

	// stats count the committer's work, for the benchmark.
	stats struct{ groups, events, busy atomic.Int64 }

	reqs      chan acceptReq
	quit      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the committer has returned
	pruned    chan struct{} // closed when the pruner has returned
	closeOnce sync.Once
}

// idState is what the store knows of one ID: a pending event's sequence
// key, or, once Done, when it was done.
type idState struct {
	seq      uint64
	accepted int64    // Unix ms
	done     int64    // Unix ms; 0 while pending
	also     []string // the event's replay keys, on its ID's entry only
}

// OpenStore opens or creates the store at path. The store prunes itself
// every hour until Close.
func OpenStore(path string, log *slog.Logger) (*Store, error) {
	return openStore(path, log, pruneEvery)
}

func openStore(path string, log *slog.Logger, every time.Duration) (*Store, error) {
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
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("event store %s is in use by another summoner process", path)
		}
		return nil, fmt.Errorf("opening the event store %s: %w", path, err)
	}
	s := &Store{db: db, log: log, now: time.Now, known: map[string]idState{},
		reqs: make(chan acceptReq, maxGroup), quit: make(chan struct{}), stopped: make(chan struct{}), pruned: make(chan struct{})}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEvents, bucketSeen} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return s.load(tx)
	})
	if err == nil {
		err = s.Prune()
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("preparing the event store %s: %w", path, err)
	}
	go s.committer()
	go s.pruner(every)
	return s, nil
}

// pruner forgets old IDs while the bot runs, so a bot that runs for months
// holds only the last KeepSeen of them. Close waits for it.
func (s *Store) pruner(every time.Duration) {
	defer close(s.pruned)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.Prune(); err != nil {
				// The next tick tries again; nothing is lost meanwhile.
				s.log.Error("pruning the event store", "err", err)
			}
		case <-s.quit:
			return
		}
	}
}

// load fills the in-memory index from the file: done IDs from "seen",
// pending ones from "events".
func (s *Store) load(tx *bolt.Tx) error {
	err := tx.Bucket(bucketSeen).ForEach(func(k, v []byte) error {
		var r seen
		if err := json.Unmarshal(v, &r); err != nil {
			s.log.Error("skipping an unreadable seen record", "id", string(k), "err", err)
			return nil
		}
		// Done == 0: an older store's record of a pending event. The scan
		// of "events" below finds the event; should it be missing, the ID
		// is still remembered as the older store did, and Done settles it.
		s.known[string(k)] = idState{seq: r.Seq, accepted: r.Accepted, done: r.Done}
		return nil
	})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
		var ev struct {
			ID       string    `json:"id"`
			Received time.Time `json:"received"`
			Also     []string  `json:"also"`
		}
		head, _ := splitRecord(v)
		if len(k) != 8 || json.Unmarshal(head, &ev) != nil || ev.ID == "" {
			// Pending logs it too; it cannot be told apart from others.
			return nil
		}
		st := s.known[ev.ID]
		if st.seq != binary.BigEndian.Uint64(k) || st.accepted == 0 {
			st.accepted = ev.Received.UnixMilli()
		}
		st.seq, st.done, st.also = binary.BigEndian.Uint64(k), 0, ev.Also
		s.known[ev.ID] = st
		for _, key := range ev.Also {
			s.known[key] = idState{seq: st.seq, accepted: st.accepted}
		}
		return nil
	})
}

// Close stops accepting, waits for the commit in progress, and closes the
// file. Accept calls still queued fail, so their callers answer no 2xx and
// the provider retries.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.stopped
		<-s.pruned
		err = s.db.Close()
	})
	return err
}

// Accept stores ev durably (the write is synced before it returns) unless
// its ID or one of its replay keys (Source.ReplayKeys) was seen before, in
// which case fresh is false and nothing changes. The keys are remembered
// as long as the ID.
// Concurrent calls share one commit: while one fsync runs, the next calls
// queue and are written together (group commit), so the fsync cost is paid
// once per group, not once per webhook, without waiting on a timer.
func (s *Store) Accept(ev Event, replayKeys ...string) (fresh bool, err error) {
	if ev.ID == "" {
		return false, errors.New("accepting an event: no ID")
	}
	v, err := encodeRecord(ev, replayKeys)
	if err != nil {
		return false, fmt.Errorf("encoding event %s: %w", ev.ID, err)
	}
	r := acceptReq{id: ev.ID, also: replayKeys, v: v, res: make(chan acceptRes, 1)}
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
	id   string
	also []string
	v    []byte
	res  chan acceptRes
}

// keys are all the keys that mark r's replays.
func (r acceptReq) keys() []string { return append([]string{r.id}, r.also...) }

type acceptRes struct {
	fresh bool
	err   error
}

// maxGroup bounds one commit, so a flood cannot make one transaction huge.
const maxGroup = 512

// gatherRounds bounds how often the committer yields to let a group grow.
const gatherRounds = 8

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
		s.gather(&group)
		// Let the handlers that are ready to run reach the queue too, and
		// again while they keep coming: a bigger group pays the commit's
		// fixed cost (two fsyncs, page writes, wake-ups) once for more
		// events. This waits on no timer: with nothing else runnable,
		// Gosched returns at once.
		for round := 0; round < gatherRounds && len(group) < maxGroup; round++ {
			runtime.Gosched()
			if !s.gather(&group) {
				break
			}
		}
		start := time.Now()
		fresh, err := s.commit(group)
		s.stats.groups.Add(1)
		s.stats.events.Add(int64(len(group)))
		s.stats.busy.Add(int64(time.Since(start)))
		for i, r := range group {
			r.res <- acceptRes{fresh: fresh[i] && err == nil, err: err}
		}
	}
}

// gather adds the queued Accepts to group, up to maxGroup, and tells
// whether there were any.
func (s *Store) gather(group *[]acceptReq) bool {
	n := len(*group)
	for len(*group) < maxGroup {
		select {
		case r := <-s.reqs:
			*group = append(*group, r)
		default:
			return len(*group) > n
		}
	}
	return len(*group) > n
}

// commit writes the group's new events in one transaction and, once it is
// synced, adds their IDs to the index. fresh[i] tells whether group[i] was
// new; replays, of a known ID or of one earlier in the group, write nothing.
func (s *Store) commit(group []acceptReq) (fresh []bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fresh = make([]bool, len(group))
	seqs := make([]uint64, len(group))
	inGroup := make(map[string]bool, len(group))
	for i, r := range group {
		keys := r.keys()
		if slices.ContainsFunc(keys, func(k string) bool { _, ok := s.known[k]; return ok || inGroup[k] }) {
			continue
		}
		for _, k := range keys {
			inGroup[k] = true
		}
		fresh[i] = true
	}
	if len(inGroup) == 0 {
		return fresh, nil
	}
	now := s.now().UnixMilli()
	err = s.db.Update(func(tx *bolt.Tx) error {
		evs := tx.Bucket(bucketEvents)
		// Keys only ever grow: fill pages before splitting them.
		evs.FillPercent = 1.0
		for i, r := range group {
			if !fresh[i] {
				continue
			}
			seq, err := evs.NextSequence()
			if err != nil {
				return err
			}
			if err := evs.Put(seqKey(seq), r.v); err != nil {
				return err
			}
			seqs[i] = seq
		}
		return nil
	})
	if err != nil {
		return fresh, err
	}
	for i, r := range group {
		if fresh[i] {
			s.known[r.id] = idState{seq: seqs[i], accepted: now, also: r.also}
			for _, k := range r.also {
				s.known[k] = idState{seq: seqs[i], accepted: now}
			}
		}
	}
	return fresh, nil
}

// Pending lists the events accepted and not yet done, in the order they
// were accepted.
func (s *Store) Pending() ([]Event, error) {
	var out []Event
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			ev, err := decodeRecord(v)
			if err != nil {
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
// and its ID and replay keys are still remembered for KeepSeen. Unknown
// IDs are no error.
func (s *Store) Done(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.known[id]
	if !ok || st.done != 0 {
		return nil
	}
	st.done = s.now().UnixMilli()
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketEvents).Delete(seqKey(st.seq)); err != nil {
			return err
		}
		rec, err := json.Marshal(seen{Seq: st.seq, Accepted: st.accepted, Done: st.done})
		if err != nil {
			return err
		}
		for _, k := range append([]string{id}, st.also...) {
			if err := tx.Bucket(bucketSeen).Put([]byte(k), rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("marking event %s done: %w", id, err)
	}
	for _, k := range st.also {
		// A key another event holds (none should) is left to that event.
		if ks, ok := s.known[k]; ok && ks.seq == st.seq {
			s.known[k] = idState{seq: st.seq, accepted: st.accepted, done: st.done}
		}
	}
	st.also = nil // the keys now stand on their own, pruned by their time
	s.known[id] = st
	return nil
}

// Prune forgets the IDs and replay keys of events done more than KeepSeen
// ago, in memory and in the file; OpenStore calls it, and the store every
// hour while open. Pending events are never forgotten.
func (s *Store) Prune() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.now().Add(-KeepSeen).UnixMilli()
	var old []string
	for id, st := range s.known {
		if st.done != 0 && st.done < limit {
			old = append(old, id)
		}
	}
	if len(old) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketSeen)
		for _, id := range old {
			if err := ids.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pruning the event store: %w", err)
	}
	for _, id := range old {
		delete(s.known, id)
	}
	return nil
}

func seqKey(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// recordHead is a stored event's fields and its replay keys, which are not
// the event's business (recipes and forwards never see them).
type recordHead struct {
	Event
	Also []string `json:"also,omitempty"`
}

// encodeRecord stores an event as its fields in JSON, a newline, then the
// payload as received: marshalling the payload inside the JSON would
// check and compact every byte of it again on the hot path, and encoding/json
// never writes a raw newline, so the first one ends the fields.
func encodeRecord(ev Event, also []string) ([]byte, error) {
	payload := ev.Payload
	ev.Payload = nil
	head, err := json.Marshal(recordHead{Event: ev, Also: also})
	if err != nil {
		return nil, err
	}
	v := make([]byte, 0, len(head)+1+len(payload))
	v = append(append(append(v, head...), '\n'), payload...)
	return v, nil
}

// splitRecord returns a record's fields and payload; a record written
// before the payload moved out is all fields.
func splitRecord(v []byte) (head, payload []byte) {
	if i := bytes.IndexByte(v, '\n'); i >= 0 {
		return v[:i], v[i+1:]
	}
	return v, nil
}

func decodeRecord(v []byte) (Event, error) {
	head, payload := splitRecord(v)
	var ev Event
	if err := json.Unmarshal(head, &ev); err != nil {
		return Event{}, err
	}
	if len(payload) > 0 {
		ev.Payload = json.RawMessage(append([]byte(nil), payload...))
	}
	return ev, nil
}
