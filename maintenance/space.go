package maintenance

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/summoner-bot/summoner/internal/human"
	"github.com/summoner-bot/summoner/storage"
)

// DiskSpace reports the free bytes of the file system that holds dir.
type DiskSpace interface {
	Free(dir string) (uint64, error)
}

// statfsSpace asks the kernel.
type statfsSpace struct{}

func (statfsSpace) Free(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("reading the free space of %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// throwawayRoom is what a throwaway database is asked to leave free,
// beyond a guess of what the restored data takes (see needRoom).
const throwawayRoom = 1 << 30

// needRoom guesses what restoring a dump of payload bytes writes: a
// custom-format dump is compressed, and indexes are rebuilt, so three
// times its size, plus room for the server's own files and the host.
func needRoom(payload int64) uint64 { return 3*uint64(max(payload, 0)) + throwawayRoom }

// NoRoomError is a test restore refused before it started: the disk it
// would write to has too little free space. Nothing was tested, so it
// says nothing about the backup.
type NoRoomError struct {
	Minion, BackupID string
	Where            string // in words, never a path: "the disk of Docker's data root"
	Need, Free       uint64
}

func (e *NoRoomError) Error() string { return e.UserMessage() }

// UserMessage says why the test restore did not run, for chat.
func (e *NoRoomError) UserMessage() string {
	return fmt.Sprintf("⚠️ The test restore of %s from %s did not run: %s", e.Minion, e.BackupID, e.Public())
}

// Public is why, made of names and sizes only (see PublicError).
func (e *NoRoomError) Public() string {
	return fmt.Sprintf("%s has %s free, and restoring %s needs about %s. "+
		"Nothing was tested, so this says nothing about the backup; free some space, then `verify-restore %s %s` tries again.",
		e.Where, human.Bytes(int64(e.Free)), e.BackupID, human.Bytes(int64(e.Need)), e.Minion, e.BackupID)
}

// checkRoom refuses a test restore whose throwaway database would not fit
// on the disk of Docker's data root, where its volume lives. A root that
// is not on this machine (a remote engine) cannot be measured: the check
// is skipped then, and logged.
func (s *Service) checkRoom(root string, m *storage.Manifest) error {
	need := needRoom(m.Payload.Size)
	free, err := s.o.Space.Free(root)
	if errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("Docker's data root is not on this machine; the test restore goes ahead without a free-space check", "dir", root)
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking the free space for the throwaway database: %w", err)
	}
	if free < need {
		s.log.Warn("refusing a test restore: too little free space", "minion", m.Minion, "backup", m.ID, "dir", root, "free", free, "need", need)
		return &NoRoomError{Minion: m.Minion, BackupID: m.ID, Where: "the disk of Docker's data root", Need: need, Free: free}
	}
	return nil
}
