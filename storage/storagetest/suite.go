// Package storagetest is the conformance suite every storage.Backend must
// pass: the contract in storage.Backend's comment, checked with real bytes
// (a 200 MiB stream by default), failures mid-upload and concurrent saves.
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"filippo.io/age"

	"github.com/summoner-bot/summoner/internal/itgate"
	"github.com/summoner-bot/summoner/storage"
)

// Options tune the suite.
type Options struct {
	// Size of the large stream; default 200 MiB in CI
	// (SUMMONER_INTEGRATION=1), 16 MiB otherwise or with -short, so a
	// plain `go test ./...` stays quick.
	Size int64
}

// Run checks b against the Backend contract. newBackend returns a backend
// over empty storage each time.
func Run(t *testing.T, newBackend func(t *testing.T) storage.Backend, o Options) {
	if o.Size == 0 {
		o.Size = 16 << 20
		if itgate.On() && !testing.Short() {
			o.Size = 200 << 20
		}
	}
	ctx := context.Background()

	t.Run("small round trip", func(t *testing.T) {
		b := newBackend(t)
		mustSave(t, b, "a/b/c.txt", []byte("hello"))
		list := mustList(t, b, "a/")
		if len(list) != 1 || list[0].Name != "a/b/c.txt" || list[0].Size != 5 {
			t.Fatalf("List(a/) = %+v", list)
		}
		if got := mustRead(t, b, "a/b/c.txt"); string(got) != "hello" {
			t.Fatalf("read %q", got)
		}
		mustSave(t, b, "a/b/c.txt", []byte("replaced"))
		if got := mustRead(t, b, "a/b/c.txt"); string(got) != "replaced" {
			t.Fatalf("after overwrite read %q", got)
		}
		if err := b.Remove(ctx, "a/b/c.txt"); err != nil {
			t.Fatal(err)
		}
		if err := b.Remove(ctx, "a/b/c.txt"); err != nil {
			t.Fatalf("removing a missing file: %v", err)
		}
		if list := mustList(t, b, "a/"); len(list) != 0 {
			t.Fatalf("after remove List = %+v", list)
		}
		if _, err := b.Open(ctx, "a/b/c.txt"); !storage.IsNotExist(err) {
			t.Fatalf("Open of a removed file: %v, want ErrNotExist", err)
		}
	})

	t.Run("large stream byte-identical", func(t *testing.T) {
		b := newBackend(t)
		want := sha256.New()
		if err := b.Save(ctx, "big/stream.bin", io.TeeReader(Stream(1, o.Size), want)); err != nil {
			t.Fatalf("saving %d bytes: %v", o.Size, err)
		}
		list := mustList(t, b, "big/")
		if len(list) != 1 || list[0].Size != o.Size {
			t.Fatalf("List = %+v, want one file of %d bytes", list, o.Size)
		}
		rc, err := b.Open(ctx, "big/stream.bin")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		got := sha256.New()
		n, err := io.Copy(got, rc)
		if err != nil || n != o.Size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
			t.Fatalf("read back %d bytes (err %v); content differs: %v", n, err, !bytes.Equal(got.Sum(nil), want.Sum(nil)))
		}
	})

	t.Run("failing reader leaves nothing", func(t *testing.T) {
		b := newBackend(t)
		r := io.MultiReader(Stream(2, 3<<20), errReader{errors.New("source broke")})
		if err := b.Save(ctx, "f/broken.bin", r); err == nil {
			t.Fatal("Save succeeded with a failing reader")
		}
		assertGone(t, b, "f/", "f/broken.bin")
	})

	t.Run("cancelled context leaves nothing", func(t *testing.T) {
		b := newBackend(t)
		cctx, cancel := context.WithCancel(ctx)
		r := &cancelAfter{r: Stream(3, 64<<20), n: 2 << 20, cancel: cancel}
		if err := b.Save(cctx, "c/cancelled.bin", r); err == nil {
			t.Fatal("Save succeeded after its context was cancelled")
		}
		assertGone(t, b, "c/", "c/cancelled.bin")
	})

	t.Run("concurrent saves", func(t *testing.T) {
		b := newBackend(t)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = b.Save(ctx, fmt.Sprintf("conc/%d.bin", i), Stream(uint64(10+i), 2<<20))
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("save %d: %v", i, err)
			}
		}
		if list := mustList(t, b, "conc/"); len(list) != n {
			t.Fatalf("%d files listed, want %d", len(list), n)
		}
		for i := range n {
			got := mustRead(t, b, fmt.Sprintf("conc/%d.bin", i))
			want, _ := io.ReadAll(Stream(uint64(10+i), 2<<20))
			if !bytes.Equal(got, want) {
				t.Fatalf("file %d differs", i)
			}
		}
	})

	t.Run("list by prefix, sorted", func(t *testing.T) {
		b := newBackend(t)
		for _, n := range []string{"y/4", "x/2", "xy/3", "x/1"} {
			mustSave(t, b, n, []byte(n))
		}
		names := func(fs []storage.FileInfo) []string {
			var out []string
			for _, f := range fs {
				out = append(out, f.Name)
			}
			return out
		}
		if got := names(mustList(t, b, "x/")); !slices.Equal(got, []string{"x/1", "x/2"}) {
			t.Fatalf("List(x/) = %v", got)
		}
		if got := names(mustList(t, b, "")); !slices.Equal(got, []string{"x/1", "x/2", "xy/3", "y/4"}) {
			t.Fatalf("List() = %v", got)
		}
		if got := mustList(t, b, "nothing/"); len(got) != 0 {
			t.Fatalf("List(nothing/) = %v", got)
		}
	})

	t.Run("repository round trip", func(t *testing.T) {
		for _, encrypted := range []bool{false, true} {
			t.Run(fmt.Sprintf("encrypted=%v", encrypted), func(t *testing.T) {
				repoRoundTrip(t, newBackend(t), o.Size, encrypted)
			})
		}
	})

	t.Run("names cannot escape", func(t *testing.T) {
		b := newBackend(t)
		for _, n := range []string{"../escape", "/abs", "a/../../b"} {
			if err := b.Save(ctx, n, bytes.NewReader([]byte("x"))); err == nil {
				t.Errorf("Save(%q) succeeded", n)
			}
		}
	})
}

