package storage_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/sshtest"
	"github.com/summoner-bot/summoner/storage"
	"github.com/summoner-bot/summoner/storage/storagetest"
)

func newSFTP(t *testing.T, srv *sshtest.Server, root string, edit func(*storage.SFTPConfig)) *storage.SFTP {
	t.Helper()
	cfg := storage.SFTPConfig{
		Addr:           srv.Addr,
		User:           srv.User,
		KeyFile:        srv.KeyFile,
		KnownHostsFile: srv.KnownHostsFile,
		Root:           root,
	}
	if edit != nil {
		edit(&cfg)
	}
	b, err := storage.NewSFTP(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestSFTPConformance(t *testing.T) {
	srv := sshtest.Start(t)
	var n atomic.Int32
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		// Relative: resolved in the SFTP start folder (DataDir).
		return newSFTP(t, srv, fmt.Sprintf("conformance/%d", n.Add(1)), nil)
	}, storagetest.Options{})
	// Every failed save cleaned up after itself.
	if parts := partFiles(t, srv.DataDir); len(parts) > 0 {
		t.Errorf("temp files left on the server: %v", parts)
	}
}

func TestSFTPConfig(t *testing.T) {
	srv := sshtest.Start(t)
	base := storage.SFTPConfig{Addr: srv.Addr, User: srv.User, KeyFile: srv.KeyFile, KnownHostsFile: srv.KnownHostsFile, Root: "x"}
	key, err := os.ReadFile(srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		edit func(*storage.SFTPConfig)
		want string
	}{
		{func(c *storage.SFTPConfig) { c.Addr = "" }, "Addr"},
		{func(c *storage.SFTPConfig) { c.Addr = "nohost" }, "Addr"},
		{func(c *storage.SFTPConfig) { c.User = "" }, "User"},
		{func(c *storage.SFTPConfig) { c.KeyFile = "" }, "KeyFile"},
		{func(c *storage.SFTPConfig) { c.KeyFile = "/nonexistent/key" }, "KeyFile"},
		{func(c *storage.SFTPConfig) { c.KeyFile = srv.KnownHostsFile }, "not a private key"},
		{func(c *storage.SFTPConfig) { c.Key = key }, "not both"},
		{func(c *storage.SFTPConfig) { c.KnownHostsFile = "" }, "KnownHostsFile"},
		{func(c *storage.SFTPConfig) { c.KnownHostsFile = "/nonexistent/known_hosts" }, "KnownHostsFile"},
		{func(c *storage.SFTPConfig) { c.Root = "" }, "Root"},
	} {
		cfg := base
		c.edit(&cfg)
		_, err := storage.NewSFTP(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewSFTP(%+v) = %v, want an error naming %s", cfg, err, c.want)
		}
		if err != nil && bytes.Contains([]byte(err.Error()), key[40:80]) {
			t.Errorf("error shows the key: %v", err)
		}
	}

	// Key bytes instead of a file work too.
	b := newSFTP(t, srv, "keybytes", func(c *storage.SFTPConfig) { c.KeyFile, c.Key = "", key })
	if err := b.Save(context.Background(), "f", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Name(), "sftp:"+srv.User+"@"+srv.Addr+"/./keybytes"; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	if got := newSFTP(t, srv, "/srv/backups", nil).Name(); got != "sftp:"+srv.User+"@"+srv.Addr+"/srv/backups" {
		t.Errorf("Name() = %q", got)
	}
}

func TestSFTPHostKeyChecked(t *testing.T) {
	srv := sshtest.Start(t)
	ctx := context.Background()
	_, port, _ := strings.Cut(srv.Addr, ":")

	empty := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := newSFTP(t, srv, filepath.Join(srv.DataDir, "unknown"), func(c *storage.SFTPConfig) { c.KnownHostsFile = empty })
	err := unknown.Save(ctx, "a/f", strings.NewReader("secret"))
	var hk *storage.HostKeyError
	if !errors.As(err, &hk) || hk.Changed {
		t.Fatalf("unknown host: Save = %v, want a HostKeyError for an unknown host", err)
	}
	for _, want := range []string{"is not in " + empty, "ssh-keyscan -p " + port + " 127.0.0.1 >> " + empty} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unknown host error %q does not say %q", err, want)
		}
	}
	if _, err := unknown.List(ctx, ""); !errors.As(err, &hk) {
		t.Errorf("unknown host: List = %v", err)
	}

	changed := newSFTP(t, srv, filepath.Join(srv.DataDir, "changed"), func(c *storage.SFTPConfig) { c.KnownHostsFile = srv.OtherHostKeyKnownHosts(t) })
	err = changed.Save(ctx, "a/f", strings.NewReader("secret"))
	if !errors.As(err, &hk) || !hk.Changed {
		t.Fatalf("changed key: Save = %v, want a HostKeyError for a changed key", err)
	}
	for _, want := range []string{"CHANGED", "ssh-keygen -R"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("changed key error %q does not say %q", err, want)
		}
	}
	if _, err := changed.Open(ctx, "a/f"); !errors.As(err, &hk) || storage.IsNotExist(err) {
		t.Errorf("changed key: Open = %v", err)
	}

	for _, d := range []string{"unknown", "changed"} {
		if _, err := os.Stat(filepath.Join(srv.DataDir, d)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused connection wrote %s: %v", d, err)
		}
	}
	// The right known_hosts works on the same server.
	good := newSFTP(t, srv, filepath.Join(srv.DataDir, "good"), nil)
	if err := good.Save(ctx, "a/f", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
}

// killAfter reads r and kills the server once n bytes went through.
type killAfter struct {
	r    io.Reader
	n    int64
	read int64
	once sync.Once
	kill func()
}

