package commands

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/outbox"
)

// Journal remembers accepted commands durably (chat/outbox implements it),
// so a command runs once whatever restarts, and one cut short by a crash
// still gets a final answer.
type Journal interface {
	// Begin reports false for a message seen before; started records that
	// it runs at once.
	Begin(m chat.Message, started bool) (bool, error)
	Started(id string) error
	Finish(id string) error
	Unfinished() ([]outbox.Entry, error)
	// LastText is the latest text of a reply, for the restart note.
	LastText(ref string) (string, bool)
}

// QueueOptions configure a Queue.
type QueueOptions struct {
	Workers int // commands run at once (default 4)
	Size    int // commands that may wait for a worker (default 32)
	Journal Journal
	Poster  chat.Poster
	// MaxAge: a command accepted but never started before a restart runs
	// after it only if younger than this (default 10 minutes).
	MaxAge time.Duration
	// Grace is how long Run lets running commands finish after its context
	// ends before cancelling them (default 30 s).
	Grace  time.Duration
	Logger *slog.Logger
}

// Queue runs commands from a bounded queue on a fixed set of workers. Its
// Handle never blocks on a worker: the chat read loop stays responsive, and
// a user whose command must wait is told so at once.
type Queue struct {
	rt   *Router
	o    QueueOptions
	log  *slog.Logger
	jobs chan job

	running atomic.Int64
	waiting atomic.Int64

	mu   sync.Mutex
	mine map[string]bool // accepted by this process: not for recovery
}

type job struct {
	m         chat.Message
	progress  *chat.PostRef // the "queued" note, edited by the final reply
	journaled bool          // its start is journaled already
	finished  func()        // Submit's: called after the final answer
}

// ErrQueueFull is Submit's answer when every worker is busy and the queue
// is full. Nothing was journaled or posted: the same message may be
// submitted again later and runs once.
var ErrQueueFull = errors.New("the command queue is full")

var _ chat.Handler = (*Queue)(nil)

// NewQueue makes a queue in front of rt.
func NewQueue(rt *Router, o QueueOptions) *Queue {
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Size < 0 {
		o.Size = 0
	} else if o.Size == 0 {
		o.Size = 32
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 10 * time.Minute
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Poster == nil {
		o.Poster = rt.o.Poster
	}
	return &Queue{rt: rt, o: o, log: o.Logger, jobs: make(chan job, o.Size), mine: map[string]bool{}}
}

// Depth is how many commands run and how many wait, for /healthz.
func (q *Queue) Depth() (running, waiting int) {
	return int(q.running.Load()), int(q.waiting.Load())
}

// Run starts the workers, first answering what a restart cut short, and
// blocks until ctx ends; then it lets running commands finish for the grace
// period before cancelling them.
func (q *Queue) Run(ctx context.Context) error {
	workCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()

	var wg sync.WaitGroup
	for range q.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case j := <-q.jobs:
					q.waiting.Add(-1)
					q.run(workCtx, j)
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	q.recover(workCtx)
	<-ctx.Done()

	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(q.o.Grace):
		q.log.Warn("commands still running at shutdown; cancelling them")
		cancel()
		<-finished
	}
	// Commands still queued stay in the journal and run after a restart.
	return nil
}

// Handle accepts a command: journals it, queues it, and returns at once.
// A full queue answers "busy" instead of waiting.
func (q *Queue) Handle(ctx context.Context, m chat.Message) {
	// A command that finds a free worker starts now: journaling that with
	// its acceptance saves a write on the common path.
	startsNow := int(q.running.Load()+q.waiting.Load()) < q.o.Workers
	if !q.begin(m, startsNow) {
		return // already accepted: it came both live and through catch-up
	}
	q.enqueue(ctx, job{m: m, journaled: startsNow})
}

// begin journals m's acceptance and reports false when m was accepted
// before. Without a journal, or when it fails, every command is new.
func (q *Queue) begin(m chat.Message, startsNow bool) bool {
	if q.o.Journal == nil {
		return true
	}
	// Under mu, so recovery sees each command either in the journal or as
	// this process's, never as both.
	q.mu.Lock()
	fresh, err := q.o.Journal.Begin(m, startsNow)
	if err == nil && fresh && q.mine != nil {
		q.mine[m.ID] = true
	}
	q.mu.Unlock()
	if err != nil {
		q.log.Error("journaling a command; running it without", "err", err)
		return true
	}
	return fresh
}

func (q *Queue) enqueue(ctx context.Context, j job) {
	running, waiting := q.running.Load(), q.waiting.Add(1)
	ahead := int(running + waiting - 1)
	idle := int(running+waiting) <= q.o.Workers
	if !idle && int(waiting) > q.o.Size {
		q.waiting.Add(-1)
		q.reply(ctx, j.m, fmt.Sprintf("I'm busy: %d commands are ahead of this one (%d running, %d waiting), and my queue is full. Send it again in a minute.",
			ahead, running, waiting-1))
		q.finish(j.m.ID)
		return
	}
	if !idle {
		j.progress = q.busyNote(ctx, j.m, ahead)
	}
	select {
	case q.jobs <- j:
	default: // the buffer filled between the count and now
		q.waiting.Add(-1)
		q.reply(ctx, j.m, "I'm busy and my queue is full. Send it again in a minute.")
		q.finish(j.m.ID)
	}
}

