package storage

import (
	"errors"
	"fmt"
)

// Op is what the repository was doing on a destination when it failed.
type Op string

// The operations a DestinationError names.
const (
	OpList   Op = "listing"
	OpRead   Op = "reading"
	OpSave   Op = "storing"
	OpRemove Op = "removing"
)

// ErrDamaged is matched (errors.Is) by errors that say a copy's bytes do
// not match its manifest: the copy was read, and it is wrong.
var ErrDamaged = errors.New("the copy does not match its manifest")

// DestinationError is a failure on one destination. Destination is the
// name from the config, safe to show anyone; Err is the detailed cause,
// which may name hosts, users, paths and backend messages, so it is for
// logs and operators only. Public says what failed without it.
type DestinationError struct {
	Destination string
	Op          Op
	Err         error
}

func (e *DestinationError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, e.Destination, e.Err)
}

func (e *DestinationError) Unwrap() error { return e.Err }

// Public describes the failure in a few words a non-expert understands,
// naming only the destination: never a host, a user, a path or the
// backend's own message.
func (e *DestinationError) Public() string {
	switch {
	case errors.Is(e.Err, ErrDamaged):
		return fmt.Sprintf("the copy on %s is damaged: it differs from what was stored", e.Destination)
	case e.Op == OpList:
		return fmt.Sprintf("%s could not be listed", e.Destination)
	case e.Op == OpRead:
		return fmt.Sprintf("the copy on %s could not be read", e.Destination)
	case e.Op == OpSave:
		return fmt.Sprintf("%s did not get a good copy", e.Destination)
	case e.Op == OpRemove:
		return fmt.Sprintf("a backup could not be removed from %s", e.Destination)
	}
	return fmt.Sprintf("%s failed", e.Destination)
}

// mismatch is a copy whose size or hash differs from its manifest; its
// message keeps the numbers, and it matches ErrDamaged.
type mismatch struct{ msg string }

func (m *mismatch) Error() string        { return m.msg }
func (m *mismatch) Is(target error) bool { return target == ErrDamaged }
