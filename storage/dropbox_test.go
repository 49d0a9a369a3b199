package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/dropboxtest"
	"github.com/summoner-bot/summoner/storage"
	"github.com/summoner-bot/summoner/storage/storagetest"
)

var dropboxRoots atomic.Int64

// newDropbox makes a backend on the stand-in, in a folder of its own.
func newDropbox(t *testing.T, s *dropboxtest.Server, edit ...func(*storage.DropboxConfig)) *storage.Dropbox {
	t.Helper()
	cfg := storage.DropboxConfig{
		AppKey:       s.AppKey,
		AppSecret:    s.AppSecret,
		RefreshToken: s.RefreshToken,
		Root:         fmt.Sprintf("/Summoner-%d", dropboxRoots.Add(1)),
		Domain:       s.Domain(),
		TokenURL:     s.TokenURL(),
	}
	for _, e := range edit {
		e(&cfg)
	}
	b, err := storage.NewDropbox(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DeleteTree(cfg.Root) }) // the stand-in keeps files in memory
	return b
}

func TestDropboxConformance(t *testing.T) {
	s := dropboxtest.New(t)
	storagetest.Run(t, func(t *testing.T) storage.Backend { return newDropbox(t, s) }, storagetest.Options{})
}

// saveStream saves n bytes of a seeded stream and returns their SHA-256.
func saveStream(t *testing.T, b storage.Backend, name string, seed uint64, n int64) ([]byte, error) {
	t.Helper()
	h := sha256.New()
	err := b.Save(context.Background(), name, io.TeeReader(storagetest.Stream(seed, n), h))
	return h.Sum(nil), err
}

func checkContent(t *testing.T, b storage.Backend, name string, size int64, sum []byte) {
	t.Helper()
	rc, err := b.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil || n != size || !bytes.Equal(h.Sum(nil), sum) {
		t.Fatalf("read back %d of %d bytes (err %v), same content: %v", n, size, err, bytes.Equal(h.Sum(nil), sum))
	}
}

func checkNothing(t *testing.T, b storage.Backend, name string) {
	t.Helper()
	if l, err := b.List(context.Background(), ""); err != nil || len(l) != 0 {
		t.Fatalf("after a failed save List = %+v, %v", l, err)
	}
	if _, err := b.Open(context.Background(), name); !storage.IsNotExist(err) {
		t.Fatalf("Open after a failed save: %v, want ErrNotExist", err)
	}
}

func TestDropboxChunkedUpload(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s, func(c *storage.DropboxConfig) { c.ChunkSize = 8 << 20 })
	sum, err := saveStream(t, b, "big/40.bin", 1, 40<<20)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Appends(); got != 5 {
		t.Errorf("%d chunks appended, want 5", got)
	}
	checkContent(t, b, "big/40.bin", 40<<20, sum)
	if got := s.StoredBytes(); got != 40<<20 {
		t.Errorf("stand-in holds %d bytes, want one copy", got)
	}
}

func TestDropboxTokenExpiresMidUpload(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	if _, err := saveStream(t, b, "first", 1, 10); err != nil { // gets a token
		t.Fatal(err)
	}
	before := s.Refreshes()
	s.ExpireTokenAfterCalls(2) // start and the first append; the second gets 401
	sum, err := saveStream(t, b, "big.bin", 2, 24<<20)
	if err != nil {
		t.Fatalf("upload did not survive the token expiring: %v", err)
	}
	if got := s.Refreshes() - before; got != 1 {
		t.Errorf("%d refreshes during the upload, want 1", got)
	}
	if got := s.Appends(); got != 3 {
		t.Errorf("%d chunks appended, want 3", got)
	}
	checkContent(t, b, "big.bin", 24<<20, sum)
}

// Tokens about to expire are replaced before use, without a 401 first.
func TestDropboxRefreshesBeforeExpiry(t *testing.T) {
	s := dropboxtest.New(t)
	s.TokenLifetime = 30 * time.Second // inside the client's safety margin
	b := newDropbox(t, s)
	for i := range 3 {
		if _, err := b.List(context.Background(), ""); err != nil {
			t.Fatalf("List %d: %v", i, err)
		}
	}
	if got := s.Refreshes(); got != 3 {
		t.Fatalf("%d refreshes for 3 calls, want 3", got)
	}
}