// Stream is n deterministic pseudo-random bytes, made as they are read, so
// huge test payloads cost no memory.
func Stream(seed uint64, n int64) io.Reader {
	return io.LimitReader(&randReader{r: rand.NewChaCha8(seedBytes(seed))}, n)
}

func seedBytes(s uint64) [32]byte {
	var b [32]byte
	for i := range 8 {
		b[i] = byte(s >> (8 * i))
	}
	return b
}

type randReader struct{ r *rand.ChaCha8 }

func (r *randReader) Read(p []byte) (int, error) { return r.r.Read(p) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

type cancelAfter struct {
	r      io.Reader
	n      int64
	cancel func()
	read   int64
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read >= c.n {
		c.cancel()
	}
	return n, err
}

func mustSave(t *testing.T, b storage.Backend, name string, data []byte) {
	t.Helper()
	if err := b.Save(context.Background(), name, bytes.NewReader(data)); err != nil {
		t.Fatalf("Save(%s): %v", name, err)
	}
}

func mustList(t *testing.T, b storage.Backend, prefix string) []storage.FileInfo {
	t.Helper()
	l, err := b.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return l
}

func mustRead(t *testing.T, b storage.Backend, name string) []byte {
	t.Helper()
	rc, err := b.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return data
}

func assertGone(t *testing.T, b storage.Backend, prefix, name string) {
	t.Helper()
	if l := mustList(t, b, prefix); len(l) != 0 {
		t.Fatalf("a failed save left %+v", l)
	}
	if _, err := b.Open(context.Background(), name); !storage.IsNotExist(err) {
		t.Fatalf("Open after a failed save: %v, want ErrNotExist", err)
	}
}

// repoRoundTrip stores size bytes through a Repository on b, lists,
// verifies, reads back byte-identical, and prunes it away.
func repoRoundTrip(t *testing.T, b storage.Backend, size int64, encrypted bool) {
	ctx := context.Background()
	o := storage.Options{Backends: []storage.Backend{b}, Version: "test"}
	if encrypted {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			t.Fatal(err)
		}
		o.Recipients, o.Identities = []string{id.Recipient().String()}, []age.Identity{id}
	}
	repo, err := storage.NewRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	res, err := repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump, DBKind: "mongodb"}, io.TeeReader(Stream(7, size), want))
	if err != nil {
		t.Fatalf("Store: %v", err)
	}
	if res.Manifest.Payload.Size != size || res.Manifest.Payload.SHA256 != fmt.Sprintf("%x", want.Sum(nil)) {
		t.Fatalf("manifest payload %+v", res.Manifest.Payload)
	}
	list, errs := repo.List(ctx, "wekan")
	if len(errs) > 0 || len(list) != 1 || list[0].Manifest.ID != res.Manifest.ID {
		t.Fatalf("List = %+v, %v", list, errs)
	}
	_, checks, err := repo.Verify(ctx, res.Manifest.ID)
	if err != nil || len(checks) != 1 || checks[0].Err != nil || !checks[0].Decrypted {
		t.Fatalf("Verify = %+v, %v", checks, err)
	}
	rc, _, err := repo.Open(ctx, res.Manifest.ID)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	if err != nil || n != size || !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatalf("read back %d of %d bytes, err %v, equal %v", n, size, err, bytes.Equal(got.Sum(nil), want.Sum(nil)))
	}
	files, err := b.List(ctx, res.Manifest.ID+"/")
	if err != nil || len(files) != 2 {
		t.Fatalf("files of the backup: %+v, %v", files, err)
	}
	for _, f := range files {
		if err := b.Remove(ctx, f.Name); err != nil {
			t.Fatal(err)
		}
	}
	if list, _ := repo.List(ctx, "wekan"); len(list) != 0 {
		t.Fatalf("after removal List = %+v", list)
	}
}
