package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Local stores files in a folder of this machine.
type Local struct {
	Root string
}

var _ Backend = (*Local)(nil)

// Name says where the files go.
func (l *Local) Name() string { return "local:" + l.Root }

func (l *Local) path(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	return filepath.Join(l.Root, filepath.FromSlash(name)), nil
}

// checkName refuses names that could escape the backend's root.
func checkName(name string) error {
	clean := path.Clean(name)
	if name == "" || clean != name || strings.HasPrefix(name, "/") || clean == ".." || strings.HasPrefix(clean, "../") {
		return fmt.Errorf("bad file name %q", name)
	}
	return nil
}

// Save writes to a temporary file beside the target, syncs it and renames
// it into place, so a crash leaves the old state or the new, never half.
func (l *Local) Save(ctx context.Context, name string, r io.Reader) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".part-*")
	if err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		f.Close()
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	return syncDir(filepath.Dir(p))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open opens a stored file.
func (l *Local) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	return f, nil
}

// List walks the folder for names starting with prefix.
func (l *Local) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	var out []FileInfo
	err := filepath.WalkDir(l.Root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(l.Root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && !strings.HasPrefix(rel+"/", prefix) && !strings.HasPrefix(prefix, rel+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".part-") {
			return nil // an upload in progress or left by a crash
		}
		if !strings.HasPrefix(rel, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		out = append(out, FileInfo{Name: rel, Size: info.Size(), ModTime: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", l.Name(), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a file, and its folder when that becomes empty.
func (l *Local) Remove(ctx context.Context, name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", name, err)
	}
	for dir := filepath.Dir(p); dir != filepath.Clean(l.Root) && strings.HasPrefix(dir, filepath.Clean(l.Root)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty
		}
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
