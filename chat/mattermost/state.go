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
// ms) everything was dealt with: the handler took every command up to
// there. A command not handed over yet stays after its channel's cursor, so
// after a crash it is fetched again (and skipped if it was answered).
type cursors struct {
	mu    sync.Mutex
	path  string
	seen  map[string]int64 // channel ID -> cursor
	dirty bool

	// wmu orders writes: a flush from the read loop and one from the
	// ticker must not land older-after-newer.
	wmu sync.Mutex
}

type stateFile struct {
	Version  int              `json:"version"`
	Channels map[string]int64 `json:"channels"` // channel ID -> cursor (Unix ms)
}

func newCursors(path string) *cursors {
	return &cursors{path: path, seen: map[string]int64{}}
}

// loadCursors reads the state file; a missing file is an empty state. A
// damaged file is kept aside and replaced, since losing it costs at most a
// few re-fetched posts (replies are de-duplicated anyway).
func loadCursors(path string) (*cursors, error) {
	c := newCursors(path)
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
		c.seen[ch] = t
	}
	return c, nil
}

// cursor is the time up to which channel ch is dealt with, if known.
func (c *cursors) cursor(ch string) (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.seen[ch]
	return t, ok
}

// see records that everything in ch up to created (Unix ms) is dealt with.
// The cursor never moves back.
func (c *cursors) see(ch string, created int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.seen[ch]; !ok || created > old {
		c.seen[ch] = created
		c.dirty = true
	}
}

// flush writes the state file if anything changed: a temp file, fsync,
// rename, so a crash leaves the old or the new state, never half of one.
// Without a path the state lives in memory only.
func (c *cursors) flush() error {
	if c.path == "" {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	snap := make(map[string]int64, len(c.seen))
	for ch, t := range c.seen {
		snap[ch] = t
	}
	c.dirty = false
	c.mu.Unlock()

	data, err := json.Marshal(stateFile{Version: 1, Channels: snap})
	if err != nil {
		return fmt.Errorf("encoding chat state: %w", err)
	}
	if err := atomicfile.Write(c.path, data, 0o600); err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return fmt.Errorf("saving chat state %s: %w", c.path, err)
	}
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
