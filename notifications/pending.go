package notifications

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/summoner-bot/summoner/internal/human"
)

// ErrQueueFull is what a Commander returns when its queue refuses a
// command for now. The engine then keeps the recipe's run waiting and
// tries again with backoff; it is not a failure until GiveUpAfter.
var ErrQueueFull = errors.New("the command queue is full")

// ErrNotHandled is Handle's error when it could not read the waiting runs:
// the caller keeps the event and hands it over again later.
var ErrNotHandled = errors.New("the event was not handled")

// Waiting is a recipe's run that waits for a free place in the command
// queue: its command was refused (Action is that command's index), or an
// older run of the same recipe was waiting when its event came (Action 0,
// Tries 0). It resumes at Action, so the recipe's later actions keep their
// order.
type Waiting struct {
	Seq    uint64    `json:"-"` // order of arrival; set by the store
	Recipe string    `json:"recipe"`
	Action int       `json:"action"`
	Event  Event     `json:"event"`
	Since  time.Time `json:"since"` // when it began to wait
	Tries  int       `json:"tries"` // hand-overs the queue refused
	Next   time.Time `json:"next"`  // the next try
}

// WaitingStore keeps waiting runs across restarts. Store implements it in
// the event file; MemoryWaiting keeps them in memory.
type WaitingStore interface {
	// PutWaiting stores w (a new one, Seq 0, gets the next number) and
	// deletes the runs numbered drop, in one transaction.
	PutWaiting(w *Waiting, drop ...uint64) error
	DropWaiting(seq uint64) error
	// ListWaiting lists the waiting runs in order of arrival.
	ListWaiting() ([]Waiting, error)
}

// Defaults for EngineOptions' waiting runs.
const (
	DefaultGiveUpAfter = time.Hour
	defaultRetryMin    = time.Second
	defaultRetryMax    = 30 * time.Second
)

// WaitingError is what OnRun hears when a recipe's command was refused by
// a full queue: the run waits, it has not failed.
type WaitingError struct {
	Command string
	Since   time.Time
}

func (e *WaitingError) Error() string {
	return fmt.Sprintf("`%s` waits for a free place in my command queue", e.Command)
}

// GaveUpError is what OnRun hears when a waiting command found no place
// in the queue within GiveUpAfter.
type GaveUpError struct {
	Command string
	Waited  time.Duration
}

func (e *GaveUpError) Error() string {
	return fmt.Sprintf("`%s` waited %s for a free place in my command queue, so I gave up on it", e.Command, human.Age(e.Waited))
}

// Replaced says that a waiting run was dropped for a newer run of the
// same recipe, whose commands cover the same minions.
type Replaced struct {
	Recipe  string
	Command string // the older run's waiting command
	Old, By Event
	At      time.Time
}

// EventWords says what an event is in a few words: "pipeline shop main
// success".
func EventWords(ev Event) string {
	var parts []string
	for _, p := range []string{ev.Type, ev.Project, ev.Ref, ev.Status} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, " ")
}

// GaveUpText is the ops channel's report of a command given up on.
func GaveUpText(recipe, command string, ev Event, waited time.Duration) string {
	return fmt.Sprintf("⚠️ The recipe `%s` gave up on `%s` (for %s): my command queue had no free place for %s, so it never ran. Run it by hand if it is still wanted.",
		recipe, command, EventWords(ev), human.Age(waited))
}

// commandTarget is what a command line acts on: its first argument, the
// minion of update, restart or backup.
func commandTarget(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return line
	}
	return f[1]
}

// waitingTargets lists what the commands of r from action on act on.
func waitingTargets(r *Recipe, from int) []string {
	var out []string
	for j := from; j < len(r.Actions); j++ {
		if c := r.Actions[j].Command; c != nil {
			out = append(out, commandTarget(c.Line))
		}
	}
	return out
}