func TestDropboxEmptyFile(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	sum, err := saveStream(t, b, "empty", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkContent(t, b, "empty", 0, sum)
}

func TestDropboxContentHashMismatch(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	s.CorruptNextFinish()
	_, err := saveStream(t, b, "x/bad.bin", 3, 10<<20)
	if err == nil || !strings.Contains(err.Error(), "content hash") {
		t.Fatalf("Save = %v, want a content hash error", err)
	}
	checkNothing(t, b, "x/bad.bin")
}

func TestDropboxFailingAppend(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	s.FailNextAppend()
	if _, err := saveStream(t, b, "x/failed.bin", 4, 20<<20); err == nil {
		t.Fatal("Save succeeded though an append failed")
	}
	checkNothing(t, b, "x/failed.bin")
}

// Dropbox may store a file whose finish call seemed to fail; a failed Save
// must still leave nothing.
func TestDropboxLostFinishResponse(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	s.LoseNextFinishResponse()
	if _, err := saveStream(t, b, "x/lost.bin", 10, 10<<20); err == nil {
		t.Fatal("Save succeeded though finish failed")
	}
	checkNothing(t, b, "x/lost.bin")
}

func TestDropboxCancelledMidSession(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Cancel once two chunks have gone up and the third is being read.
	r := io.MultiReader(storagetest.Stream(5, 16<<20), readFunc(func(p []byte) (int, error) {
		cancel()
		return copy(p, make([]byte, len(p))), nil
	}), storagetest.Stream(6, 16<<20))
	if err := b.Save(ctx, "c/cancelled.bin", r); !errors.Is(err, context.Canceled) {
		t.Fatalf("Save = %v, want context.Canceled", err)
	}
	if got := s.Appends(); got != 2 {
		t.Errorf("%d chunks appended, want 2", got)
	}
	checkNothing(t, b, "c/cancelled.bin")
}

type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

func TestDropboxRevokedRefreshToken(t *testing.T) {
	s := dropboxtest.New(t)
	s.RevokeRefreshToken()
	b := newDropbox(t, s)
	_, err := saveStream(t, b, "a.txt", 7, 100)
	if !errors.Is(err, storage.ErrDropboxRefreshRefused) || !strings.Contains(err.Error(), "refresh token") {
		t.Fatalf("Save = %v, want the refresh token refused", err)
	}
	if strings.Contains(err.Error(), s.RefreshToken) || strings.Contains(err.Error(), s.AppSecret) {
		t.Fatalf("error shows a secret: %v", err)
	}
	if _, err := b.List(context.Background(), ""); !errors.Is(err, storage.ErrDropboxRefreshRefused) {
		t.Fatalf("List = %v, want the refresh token refused", err)
	}
}

func TestDropboxWrongAppSecret(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s, func(c *storage.DropboxConfig) { c.AppSecret = "not-it" })
	_, err := b.List(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "app key or secret") || strings.Contains(err.Error(), "not-it") {
		t.Fatalf("List = %v, want the app secret refused, without showing it", err)
	}
}

// Dropbox wants non-ASCII header arguments escaped; the SDK does not.
func TestDropboxNonASCIINames(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	for _, name := range []string{"ünï/файл 😀.txt", "big/日本.bin"} {
		size := int64(10)
		if strings.HasPrefix(name, "big/") {
			size = 9 << 20 // through an upload session
		}
		sum, err := saveStream(t, b, name, 8, size)
		if err != nil {
			t.Fatal(err)
		}
		checkContent(t, b, name, size, sum)
		if l, err := b.List(context.Background(), name); err != nil || len(l) != 1 || l[0].Name != name {
			t.Fatalf("List(%q) = %+v, %v", name, l, err)
		}
	}
}

// A file name must never remove a folder of files.
func TestDropboxRemoveRefusesFolders(t *testing.T) {
	s := dropboxtest.New(t)
	b := newDropbox(t, s)
	if _, err := saveStream(t, b, "dir/file", 9, 10); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(context.Background(), "dir"); err == nil {
		t.Fatal("Remove of a folder succeeded")
	}
	if l, _ := b.List(context.Background(), ""); len(l) != 1 {
		t.Fatalf("List = %+v after removing a folder name", l)
	}
}

func TestNewDropboxChecksConfig(t *testing.T) {
	good := storage.DropboxConfig{AppKey: "k", AppSecret: "s3cr3t", RefreshToken: "r3fr3sh", Root: "/summoner"}
	if b, err := storage.NewDropbox(good); err != nil || b.Name() != "dropbox:/summoner" {
		t.Fatalf("NewDropbox(good) = %v, %v", b, err)
	}
	for _, tc := range []struct {
		edit func(*storage.DropboxConfig)
		want string
	}{
		{func(c *storage.DropboxConfig) { c.AppKey = " " }, "AppKey"},
		{func(c *storage.DropboxConfig) { c.RefreshToken = "" }, "RefreshToken"},
		{func(c *storage.DropboxConfig) { c.Root = "" }, "Root"},
		{func(c *storage.DropboxConfig) { c.Root = "summoner" }, "Root"},
		{func(c *storage.DropboxConfig) { c.Root = "/summoner/" }, "Root"},
		{func(c *storage.DropboxConfig) { c.Root = "/a/../b" }, "Root"},
		{func(c *storage.DropboxConfig) { c.ChunkSize = 5 << 20 }, "ChunkSize"},
		{func(c *storage.DropboxConfig) { c.ChunkSize = -4 << 20 }, "ChunkSize"},
		{func(c *storage.DropboxConfig) { c.ChunkSize = 152 << 20 }, "ChunkSize"},
		{func(c *storage.DropboxConfig) { c.Domain = "example.com" }, "Domain"},
		{func(c *storage.DropboxConfig) { c.Domain = "http://127.0.0.1:1" }, "TokenURL"},
		{func(c *storage.DropboxConfig) { c.TokenURL = "token" }, "TokenURL"},
	} {
		cfg := good
		tc.edit(&cfg)
		_, err := storage.NewDropbox(cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewDropbox(%+v) = %v, want an error about %s", cfg, err, tc.want)
		} else if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "r3fr3sh") {
			t.Errorf("error shows a secret: %v", err)
		}
	}
	cfg := good
	cfg.Root = "/"
	if b, err := storage.NewDropbox(cfg); err != nil || b.Name() != "dropbox:/" {
		t.Fatalf("NewDropbox(Root /) = %v, %v", b, err)
	}
}
