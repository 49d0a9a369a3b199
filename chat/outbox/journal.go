package outbox

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/summoner-bot/summoner/chat"
)

// Entry is a command the journal holds: accepted, maybe started, not yet
// finished.
type Entry struct {
	Message  chat.Message `json:"message"`
	Accepted time.Time    `json:"accepted"`
	Started  bool         `json:"started"`
	// Reply is the first reply posted for it (the progress message), so a
	// restart can edit it instead of leaving it waiting forever.
	Reply string `json:"reply,omitempty"`
}

// Begin records that the command in m was accepted; started says it runs
// at once (a free worker), which saves writing that separately. It reports
// false when m was seen before (running, queued or finished): a post that
// arrives both live and through catch-up, or again after a restart, runs
// once.
func (ob *Outbox) Begin(m chat.Message, started bool) (bool, error) {
	fresh := false
	err := ob.db.Update(func(tx *bolt.Tx) error {
		id := []byte(m.ID)
		if tx.Bucket(bucketHandled).Get(id) != nil || tx.Bucket(bucketCmds).Get(id) != nil {
			return nil
		}
		fresh = true
		return putEntry(tx, &Entry{Message: m, Accepted: time.Now(), Started: started})
	})
	if err != nil {
		return false, fmt.Errorf("journaling command %s: %w", m.ID, err)
	}
	return fresh, nil
}

// Started records that the command began to run: after a crash it gets an
// "interrupted" note instead of running again.
func (ob *Outbox) Started(id string) error {
	return ob.updateEntry(id, func(e *Entry) { e.Started = true })
}

// Finish records that the command got its final answer.
func (ob *Outbox) Finish(id string) error {
	err := ob.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketCmds).Delete([]byte(id)); err != nil {
			return err
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixMilli()))
		return tx.Bucket(bucketHandled).Put([]byte(id), v)
	})
	if err != nil {
		return fmt.Errorf("journaling the end of command %s: %w", id, err)
	}
	return nil
}

// Unfinished lists the commands accepted but not finished, oldest first:
// what a crash or a stop cut short.
func (ob *Outbox) Unfinished() ([]Entry, error) {
	var out []Entry
	err := ob.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketCmds).ForEach(func(_, v []byte) error {
			var e Entry
			if err := json.Unmarshal(v, &e); err != nil {
				ob.log.Error("skipping an unreadable journal entry", "err", err)
				return nil
			}
			out = append(out, e)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Accepted.Before(out[j].Accepted) })
	return out, err
}

// LastText is the latest text of a post the outbox made, delivered or not.
func (ob *Outbox) LastText(local string) (string, bool) {
	ob.mu.Lock()
	t, ok := ob.texts[local]
	ob.mu.Unlock()
	if ok {
		return t, true
	}
	var r ref
	err := ob.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRefs).Get([]byte(local))
		if v == nil {
			return errNoRef
		}
		return json.Unmarshal(v, &r)
	})
	return r.Text, err == nil
}

var errNoRef = fmt.Errorf("no such post")

func (ob *Outbox) updateEntry(id string, f func(*Entry)) error {
	err := ob.db.Update(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketCmds).Get([]byte(id))
		if v == nil {
			return nil
		}
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		f(&e)
		return putEntry(tx, &e)
	})
	if err != nil {
		return fmt.Errorf("journaling command %s: %w", id, err)
	}
	return nil
}

// noteReply remembers the first reply to a journaled command.
func noteReply(tx *bolt.Tx, msgID, local string) error {
	v := tx.Bucket(bucketCmds).Get([]byte(msgID))
	if v == nil {
		return nil
	}
	var e Entry
	if err := json.Unmarshal(v, &e); err != nil || e.Reply != "" {
		return nil
	}
	e.Reply = local
	return putEntry(tx, &e)
}

func putEntry(tx *bolt.Tx, e *Entry) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketCmds).Put([]byte(e.Message.ID), v)
}