// covers tells whether a run of r from action newFrom runs a command for
// every minion a run from oldFrom still has to: then the newer makes the
// older pointless, and running both would deploy an older build last.
func covers(r *Recipe, newFrom, oldFrom int) bool {
	have := waitingTargets(r, newFrom)
	for _, t := range waitingTargets(r, oldFrom) {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}

// waitingCommand is the command a waiting run is held at, or its recipe's
// first from there.
func waitingCommand(r *Recipe, from int) string {
	for j := from; j < len(r.Actions); j++ {
		if c := r.Actions[j].Command; c != nil {
			return c.Line
		}
	}
	return ""
}

// waitList is the engine's waiting runs, in order of arrival, mirrored
// in its WaitingStore. Only the engine's loop changes it; mu lets the
// hooks command read it meanwhile.
type waitList struct {
	mu     sync.Mutex
	loaded bool
	runs   []Waiting
}

func (l *waitList) snapshot() []Waiting {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.runs)
}

func (l *waitList) of(recipe string) []Waiting {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Waiting
	for _, w := range l.runs {
		if w.Recipe == recipe {
			out = append(out, w)
		}
	}
	return out
}

// put replaces the run numbered w.Seq, or appends w, and removes drop.
func (l *waitList) put(w Waiting, drop ...uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs = slices.DeleteFunc(l.runs, func(x Waiting) bool { return slices.Contains(drop, x.Seq) })
	for i := range l.runs {
		if l.runs[i].Seq == w.Seq {
			l.runs[i] = w
			return
		}
	}
	l.runs = append(l.runs, w)
}

func (l *waitList) drop(seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.runs = slices.DeleteFunc(l.runs, func(x Waiting) bool { return x.Seq == seq })
}

// Waiting lists the runs waiting for a free place in the command queue,
// in order of arrival, for the hooks command.
func (e *Engine) Waiting() []Waiting { return e.waits.snapshot() }

// CommandOf is the command w waits to hand over: its recipe's first
// command from where it waits.
func (e *Engine) CommandOf(w Waiting) string {
	if r := e.recipe(w.Recipe); r != nil {
		return waitingCommand(&r.Recipe, w.Action)
	}
	return ""
}

// GiveUpAt is when w is given up on if the queue has no place for it.
func (e *Engine) GiveUpAt(w Waiting) time.Time { return w.Since.Add(e.o.GiveUpAfter) }

func (e *Engine) now() time.Time { return e.o.Now() }

// backoff is the wait before try n+1: doubling from RetryMin, capped.
func (e *Engine) backoff(tries int) time.Duration {
	d := e.o.RetryMin
	for i := 1; i < tries && d < e.o.RetryMax; i++ {
		d *= 2
	}
	return min(d, e.o.RetryMax)
}

// load reads the waiting runs once. Runs of a recipe no longer configured
// are dropped with a log line; runs a newer one covers (left by a crash
// between two writes) are dropped too.
func (e *Engine) load() error {
	if e.waits.loaded {
		return nil
	}
	runs, err := e.o.Waiting.ListWaiting()
	if err != nil {
		return fmt.Errorf("reading the waiting recipe runs: %w", err)
	}
	e.waits.mu.Lock()
	e.waits.loaded = true
	e.waits.mu.Unlock()
	for i, w := range runs {
		r := e.recipe(w.Recipe)
		gone := r == nil
		for _, later := range runs[i+1:] {
			gone = gone || (later.Recipe == w.Recipe && covers(&r.Recipe, later.Action, w.Action))
		}
		if gone {
			e.log.Warn("dropping a waiting recipe run", "recipe", w.Recipe, "event", w.Event.ID,
				"why", "its recipe is gone, or a newer run replaces it")
			if err := e.o.Waiting.DropWaiting(w.Seq); err != nil {
				return fmt.Errorf("dropping a waiting recipe run: %w", err)
			}
			continue
		}
		e.waits.put(w)
	}
	return nil
}

func (e *Engine) recipe(name string) *recipeCompiled {
	for i := range e.recipes {
		if e.recipes[i].Name == name {
			return &e.recipes[i]
		}
	}
	return nil
}

