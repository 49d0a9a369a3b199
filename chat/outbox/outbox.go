// Package outbox makes every post and edit the bot sends durable: each is
// written to an embedded store (bbolt) before delivery, then delivered in
// order per channel, once, retried with capped backoff for as long as the
// chat server is unreachable, across bot restarts. Edits never block the
// caller: the latest text of a post wins and pending edits are coalesced.
//
// It also keeps the command journal (journal.go): which commands were
// accepted, started and finished, so a restart neither runs a command twice
// nor leaves one without a final answer.
//
// It never talks to the chat server itself; a Sender does.
package outbox

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/summoner-bot/summoner/chat"
)

// Sender delivers to the chat server. Implementations must honour ctx.
type Sender interface {
	// Send creates a post tagged with m.Key, so that Find can tell later
	// whether an attempt whose answer was lost did land.
	Send(ctx context.Context, m Msg) (postID string, err error)
	// Edit replaces the text of a post the Sender created in channel.
	Edit(ctx context.Context, channel, postID, text string) error
	// Find looks in channel for a post tagged with key created after since.
	Find(ctx context.Context, channel, key string, since time.Time) (postID string, found bool, err error)
}

// Msg is one post to create.
type Msg struct {
	Key      string // unique tag of this post
	Channel  string // a channel ID, or "~name" for a channel of the bot's team
	ThreadID string // root post ID, "" for none
	ReplyTo  string // the chat message this answers, "" for none
	Text     string
	// Props are extra properties of the post (message attachments with
	// buttons); nil for a plain post. Edits change the text only.
	Props map[string]any
}

// Options configure an Outbox.
type Options struct {
	Path   string // the bbolt file
	Sender Sender
	// Permanent tells a failure that retrying cannot fix (the bot was
	// removed from the channel); such an item is dropped and logged.
	Permanent func(error) bool
	Logger    *slog.Logger
	// Backoff between tries; defaults 250 ms to 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Keep is how long delivered post IDs and finished command IDs are
	// remembered (for edits and de-duplication); default 72 h.
	Keep time.Duration
}

var (
	bucketItems   = []byte("items")   // seq -> item, pending delivery
	bucketRefs    = []byte("refs")    // local post ID -> delivered post
	bucketCmds    = []byte("cmds")    // message ID -> journal entry
	bucketHandled = []byte("handled") // message ID -> finish time (Unix ms)
	bucketMeta    = []byte("meta")
	bucketOnce    = []byte("once") // caller's key -> onceRec (PostOnce)
)

type kind string

const (
	kindPost kind = "post"
	kindEdit kind = "edit"
)

// item is one pending delivery, as stored.
type item struct {
	Seq     uint64         `json:"seq"`
	Kind    kind           `json:"kind"`
	Local   string         `json:"local"` // the post's local ID (for edits: the target's)
	Channel string         `json:"channel"`
	Thread  string         `json:"thread,omitempty"` // may be a local ID, resolved at delivery
	ReplyTo string         `json:"reply_to,omitempty"`
	Text    string         `json:"text"`
	Props   map[string]any `json:"props,omitempty"` // posts only
	Created time.Time      `json:"created"`

	Ver int `json:"ver"` // counts text changes: the newest write wins

	inFlight  bool          // being delivered now: its text may no longer change
	maybeSent bool          // an earlier try may have landed: look before sending
	committed chan struct{} // closed once its first write is stored
}

// ref is a delivered post.
type ref struct {
	PostID    string    `json:"post_id"`
	Channel   string    `json:"channel"`
	Text      string    `json:"text"` // the latest text, for the restart note
	Delivered time.Time `json:"delivered"`
}

