package storage

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// Backend stores files by name ("wekan/20261126T031500Z-dump/manifest.json",
// always with "/" separators). Implementations MUST honour ctx and be safe
// for concurrent use, and follow this contract (storagetest checks it):
//
//   - Save is atomic: the name holds the whole content or does not exist.
//     If r fails or ctx ends, Save returns an error and leaves nothing
//     under name. Saving an existing name replaces it.
//   - Open of a missing name returns an error that errors.Is ErrNotExist.
//   - List returns every file whose name starts with prefix, sorted by
//     name, without partial uploads.
//   - Remove of a missing name is not an error.
type Backend interface {
	Name() string
	Save(ctx context.Context, name string, r io.Reader) error
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	List(ctx context.Context, prefix string) ([]FileInfo, error)
	Remove(ctx context.Context, name string) error
}

// FileInfo describes a stored file.
type FileInfo struct {
	Name    string
	Size    int64
	ModTime time.Time
}

// ErrNotExist is wrapped by errors for missing files.
var ErrNotExist = fs.ErrNotExist

// IsNotExist tells whether err means the file is missing.
func IsNotExist(err error) bool { return errors.Is(err, ErrNotExist) }