// queueBehind adds ev's run of r behind the runs of r already waiting,
// replacing those it covers, and tries the recipe's runs at once.
func (e *Engine) queueBehind(ctx context.Context, r *recipeCompiled, ev Event) error {
	older := e.waits.of(r.Name)
	var drop []uint64
	var replaced []Waiting
	for _, w := range older {
		if w.Event.ID == ev.ID {
			return nil // handled again after a crash: it waits already
		}
		if covers(&r.Recipe, 0, w.Action) {
			drop = append(drop, w.Seq)
			replaced = append(replaced, w)
		}
	}
	now := e.now()
	w := Waiting{Recipe: r.Name, Event: ev, Since: now, Next: now}
	if err := e.o.Waiting.PutWaiting(&w, drop...); err != nil {
		return fmt.Errorf("recipe %q: keeping the run for later: %w", r.Name, err)
	}
	e.waits.put(w, drop...)
	for _, old := range replaced {
		e.log.Info("a newer run of a recipe replaces the waiting one", "recipe", r.Name, "event", old.Event.ID, "by", ev.ID)
		if e.o.OnReplaced != nil {
			e.o.OnReplaced(Replaced{Recipe: r.Name, Command: waitingCommand(&r.Recipe, old.Action), Old: old.Event, By: ev, At: now})
		}
	}
	return e.tryRecipe(ctx, r)
}

// Retry tries the waiting runs whose time has come, in order within each
// recipe; a recipe whose first run is refused again waits, the others go
// on. It returns when the next run is due (zero: none waits).
func (e *Engine) Retry(ctx context.Context) (next time.Time) {
	if err := e.load(); err != nil {
		e.log.Error("trying waiting recipe runs", "err", err)
		return e.now().Add(e.o.RetryMax)
	}
	for i := range e.recipes {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if err := e.tryRecipe(ctx, &e.recipes[i]); err != nil {
			e.log.Error("trying waiting recipe runs", "recipe", e.recipes[i].Name, "err", err)
		}
	}
	for _, w := range e.waits.snapshot() {
		if next.IsZero() || w.Next.Before(next) {
			next = w.Next
		}
	}
	return next
}

// tryRecipe runs r's waiting runs in order while they go through: the
// first one still refused (or not yet due) holds the others back.
func (e *Engine) tryRecipe(ctx context.Context, r *recipeCompiled) error {
	for {
		runs := e.waits.of(r.Name)
		if len(runs) == 0 || ctx.Err() != nil {
			return nil
		}
		w := runs[0]
		now := e.now()
		if now.Before(w.Next) {
			return nil
		}
		if waited := now.Sub(w.Since); !now.Before(e.GiveUpAt(w)) {
			if err := e.giveUp(ctx, r, w, waited); err != nil {
				return err
			}
			continue
		}
		at, err := e.run(ctx, r, &w.Event, w.Action)
		if ctx.Err() != nil {
			return nil // stopping: it still waits, and is tried after the restart
		}
		if errors.Is(err, ErrQueueFull) {
			w.Action, w.Tries, w.Next = at, w.Tries+1, now.Add(e.backoff(w.Tries+1))
			if perr := e.o.Waiting.PutWaiting(&w); perr != nil {
				return fmt.Errorf("recipe %q: keeping the run for later: %w", r.Name, perr)
			}
			e.waits.put(w)
			if w.Tries == 1 {
				e.waitingNow(r, w)
			}
			return nil
		}
		if derr := e.o.Waiting.DropWaiting(w.Seq); derr != nil {
			return fmt.Errorf("recipe %q: forgetting a run that went through: %w", r.Name, derr)
		}
		e.waits.drop(w.Seq)
		e.ran(r, w.Event, err)
	}
}

// waitingNow reports a run whose command the queue refused for the first
// time.
func (e *Engine) waitingNow(r *recipeCompiled, w Waiting) {
	cmd := waitingCommand(&r.Recipe, w.Action)
	e.log.Warn("a recipe's command waits for a free place in the command queue", "recipe", r.Name, "event", w.Event.ID, "command", cmd)
	if e.o.OnRun != nil {
		e.o.OnRun(r.Name, w.Event, &WaitingError{Command: cmd, Since: w.Since})
	}
}

