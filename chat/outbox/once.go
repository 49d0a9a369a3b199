package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/summoner-bot/summoner/chat"
)

// onceRec is what PostOnce remembers of a key.
type onceRec struct {
	Local   string    `json:"local"`
	Channel string    `json:"channel"`
	At      time.Time `json:"at"`
}

// PostOnce posts like Post unless a post was already stored under key, in
// which case it returns that post and stores nothing. The key is written
// in the same transaction as the post, so a caller that crashed after
// posting and before recording its own progress (a webhook event not yet
// marked done) can post again after a restart without doubling the
// message. Keys are remembered as long as delivered posts (Options.Keep).
func (ob *Outbox) PostOnce(_ context.Context, key string, to chat.Destination, text string) (ref chat.PostRef, fresh bool, err error) {
	// One PostOnce at a time: between the look-up and the write no other
	// call may store the same key.
	ob.onceMu.Lock()
	defer ob.onceMu.Unlock()
	var rec onceRec
	found := false
	err = ob.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOnce).Get([]byte(key))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &rec)
	})
	if err != nil {
		return chat.PostRef{}, false, fmt.Errorf("outbox: looking up %s: %w", key, err)
	}
	if found {
		return chat.PostRef{ID: rec.Local, ChannelID: rec.Channel}, false, nil
	}
	ref, err = ob.add(to, "", text, key)
	return ref, err == nil, err
}

func putOnce(tx *bolt.Tx, key, local, channel string) error {
	v, err := json.Marshal(onceRec{Local: local, Channel: channel, At: time.Now()})
	if err != nil {
		return err
	}
	return tx.Bucket(bucketOnce).Put([]byte(key), v)
}

func pruneOnce(tx *bolt.Tx, cutoff time.Time) {
	b := tx.Bucket(bucketOnce)
	if b == nil {
		return
	}
	var old [][]byte
	_ = b.ForEach(func(k, v []byte) error {
		var r onceRec
		if json.Unmarshal(v, &r) != nil || r.At.Before(cutoff) {
			old = append(old, k)
		}
		return nil
	})
	for _, k := range old {
		_ = b.Delete(k)
	}
}
