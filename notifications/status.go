package notifications

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// FileStatus is a StatusMemory kept in a JSON file, so "only when the
// status changed" still knows a red build after the bot restarts. The map
// holds one short entry per project, branch and pipeline kind: small
// enough to rewrite whole on each change.
type FileStatus struct {
	path string
	mu   sync.Mutex
	m    map[string]string
}

var _ StatusMemory = (*FileStatus)(nil)

// OpenFileStatus reads path, or starts empty when it does not exist yet.
func OpenFileStatus(path string) (*FileStatus, error) {
	s := &FileStatus{path: path, m: map[string]string{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("reading the build statuses %s: %w", path, err)
	}
	if err := json.Unmarshal(data, &s.m); err != nil {
		return nil, fmt.Errorf("reading the build statuses %s: %w", path, err)
	}
	return s, nil
}

// Swap implements StatusMemory; the file is written before it returns
// whenever the status changed.
func (s *FileStatus) Swap(_ context.Context, key, status string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, ok := s.m[key]
	if ok && prev == status {
		return prev, true, nil
	}
	s.m[key] = status
	data, err := json.Marshal(s.m)
	if err == nil {
		err = atomicfile.Write(s.path, data, 0o600)
	}
	if err != nil {
		// Keep memory and file alike: the next event tries again.
		if ok {
			s.m[key] = prev
		} else {
			delete(s.m, key)
		}
		return "", false, fmt.Errorf("saving the build statuses: %w", err)
	}
	return prev, ok, nil
}