func (k *killAfter) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	k.read += int64(n)
	if k.read >= k.n {
		k.once.Do(func() { go k.kill() })
	}
	return n, err
}

func TestSFTPServerKilledMidSave(t *testing.T) {
	srv := sshtest.Start(t)
	ctx := context.Background()
	root := filepath.Join(srv.DataDir, "killed")
	b := newSFTP(t, srv, root, nil)

	earlier := map[string][]byte{"keep/small.txt": []byte("hello"), "keep/big.bin": readAll(t, storagetest.Stream(7, 5<<20))}
	for name, data := range earlier {
		if err := b.Save(ctx, name, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Save(ctx, "keep/replaced.bin", storagetest.Stream(8, 1<<20)); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r := &killAfter{r: storagetest.Stream(9, 200<<20), n: 20 << 20, kill: srv.Kill}
	// Replacing an existing file: the old content must survive.
	err := b.Save(ctx, "keep/replaced.bin", r)
	if err == nil {
		t.Fatal("Save succeeded though sshd was killed during it")
	}
	t.Logf("Save failed after %v, %d MiB read: %v", time.Since(start).Round(time.Millisecond), r.read>>20, err)
	if r.read >= 200<<20 {
		t.Fatal("the whole stream was read: the kill came too late to test anything")
	}

	// The server is down: calls fail cleanly, without hanging.
	if _, err := b.List(ctx, ""); err == nil {
		t.Fatal("List succeeded with sshd down")
	}

	srv.Restart(t)
	list, err := b.List(ctx, "")
	if err != nil {
		t.Fatalf("List after restart (reconnect): %v", err)
	}
	var names []string
	for _, f := range list {
		names = append(names, f.Name)
	}
	if strings.Join(names, " ") != "keep/big.bin keep/replaced.bin keep/small.txt" {
		t.Fatalf("after the crash List = %v", names)
	}
	for name, data := range earlier {
		if !bytes.Equal(mustReadAll(t, b, name), data) {
			t.Errorf("%s changed by the crash", name)
		}
	}
	if !bytes.Equal(mustReadAll(t, b, "keep/replaced.bin"), readAll(t, storagetest.Stream(8, 1<<20))) {
		t.Error("the interrupted save changed the file it was replacing")
	}
	// The reconnect removed the temp file the dead connection left.
	if parts := partFiles(t, root); len(parts) > 0 {
		t.Errorf("temp files left on the server: %v", parts)
	}

	if err := b.Save(ctx, "after/new.bin", storagetest.Stream(10, 30<<20)); err != nil {
		t.Fatalf("Save after restart: %v", err)
	}
	if !bytes.Equal(mustReadAll(t, b, "after/new.bin"), readAll(t, storagetest.Stream(10, 30<<20))) {
		t.Error("the file saved after the restart differs")
	}
}

// notifyAfter reads r and closes reached once n bytes went through.
type notifyAfter struct {
	r       io.Reader
	n, read int64
	once    sync.Once
	reached chan struct{}
}

func (a *notifyAfter) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.read += int64(n)
	if a.read >= a.n {
		a.once.Do(func() { close(a.reached) })
	}
	return n, err
}

func TestSFTPCancelMidSave(t *testing.T) {
	srv := sshtest.Start(t)
	root := filepath.Join(srv.DataDir, "cancel")
	b := newSFTP(t, srv, root, nil)

	for i, c := range []struct {
		name   string
		freeze bool
	}{
		{"server answering", false},
		// The upload is blocked on the network, not on the reader: only
		// closing the connection can stop it.
		{"server stalled", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := fmt.Sprintf("c%d/", i)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &notifyAfter{r: storagetest.Stream(11, 1<<30), n: 16 << 20, reached: make(chan struct{})}
			var cancelled atomic.Pointer[time.Time]
			go func() {
				<-r.reached
				if c.freeze {
					srv.Freeze()
					time.Sleep(time.Second) // let the windows fill up
				}
				now := time.Now()
				cancelled.Store(&now)
				cancel()
			}()
			err := b.Save(ctx, dir+"big.bin", r)
			returned := time.Now()
			if c.freeze {
				srv.Thaw()
			}
			if err == nil {
				t.Fatal("Save succeeded after its context was cancelled")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Save = %v, want it to wrap context.Canceled", err)
			}
			at := cancelled.Load()
			if at == nil {
				t.Fatalf("Save returned before the cancel: %v", err)
			}
			took := returned.Sub(*at)
			t.Logf("Save returned %v after the cancel (%d MiB read): %v", took.Round(time.Millisecond), r.read>>20, err)
			if took > 5*time.Second {
				t.Errorf("Save took %v to return after the cancel", took)
			}
			if l, err := b.List(context.Background(), dir); err != nil || len(l) != 0 {
				t.Fatalf("after the cancel List = %v, %v", l, err)
			}
			if _, err := b.Open(context.Background(), dir+"big.bin"); !storage.IsNotExist(err) {
				t.Fatalf("Open after the cancel: %v, want ErrNotExist", err)
			}
			if parts := partFiles(t, root); len(parts) > 0 {
				t.Errorf("temp files left on the server: %v", parts)
			}
			if err := b.Save(context.Background(), dir+"after.txt", strings.NewReader("ok")); err != nil {
				t.Fatalf("Save after the cancel: %v", err)
			}
		})
	}
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustReadAll(t *testing.T, b storage.Backend, name string) []byte {
	t.Helper()
	rc, err := b.Open(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	return readAll(t, rc)
}

// partFiles lists the temp files of uploads under dir, on the server's disk.
func partFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if strings.Contains(d.Name(), ".part-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