// Outbox is a chat.Poster whose posts and edits survive restarts.
type Outbox struct {
	o    Options
	db   *bolt.DB
	log  *slog.Logger
	inst string // random per store, so keys never repeat across stores

	onceMu  sync.Mutex // PostOnce's look-up and write
	mu      sync.Mutex
	queues  map[string][]*item // per channel, in order
	running map[string]bool    // channels with a delivery goroutine
	seq     uint64             // the last item's sequence number
	texts   map[string]string  // local ID -> latest text, delivered or not
	chans   map[string]string  // local ID -> channel
	wg      sync.WaitGroup
	ctx     context.Context // delivery; ends at Close
	stop    context.CancelFunc
	closed  bool
	drained *sync.Cond
}

var _ chat.Poster = (*Outbox)(nil)

// Open opens (or creates) the store and loads what is still pending; call
// Start to begin delivering.
func Open(o Options) (*Outbox, error) {
	if o.Sender == nil {
		return nil, errors.New("outbox: no sender")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Keep <= 0 {
		o.Keep = 72 * time.Hour
	}
	if o.Permanent == nil {
		o.Permanent = func(error) bool { return false }
	}
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o700); err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	// No freelist on disk: each commit writes less (it is rebuilt at open).
	db, err := bolt.Open(o.Path, 0o600, &bolt.Options{Timeout: 5 * time.Second, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("outbox %s is in use by another summoner process", o.Path)
		}
		return nil, fmt.Errorf("opening the outbox %s: %w", o.Path, err)
	}
	ob := &Outbox{
		o: o, db: db, log: o.Logger,
		queues: map[string][]*item{}, running: map[string]bool{},
		texts: map[string]string{}, chans: map[string]string{},
	}
	ob.drained = sync.NewCond(&ob.mu)
	if err := ob.load(); err != nil {
		db.Close()
		return nil, err
	}
	return ob, nil
}

func (ob *Outbox) load() error {
	return ob.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketItems, bucketRefs, bucketCmds, bucketHandled, bucketMeta, bucketOnce} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("outbox: %w", err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get([]byte("instance")); v != nil {
			ob.inst = string(v)
		} else {
			b := make([]byte, 4)
			_, _ = rand.Read(b)
			ob.inst = hex.EncodeToString(b)
			if err := meta.Put([]byte("instance"), []byte(ob.inst)); err != nil {
				return err
			}
		}
		ob.prune(tx)
		ob.seq = tx.Bucket(bucketItems).Sequence()
		return tx.Bucket(bucketItems).ForEach(func(_, v []byte) error {
			var it item
			if err := json.Unmarshal(v, &it); err != nil {
				ob.log.Error("dropping an unreadable outbox item", "err", err)
				return nil
			}
			// Sent before the restart, perhaps: look before sending again.
			it.maybeSent = it.Kind == kindPost
			it.committed = closedChan
			ob.queues[it.Channel] = append(ob.queues[it.Channel], &it)
			ob.texts[it.Local], ob.chans[it.Local] = it.Text, it.Channel
			return nil
		})
	})
}

// prune forgets delivered posts and finished commands older than Keep.
func (ob *Outbox) prune(tx *bolt.Tx) {
	cutoff := time.Now().Add(-ob.o.Keep)
	var old [][]byte
	_ = tx.Bucket(bucketRefs).ForEach(func(k, v []byte) error {
		var r ref
		if json.Unmarshal(v, &r) != nil || r.Delivered.Before(cutoff) {
			old = append(old, k)
		}
		return nil
	})
	for _, k := range old {
		_ = tx.Bucket(bucketRefs).Delete(k)
	}
	old = old[:0]
	_ = tx.Bucket(bucketHandled).ForEach(func(k, v []byte) error {
		if len(v) != 8 || time.UnixMilli(int64(binary.BigEndian.Uint64(v))).Before(cutoff) {
			old = append(old, k)
		}
		return nil
	})
	for _, k := range old {
		_ = tx.Bucket(bucketHandled).Delete(k)
	}
	pruneOnce(tx, cutoff)
}

