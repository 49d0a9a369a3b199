package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// CopyCheck is the result of verifying one copy of a backup.
type CopyCheck struct {
	Location
	Err       error // nil: the copy is good; else a *DestinationError
	Decrypted bool  // false when encrypted and no identity was configured
}

// Verify fetches every copy of a backup, checks the stored bytes' hash,
// decrypts and decompresses them to nowhere and checks the payload's hash.
func (r *Repository) Verify(ctx context.Context, id string) (*Manifest, []CopyCheck, error) {
	var (
		m      *Manifest
		checks []CopyCheck
	)
	for i, b := range r.o.Backends {
		bm, err := readManifest(ctx, b, path.Join(id, manifestFile))
		if IsNotExist(err) {
			continue
		}
		if err != nil {
			checks = append(checks, CopyCheck{Location: r.at(i), Err: r.failure(i, OpRead, err)})
			continue
		}
		m = bm
		check := CopyCheck{Location: r.at(i)}
		if check.Decrypted, err = r.verifyCopy(ctx, b, bm); err != nil {
			check.Err = r.failure(i, OpRead, err)
		}
		checks = append(checks, check)
	}
	if m == nil && len(checks) == 0 {
		return nil, nil, fmt.Errorf("no backup %s: %w", id, ErrNotExist)
	}
	if err := r.vlog.record(id, checks, r.o.Now()); err != nil {
		r.log.Warn("recording a verify", "backup", id, "err", err)
	}
	return m, checks, nil
}

func (r *Repository) verifyCopy(ctx context.Context, b Backend, m *Manifest) (bool, error) {
	rc, err := b.Open(ctx, path.Join(m.ID, m.DataFile))
	if err != nil {
		return false, err
	}
	defer rc.Close()
	stored := newCounter()
	in := io.TeeReader(rc, stored)
	if len(m.Encryption) > 0 && len(r.o.Identities) == 0 {
		if _, err := io.Copy(io.Discard, in); err != nil {
			return false, fmt.Errorf("reading: %w", err)
		}
		return false, compareSum("stored bytes", stored.sum(), m.Stored)
	}
	plain, err := r.decode(in, m)
	if err != nil {
		return false, err
	}
	defer plain.Close()
	pc := newCounter()
	if _, err := io.Copy(pc, plain); err != nil {
		return false, fmt.Errorf("decoding: %w", err)
	}
	if _, err := io.Copy(io.Discard, in); err != nil { // the tail, if any
		return false, fmt.Errorf("reading: %w", err)
	}
	if err := compareSum("stored bytes", stored.sum(), m.Stored); err != nil {
		return true, err
	}
	return true, compareSum("payload", pc.sum(), m.Payload)
}

func compareSum(what string, got, want Sum) error {
	if got != want {
		return &mismatch{fmt.Sprintf("%s differ from the manifest: %d bytes with sha256 %.12s…, expected %d with %.12s…", what, got.Size, got.SHA256, want.Size, want.SHA256)}
	}
	return nil
}

// decode undoes encryption and compression.
func (r *Repository) decode(in io.Reader, m *Manifest) (io.ReadCloser, error) {
	if len(m.Encryption) > 0 {
		if len(r.o.Identities) == 0 {
			return nil, errors.New("the backup is encrypted and no identity (backups.encryption.identity_file) is configured")
		}
		dr, err := age.Decrypt(in, r.o.Identities...)
		if err != nil {
			return nil, fmt.Errorf("decrypting: %w", err)
		}
		in = dr
	}
	zr, err := zstd.NewReader(in, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("decompressing: %w", err)
	}
	return zr.IOReadCloser(), nil
}

// Open returns a backup's plain payload from the first destination that
// has a complete copy. Reading it to the end checks its hash: a copy that
// does not match the manifest fails with an error at the end, never
// silently.
func (r *Repository) Open(ctx context.Context, id string) (io.ReadCloser, *Manifest, error) {
	var errs []error
	for i, b := range r.o.Backends {
		m, err := readManifest(ctx, b, path.Join(id, manifestFile))
		if err != nil {
			if !IsNotExist(err) {
				errs = append(errs, r.failure(i, OpRead, err))
			}
			continue
		}
		rc, err := b.Open(ctx, path.Join(id, m.DataFile))
		if err != nil {
			errs = append(errs, r.failure(i, OpRead, err))
			continue
		}
		plain, err := r.decode(rc, m)
		if err != nil {
			rc.Close()
			errs = append(errs, r.failure(i, OpRead, err))
			continue
		}
		return &checkedReader{r: plain, raw: rc, c: newCounter(), want: m.Payload}, m, nil
	}
	if len(errs) == 0 {
		return nil, nil, fmt.Errorf("no backup %s: %w", id, ErrNotExist)
	}
	return nil, nil, fmt.Errorf("opening backup %s: %w", id, errors.Join(errs...))
}

type checkedReader struct {
	r, raw io.ReadCloser
	c      *counter
	want   Sum
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.c.Write(p[:n])
	if err == io.EOF {
		if cerr := compareSum("payload", c.c.sum(), c.want); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (c *checkedReader) Close() error {
	c.r.Close()
	return c.raw.Close()
}
