package storage

import (
	"encoding/json"
	"os"
	"sync"
	"time"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// Verification is the last verify of one copy.
type Verification struct {
	At  time.Time `json:"at"`
	OK  bool      `json:"ok"`
	Err string    `json:"err,omitempty"`
}

// verifyLog remembers verify results per backup and destination, in a small
// JSON file, so `backups` can say when each copy was last checked.
type verifyLog struct {
	mu   sync.Mutex
	path string
}

func (v *verifyLog) load() Verifications {
	out := Verifications{}
	if v == nil || v.path == "" {
		return out
	}
	data, err := os.ReadFile(v.path)
	if err == nil {
		_ = json.Unmarshal(data, &out)
	}
	return out
}

func (v *verifyLog) record(id string, checks []CopyCheck, at time.Time) error {
	if v == nil || v.path == "" {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	all := v.load()
	for _, c := range checks {
		r := Verification{At: at.UTC(), OK: c.Err == nil}
		if c.Err != nil {
			r.Err = c.Err.Error()
		}
		all[id+"@"+c.Backend] = r
	}
	data, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(v.path, data, 0o600)
}

// Verifications are the last verify results, per backup copy.
type Verifications map[string]Verification

// Of is the last verify of a backup's copy on a destination.
func (v Verifications) Of(id, backend string) (Verification, bool) {
	r, ok := v[id+"@"+backend]
	return r, ok
}

// Verifications reads the verify log once, for a whole listing.
func (r *Repository) Verifications() Verifications { return r.vlog.load() }