// Start begins delivering in the background until Close.
func (ob *Outbox) Start() {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if ob.ctx != nil {
		return
	}
	ob.ctx, ob.stop = context.WithCancel(context.Background())
	for ch, q := range ob.queues {
		if len(q) > 0 {
			ob.kick(ch)
		}
	}
}

// Close waits up to grace for pending items to be delivered, then stops;
// what is left is delivered after the next Open.
func (ob *Outbox) Close(grace time.Duration) error {
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		return nil
	}
	ob.closed = true
	if ob.ctx != nil {
		deadline := time.Now().Add(grace)
		t := time.AfterFunc(grace, func() {
			ob.mu.Lock()
			ob.drained.Broadcast()
			ob.mu.Unlock()
		})
		for ob.pendingLocked() > 0 && time.Now().Before(deadline) {
			ob.drained.Wait()
		}
		t.Stop()
		ob.stop()
	}
	ob.mu.Unlock()
	ob.wg.Wait()
	return ob.db.Close()
}

func (ob *Outbox) pendingLocked() int {
	n := 0
	for _, q := range ob.queues {
		n += len(q)
	}
	return n
}

// Pending is how many posts and edits wait for delivery (for /healthz).
func (ob *Outbox) Pending() int {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	return ob.pendingLocked()
}

// Post stores a post for to and returns its local reference at once.
func (ob *Outbox) Post(_ context.Context, to chat.Destination, text string) (chat.PostRef, error) {
	return ob.add(to, "", text, "")
}

// Reply stores a reply to m, tagged as answering it.
func (ob *Outbox) Reply(_ context.Context, m chat.Message, text string) (chat.PostRef, error) {
	return ob.add(m.ReplyTo(), m.ID, text, "")
}

// ReplyWithProps stores a reply to m that carries extra post properties
// (buttons, as message attachments).
func (ob *Outbox) ReplyWithProps(_ context.Context, m chat.Message, text string, props map[string]any) (chat.PostRef, error) {
	return ob.addProps(m.ReplyTo(), m.ID, text, "", props)
}

// localPrefix marks the post IDs the outbox hands out, so Update can tell
// them from a chat server's own IDs.
const localPrefix = "ob-"

func (ob *Outbox) add(to chat.Destination, replyTo, text, once string) (chat.PostRef, error) {
	return ob.addProps(to, replyTo, text, once, nil)
}

func (ob *Outbox) addProps(to chat.Destination, replyTo, text, once string, props map[string]any) (chat.PostRef, error) {
	if to.ChannelID == "" {
		return chat.PostRef{}, errors.New("outbox: a post needs a channel")
	}
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		return chat.PostRef{}, errors.New("outbox: closed")
	}
	ob.seq++
	it := &item{Seq: ob.seq, Kind: kindPost, Local: localPrefix + strconv.FormatUint(ob.seq, 10), Channel: to.ChannelID,
		Thread: to.ThreadID, ReplyTo: replyTo, Text: text, Props: props, Created: time.Now(), committed: make(chan struct{})}
	snap := *it
	ob.texts[it.Local], ob.chans[it.Local] = text, it.Channel
	ob.queues[it.Channel] = append(ob.queues[it.Channel], it)
	// Delivery may start while the item is being written: a crash before
	// the write ends loses nothing that was not sent, and one after it is
	// found again by the post's key. done waits for the write.
	ob.kick(it.Channel)
	ob.mu.Unlock()

	err := ob.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		if err := b.SetSequence(max(b.Sequence(), snap.Seq)); err != nil {
			return err
		}
		if replyTo != "" {
			if err := noteReply(tx, replyTo, snap.Local); err != nil {
				return err
			}
		}
		if once != "" {
			if err := putOnce(tx, once, snap.Local, snap.Channel); err != nil {
				return err
			}
		}
		return putItem(b, &snap)
	})
	close(it.committed)
	if err != nil {
		return chat.PostRef{}, fmt.Errorf("storing a post in the outbox: %w", err)
	}
	return chat.PostRef{ID: it.Local, ChannelID: it.Channel}, nil
}