// Submit accepts a command as Handle does, for a caller that keeps what the
// queue refuses (a recipe): a full queue returns ErrQueueFull instead of
// answering "busy" in the channel. finished, when not nil, is called once
// the command got its final answer. A message seen before returns nil and
// calls finished at once: it ran, or runs from the journal after a
// restart, once, and this process cannot tell when it ends.
func (q *Queue) Submit(ctx context.Context, m chat.Message, finished func()) error {
	// Reserve the place before journaling, so a refused command leaves no
	// trace and its ID stays free for the next try.
	running, waiting := q.running.Load(), q.waiting.Add(1)
	idle := int(running+waiting) <= q.o.Workers
	if !idle && int(waiting) > q.o.Size {
		q.waiting.Add(-1)
		return ErrQueueFull
	}
	if !q.begin(m, idle) {
		q.waiting.Add(-1)
		if finished != nil {
			finished()
		}
		return nil
	}
	j := job{m: m, journaled: idle, finished: finished}
	if !idle {
		j.progress = q.busyNote(ctx, m, int(running+waiting-1))
	}
	// The reserved place is a free worker or room in the buffer, so this
	// send does not wait long.
	select {
	case q.jobs <- j:
		return nil
	case <-ctx.Done():
		// Journaled: a restart runs it, and a second Submit finds it seen.
		q.waiting.Add(-1)
		return fmt.Errorf("queueing command %s: %w", m.ID, ctx.Err())
	}
}

// busyNote tells the user at once that the command waits; the final reply
// edits it.
func (q *Queue) busyNote(ctx context.Context, m chat.Message, ahead int) *chat.PostRef {
	ref, err := q.o.Poster.Reply(ctx, m, fmt.Sprintf("⏳ I'm busy: %d commands are ahead of this one. It is queued, and I'll answer here when it runs.", ahead))
	if err != nil {
		return nil
	}
	return &ref
}

func (q *Queue) run(ctx context.Context, j job) {
	q.running.Add(1)
	defer q.running.Add(-1)
	if q.o.Journal != nil && !j.journaled {
		if err := q.o.Journal.Started(j.m.ID); err != nil {
			q.log.Error("journaling a command's start", "err", err)
		}
	}
	q.rt.execute(ctx, j.m, false, j.progress)
	q.finish(j.m.ID)
	if j.finished != nil {
		j.finished()
	}
}

func (q *Queue) finish(id string) {
	if q.o.Journal == nil {
		return
	}
	if err := q.o.Journal.Finish(id); err != nil {
		q.log.Error("journaling a command's end", "err", err)
	}
}

func (q *Queue) reply(ctx context.Context, m chat.Message, text string) {
	if _, err := q.o.Poster.Reply(ctx, m, text); err != nil {
		q.log.Error("replying", "err", err)
	}
}

// recover answers the commands a stop or crash cut short: one that had
// started gets a final note (editing its progress message, so nothing
// waits forever); one that never started runs now if it is still fresh.
func (q *Queue) recover(ctx context.Context) {
	if q.o.Journal == nil {
		return
	}
	q.mu.Lock()
	entries, err := q.o.Journal.Unfinished()
	mine := q.mine
	q.mine = nil // from now on only this process's commands are journaled
	q.mu.Unlock()
	if err != nil {
		q.log.Error("reading the command journal", "err", err)
		return
	}
	n := 0
	for _, e := range entries {
		m := e.Message
		if mine[m.ID] {
			continue // accepted since start-up, queued already
		}
		n++
		switch {
		case !e.Started && time.Since(m.At) <= q.o.MaxAge:
			j := job{m: m}
			if e.Reply != "" {
				j.progress = &chat.PostRef{ID: e.Reply, ChannelID: m.Channel.ID}
			}
			q.enqueue(ctx, j)
			continue
		case !e.Started:
			q.note(ctx, e, "⚠️ I was restarted before I could run this, and it is too old to run now. Send it again if it is still wanted.")
		default:
			q.note(ctx, e, "⚠️ I was restarted while this was running, so it was cut short. Check with `status` and run it again if needed.")
		}
		q.finish(m.ID)
	}
	if n > 0 {
		q.log.Info("answered commands a restart cut short", "count", n)
	}
}

func (q *Queue) note(ctx context.Context, e outbox.Entry, text string) {
	if e.Reply != "" {
		if last, ok := q.o.Journal.LastText(e.Reply); ok && last != "" {
			text = last + "\n\n" + text
		}
		if err := q.o.Poster.Update(ctx, chat.PostRef{ID: e.Reply, ChannelID: e.Message.Channel.ID}, text); err == nil {
			return
		}
	}
	q.reply(ctx, e.Message, text)
}
