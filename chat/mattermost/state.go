package mattermost

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// cursors remembers, per channel, up to which post (by creation time, Unix
// ms) everything has been handled. A command still running holds its
// channel's cursor back, so a crash mid-command means it is looked at again
// on restart (and skipped there if its reply was already posted).
type cursors struct {
	mu       sync.Mutex
	path     string
	seen     map[string]int64            // newest post seen per channel
	inflight map[string]map[string]int64 // channel -> post ID -> created
	saved    map[string]int64            // what the file holds
	dirty    bool
}

type stateFile struct {
	Version  int              `json:"version"`
	Channels map[string]int64 `json:"channels"` // channel ID -> cursor (Unix ms)
}

// loadCursors reads the state file; a missing file is an empty state. A
// damaged file is kept aside and replaced, since losing it costs at most a
// few re-fetched posts (replies are de-duplicated anyway).
func loadCursors(path string) (*cursors, error) {
	c := &cursors{path: path, seen: map[string]int64{}, inflight: map[string]map[string]int64{}, saved: map[string]int64{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("reading chat state %s: %w", path, err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		_ = os.Rename(path, path+".damaged")
		return c, fmt.Errorf("chat state %s was damaged (kept as %s.damaged): %w", path, path, err)
	}
	for ch, t := range sf.Channels {
		c.seen[ch], c.saved[ch] = t, t
	}
	return c, nil
}

// cursor is the time up to which channel ch is handled, if known.
func (c *cursors) cursor(ch string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[ch]
	return t, ok
}

// see records a post that needs no handling (or whose handling is done).
func (c *cursors) see(ch string, created int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if created > c.seen[ch] {
		c.seen[ch] = created
		c.dirty = true
	}
}

// start marks a command as running; done marks it finished.
func (c *cursors) start(ch, postID string, created int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[ch] == nil {
		c.inflight[ch] = map[string]int64{}
	}
	c.inflight[ch][postID] = created
	if created > c.seen[ch] {
		c.seen[ch] = created
	}
	c.dirty = true
}

func (c *cursors) done(ch, postID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight[ch], postID)
	if len(c.inflight[ch]) == 0 {
		delete(c.inflight, ch)
	}
	c.dirty = true
}

// snapshot is what may be persisted: per channel, just before the oldest
// command still running, else the newest post seen.
func (c *cursors) snapshot() map[string]int64 {
	out := make(map[string]int64, len(c.seen))
	for ch, t := range c.seen {
		for _, created := range c.inflight[ch] {
			t = min(t, created-1)
		}
		out[ch] = t
	}
	return out
}

// flush writes the state file if anything changed: a temp file, fsync,
// rename, so a crash leaves the old or the new state, never half of one.
func (c *cursors) flush() error {
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	snap := c.snapshot()
	c.dirty = false
	c.mu.Unlock()

	data, err := json.Marshal(stateFile{Version: 1, Channels: snap})
	if err != nil {
		return err
	}
	if err := atomicfile.Write(c.path, data, 0o600); err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return fmt.Errorf("saving chat state: %w", err)
	}
	c.mu.Lock()
	c.saved = snap
	c.mu.Unlock()
	return nil
}

// seenSet remembers recently handled post IDs so a post that arrives both
// live and through catch-up is handled once.
type seenSet struct {
	mu  sync.Mutex
	ids map[string]time.Time
}

// add reports whether id is new, and remembers it.
func (s *seenSet) add(id string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = map[string]time.Time{}
	}
	if _, ok := s.ids[id]; ok {
		return false
	}
	if len(s.ids) > 10000 {
		for k, t := range s.ids {
			if now.Sub(t) > catchUpWindow+time.Hour {
				delete(s.ids, k)
			}
		}
	}
	s.ids[id] = now
	return true
}