// Update stores the new text of a post. A pending post or edit of the same
// post that is not being sent yet takes the new text instead of queueing
// another edit: the latest state wins.
func (ob *Outbox) Update(_ context.Context, r chat.PostRef, text string) error {
	ob.mu.Lock()
	if ob.closed {
		ob.mu.Unlock()
		return errors.New("outbox: closed")
	}
	channel := r.ChannelID
	if c, ok := ob.chans[r.ID]; ok {
		channel = c
	}
	q := ob.queues[channel]
	var target *item
	for i := len(q) - 1; i >= 0; i-- {
		if q[i].Local == r.ID {
			if !q[i].inFlight {
				target = q[i]
			}
			break
		}
	}
	fresh := target == nil
	if fresh {
		ob.seq++
		target = &item{Seq: ob.seq, Kind: kindEdit, Local: r.ID, Channel: channel, Created: time.Now(), committed: make(chan struct{})}
		ob.queues[channel] = append(ob.queues[channel], target)
	}
	target.Text = text
	target.Ver++
	snap := *target
	ob.texts[r.ID] = text
	ob.kick(channel)
	ob.mu.Unlock()

	if !fresh {
		<-snap.committed // the item's first write comes first
	}
	err := ob.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketItems)
		if fresh {
			if err := b.SetSequence(max(b.Sequence(), snap.Seq)); err != nil {
				return err
			}
			return putItem(b, &snap)
		}
		// Only over an older text, and never bring back a delivered item.
		v := b.Get(seqKey(snap.Seq))
		var stored item
		if v == nil || json.Unmarshal(v, &stored) != nil || stored.Ver >= snap.Ver {
			return nil
		}
		return putItem(b, &snap)
	})
	if fresh {
		close(target.committed)
	}
	if err != nil {
		return fmt.Errorf("storing an edit in the outbox: %w", err)
	}
	return nil
}

// closedChan is the committed channel of items read from the store.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func putItem(b *bolt.Bucket, it *item) error {
	v, err := json.Marshal(it)
	if err != nil {
		return err
	}
	return b.Put(seqKey(it.Seq), v)
}

func seqKey(n uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, n)
	return k
}

// kick makes sure a goroutine delivers channel's queue. Called with mu held.
func (ob *Outbox) kick(channel string) {
	if ob.ctx == nil || ob.running[channel] || ob.ctx.Err() != nil {
		return
	}
	ob.running[channel] = true
	ob.wg.Add(1)
	go ob.deliverLoop(channel)
}

// deliverLoop sends channel's items in order until the queue is empty.
func (ob *Outbox) deliverLoop(channel string) {
	defer ob.wg.Done()
	for {
		ob.mu.Lock()
		q := ob.queues[channel]
		if len(q) == 0 || ob.ctx.Err() != nil {
			delete(ob.running, channel)
			if len(q) == 0 {
				delete(ob.queues, channel)
			}
			ob.drained.Broadcast()
			ob.mu.Unlock()
			return
		}
		it := q[0]
		it.inFlight = true
		snapshot := *it
		ob.mu.Unlock()

		postID, err := ob.deliver(ob.ctx, &snapshot)
		if err != nil && ob.ctx.Err() != nil {
			ob.mu.Lock()
			it.inFlight, it.maybeSent = false, it.maybeSent || snapshot.maybeSent
			delete(ob.running, channel)
			ob.drained.Broadcast()
			ob.mu.Unlock()
			return
		}
		ob.mu.Lock()
		ob.queues[channel] = ob.queues[channel][1:]
		ob.mu.Unlock()
		if err := ob.done(&snapshot, postID, err); err != nil {
			ob.log.Error("recording a delivery in the outbox", "err", err)
		}
	}
}