// giveUp drops a run that waited too long and says so in the ops channel
// (or the command's, when none is set) and to OnRun.
func (e *Engine) giveUp(ctx context.Context, r *recipeCompiled, w Waiting, waited time.Duration) error {
	cmd := waitingCommand(&r.Recipe, w.Action)
	e.log.Error("giving up on a recipe's command: no free place in the command queue", "recipe", r.Name, "event", w.Event.ID, "command", cmd, "waited", waited)
	channel := e.o.OpsChannel
	if channel == "" && w.Action < len(r.Actions) && r.Actions[w.Action].Command != nil {
		channel = r.Actions[w.Action].Command.Channel
	}
	if channel != "" {
		pctx, cancel := context.WithTimeout(ctx, e.o.PostTimeout)
		err := e.o.Poster.Post(pctx, fmt.Sprintf("hook-gave-up/%s/%s", w.Event.ID, r.Name), channel, GaveUpText(r.Name, cmd, w.Event, waited))
		cancel()
		if err != nil {
			// The outbox keeps what it accepts; an error here is the bot
			// stopping. Keep the run: the next try reports it again.
			return fmt.Errorf("recipe %q: reporting a command given up on: %w", r.Name, err)
		}
	}
	if err := e.o.Waiting.DropWaiting(w.Seq); err != nil {
		return fmt.Errorf("recipe %q: forgetting a command given up on: %w", r.Name, err)
	}
	e.waits.drop(w.Seq)
	if e.o.OnRun != nil {
		e.o.OnRun(r.Name, w.Event, &GaveUpError{Command: cmd, Waited: waited})
	}
	return nil
}

// MemoryWaiting is a WaitingStore in memory: the engine's default, for
// tests and for callers that accept losing waiting runs on restart.
type MemoryWaiting struct {
	mu   sync.Mutex // guards seq; list has its own
	seq  uint64
	list waitList
}

var _ WaitingStore = (*MemoryWaiting)(nil)

// PutWaiting implements WaitingStore.
func (m *MemoryWaiting) PutWaiting(w *Waiting, drop ...uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if w.Seq == 0 {
		m.seq++
		w.Seq = m.seq
	}
	m.list.put(*w, drop...)
	return nil
}

// DropWaiting implements WaitingStore.
func (m *MemoryWaiting) DropWaiting(seq uint64) error {
	m.list.drop(seq)
	return nil
}

// ListWaiting implements WaitingStore.
func (m *MemoryWaiting) ListWaiting() ([]Waiting, error) { return m.list.snapshot(), nil }

// bucketWaiting holds the waiting runs in the event file: seq (big-endian)
// -> Waiting as JSON. It is created on first use.
var bucketWaiting = []byte("waiting")

var _ WaitingStore = (*Store)(nil)

// PutWaiting implements WaitingStore. The write is synced before it
// returns, so a run kept for later survives a crash.
func (s *Store) PutWaiting(w *Waiting, drop ...uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketWaiting)
		if err != nil {
			return err
		}
		for _, seq := range drop {
			if err := b.Delete(seqKey(seq)); err != nil {
				return err
			}
		}
		seq := w.Seq
		if seq == 0 {
			if seq, err = b.NextSequence(); err != nil {
				return err
			}
		}
		v, err := json.Marshal(w)
		if err != nil {
			return err
		}
		if err := b.Put(seqKey(seq), v); err != nil {
			return err
		}
		w.Seq = seq
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing a waiting recipe run: %w", err)
	}
	return nil
}

// DropWaiting implements WaitingStore.
func (s *Store) DropWaiting(seq uint64) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWaiting)
		if b == nil {
			return nil
		}
		return b.Delete(seqKey(seq))
	})
	if err != nil {
		return fmt.Errorf("dropping a waiting recipe run: %w", err)
	}
	return nil
}

// ListWaiting implements WaitingStore.
func (s *Store) ListWaiting() ([]Waiting, error) {
	var out []Waiting
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWaiting)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var w Waiting
			if len(k) != 8 || json.Unmarshal(v, &w) != nil {
				s.log.Error("skipping an unreadable waiting recipe run", "key", fmt.Sprintf("%x", k))
				return nil
			}
			w.Seq = binary.BigEndian.Uint64(k)
			out = append(out, w)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing the waiting recipe runs: %w", err)
	}
	return out, nil
}
