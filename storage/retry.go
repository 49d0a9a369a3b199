package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
)

// Retrying wraps any Backend and retries failed calls with exponential
// backoff and jitter. A Save is retried only when its reader can be rewound
// (an io.Seeker): a stream that was partly consumed cannot be sent again,
// and its failure is reported instead (the next backup run tries again).
type Retrying struct {
	Backend
	Attempts int           // default 4
	Min, Max time.Duration // default 500 ms to 10 s
}

var _ Backend = (*Retrying)(nil)

func (r *Retrying) do(ctx context.Context, what string, f func() error) error {
	attempts, lo, hi := r.Attempts, r.Min, r.Max
	if attempts <= 0 {
		attempts = 4
	}
	if lo <= 0 {
		lo = 500 * time.Millisecond
	}
	if hi < lo {
		hi = max(10*time.Second, lo)
	}
	var err error
	for i := range attempts {
		if err = f(); err == nil || IsNotExist(err) || errors.Is(err, context.Canceled) || ctx.Err() != nil {
			return err
		}
		if i == attempts-1 {
			break
		}
		d := min(hi, lo<<i)
		d = d/2 + rand.N(d/2+1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(d):
		}
	}
	return fmt.Errorf("%s on %s failed %d times: %w", what, r.Backend.Name(), attempts, err)
}

// Save retries when r can be rewound.
func (r *Retrying) Save(ctx context.Context, name string, rd io.Reader) error {
	s, ok := rd.(io.Seeker)
	if !ok {
		return r.Backend.Save(ctx, name, rd)
	}
	return r.do(ctx, "saving "+name, func() error {
		if _, err := s.Seek(0, io.SeekStart); err != nil {
			return err
		}
		return r.Backend.Save(ctx, name, rd)
	})
}

// Open retries.
func (r *Retrying) Open(ctx context.Context, name string) (rc io.ReadCloser, err error) {
	err = r.do(ctx, "opening "+name, func() (err error) { rc, err = r.Backend.Open(ctx, name); return err })
	return rc, err
}

// List retries.
func (r *Retrying) List(ctx context.Context, prefix string) (fs []FileInfo, err error) {
	err = r.do(ctx, "listing", func() (err error) { fs, err = r.Backend.List(ctx, prefix); return err })
	return fs, err
}

// Remove retries.
func (r *Retrying) Remove(ctx context.Context, name string) error {
	return r.do(ctx, "removing "+name, func() error { return r.Backend.Remove(ctx, name) })
}