// deliver tries until the item is delivered, fails for good, or ctx ends.
func (ob *Outbox) deliver(ctx context.Context, it *item) (string, error) {
	for attempt := 0; ; attempt++ {
		postID, err := ob.try(ctx, it)
		if err == nil {
			return postID, nil
		}
		if errors.Is(err, errUndelivered) || ob.o.Permanent(err) {
			return "", err
		}
		if it.Kind == kindPost {
			it.maybeSent = true // the server may have created it before the error
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		d := backoff(attempt, ob.o.MinBackoff, ob.o.MaxBackoff)
		level := slog.LevelWarn
		if attempt > 3 {
			level = slog.LevelDebug // one outage, not a line every try
		}
		ob.log.Log(ctx, level, "chat delivery failed; will retry", "channel", it.Channel, "attempt", attempt+1, "in", d.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(d):
		}
	}
}

func (ob *Outbox) try(ctx context.Context, it *item) (string, error) {
	switch it.Kind {
	case kindEdit:
		target, ok, err := ob.postID(it.Local)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errUndelivered
		}
		return target, ob.o.Sender.Edit(ctx, it.Channel, target, it.Text)
	}
	key := ob.key(it)
	if it.maybeSent {
		id, found, err := ob.o.Sender.Find(ctx, it.Channel, key, it.Created.Add(-time.Minute))
		if err != nil {
			return "", fmt.Errorf("checking whether an earlier try landed: %w", err)
		}
		if found {
			return id, nil
		}
	}
	thread := it.Thread
	if strings.HasPrefix(thread, localPrefix) {
		id, ok, err := ob.postID(thread)
		if err != nil {
			return "", err
		}
		if !ok {
			return "", errUndelivered
		}
		thread = id
	}
	return ob.o.Sender.Send(ctx, Msg{Key: key, Channel: it.Channel, ThreadID: thread, ReplyTo: it.ReplyTo, Text: it.Text, Props: it.Props})
}

// errUndelivered: an edit (or thread reply) whose post was dropped as
// undeliverable; retrying cannot help.
var errUndelivered = errors.New("the post it refers to was never delivered")

func (ob *Outbox) key(it *item) string { return ob.inst + "-" + strconv.FormatUint(it.Seq, 10) }

func (ob *Outbox) postID(local string) (string, bool, error) {
	if !strings.HasPrefix(local, localPrefix) {
		return local, true, nil // a chat server's own ID
	}
	var r ref
	found := false
	err := ob.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRefs).Get([]byte(local))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &r)
	})
	return r.PostID, found, err
}

// done removes a delivered (or abandoned) item and remembers the post.
func (ob *Outbox) done(it *item, postID string, failed error) error {
	if failed != nil {
		ob.log.Error("dropping a chat post that cannot be delivered", "channel", it.Channel, "kind", it.Kind, "err", failed)
	}
	<-it.committed // never delete before the item's first write
	ob.mu.Lock()
	text := ob.texts[it.Local]
	ob.mu.Unlock()
	err := ob.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketItems).Delete(seqKey(it.Seq)); err != nil {
			return err
		}
		if failed != nil || postID == "" {
			return nil
		}
		v, err := json.Marshal(ref{PostID: postID, Channel: it.Channel, Text: text, Delivered: time.Now()})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketRefs).Put([]byte(it.Local), v)
	})
	ob.forget(it)
	return err
}

// forget drops the in-memory text of a post once nothing of it is pending;
// the store keeps it for the restart note.
func (ob *Outbox) forget(it *item) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	for _, q := range ob.queues[it.Channel] {
		if q.Local == it.Local {
			return
		}
	}
	delete(ob.texts, it.Local)
	delete(ob.chans, it.Local)
}

// backoff is exponential with full jitter, capped.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := float64(lo) * math.Pow(2, float64(min(attempt, 30)))
	if d > float64(hi) {
		d = float64(hi)
	}
	return time.Duration(float64(lo) + mrand.Float64()*(d-float64(lo)))
}
