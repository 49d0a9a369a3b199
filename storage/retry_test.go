package storage_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/storage"
)

// flaky fails its first n calls of each kind.
type flaky struct {
	storage.Backend
	n     int
	calls map[string]int
}

func (f *flaky) fail(op string) error {
	f.calls[op]++
	if f.calls[op] <= f.n {
		return errors.New("temporary failure")
	}
	return nil
}

func (f *flaky) Save(ctx context.Context, name string, r io.Reader) error {
	if err := f.fail("save"); err != nil {
		_, _ = io.CopyN(io.Discard, r, 3) // consume some, as a real upload would; its error is not the point
		return err
	}
	return f.Backend.Save(ctx, name, r)
}

func (f *flaky) List(ctx context.Context, p string) ([]storage.FileInfo, error) {
	if err := f.fail("list"); err != nil {
		return nil, err
	}
	return f.Backend.List(ctx, p)
}

func TestRetrying(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		failures int
		seekable bool
		wantErr  bool
		saves    int
	}{
		{"recovers after two failures", 2, true, false, 3},
		{"gives up after four", 9, true, true, 4},
		{"does not resend a stream", 1, false, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &flaky{Backend: &storage.Local{Root: t.TempDir()}, n: tt.failures, calls: map[string]int{}}
			r := &storage.Retrying{Backend: f, Min: time.Millisecond, Max: 2 * time.Millisecond}
			var src io.Reader = strings.NewReader("content")
			if !tt.seekable {
				src = io.MultiReader(src)
			}
			err := r.Save(ctx, "a/b", src)
			if (err != nil) != tt.wantErr || f.calls["save"] != tt.saves {
				t.Fatalf("Save = %v after %d tries; want error %v after %d", err, f.calls["save"], tt.wantErr, tt.saves)
			}
			if !tt.wantErr {
				files, err := r.List(ctx, "")
				if err != nil || len(files) != 1 || files[0].Size != int64(len("content")) {
					t.Fatalf("List = %v, %v", files, err)
				}
			}
		})
	}
}
