package minions

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// State is what Summoner remembers about a summoned minion between runs:
// generated secrets (created once, reused on every redeploy), the settings
// the user gave, the version, and the images of the last good deployment.
type State struct {
	Version  string            `json:"version"`
	Settings map[string]string `json:"settings"`
	Secrets  map[string]string `json:"secrets"`
	Images   map[string]string `json:"images"` // service -> image reference that was running
	Updated  time.Time         `json:"updated"`
}

// StateStore keeps one state file per minion, readable by its owner only.
type StateStore struct {
	Dir string
}

func (s *StateStore) path(minion string) string {
	return filepath.Join(s.Dir, minion, "state.json")
}

// Load returns the minion's state; a minion never summoned has an empty one.
func (s *StateStore) Load(minion string) (*State, error) {
	st := &State{Settings: map[string]string{}, Secrets: map[string]string{}, Images: map[string]string{}}
	data, err := os.ReadFile(s.path(minion))
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state of %s: %w", minion, err)
	}
	if err := json.Unmarshal(data, st); err != nil {
		return nil, fmt.Errorf("reading the state of %s (%s): %w", minion, s.path(minion), err)
	}
	for _, m := range []*map[string]string{&st.Settings, &st.Secrets, &st.Images} {
		if *m == nil {
			*m = map[string]string{}
		}
	}
	return st, nil
}

// Save writes the state atomically with mode 0600.
func (s *StateStore) Save(minion string, st *State) error {
	st.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(s.path(minion), data, 0o600); err != nil {
		return fmt.Errorf("saving the state of %s: %w", minion, err)
	}
	return nil
}

// Remove forgets a minion (banish --purge).
func (s *StateStore) Remove(minion string) error {
	return os.RemoveAll(filepath.Join(s.Dir, minion))
}

// ensureSecrets generates the minion's missing generated settings.
func (st *State) ensureSecrets(m *Minion) (changed bool, err error) {
	for _, set := range m.Settings {
		if !set.Generate || st.Secrets[set.Name] != "" {
			continue
		}
		v, err := randomSecret(32)
		if err != nil {
			return changed, fmt.Errorf("generating %s: %w", set.Name, err)
		}
		st.Secrets[set.Name] = v
		changed = true
	}
	return changed, nil
}

// randomSecret uses letters and digits only, so it is safe in URLs, shell
// and config files of any app.
func randomSecret(n int) (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			return "", err
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b), nil
}
