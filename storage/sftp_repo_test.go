package storage_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/summoner-bot/summoner/internal/sshtest"
	"github.com/summoner-bot/summoner/storage"
	"github.com/summoner-bot/summoner/storage/storagetest"
)

// A backup to the second server is cut short by sshd dying: no manifest,
// earlier backups intact, the failure reported, and the next run succeeds.
func TestRepositoryOverSFTPWhenTheServerDies(t *testing.T) {
	srv := sshtest.Start(t)
	ctx := context.Background()
	b := newSFTP(t, srv, filepath.Join(srv.DataDir, "repo"), nil)
	id, _ := age.GenerateX25519Identity()
	repo, err := storage.NewRepository(storage.Options{
		Backends: []storage.Backend{b}, Recipients: []string{id.Recipient().String()}, Identities: []age.Identity{id},
		VerifyCopies: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	first, err := repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump}, storagetest.Stream(1, 8<<20))
	if err != nil {
		t.Fatal(err)
	}

	r := &killAfter{r: storagetest.Stream(2, 300<<20), n: 24 << 20, kill: srv.Kill}
	_, err = repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump}, r)
	if err == nil {
		t.Fatal("a backup succeeded though the server died during it")
	}
	if !strings.Contains(err.Error(), "failed") || !strings.Contains(err.Error(), "on sftp:") {
		t.Fatalf("the failure does not say what happened: %v", err)
	}

	srv.Restart(t)
	list, errs := repo.List(ctx, "wekan")
	if len(errs) > 0 || len(list) != 1 || list[0].Manifest.ID != first.Manifest.ID {
		t.Fatalf("after the failed run List = %+v, %v; want only the earlier backup", list, errs)
	}
	if _, checks, err := repo.Verify(ctx, first.Manifest.ID); err != nil || checks[0].Err != nil {
		t.Fatalf("the earlier backup is damaged: %+v, %v", checks, err)
	}
	files, _ := b.List(ctx, "wekan/")
	for _, f := range files {
		if strings.HasSuffix(f.Name, "manifest.json") && !strings.HasPrefix(f.Name, first.Manifest.ID) {
			t.Fatalf("the cut-short backup has a manifest: %s", f.Name)
		}
	}

	next, err := repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump}, storagetest.Stream(3, 8<<20))
	if err != nil {
		t.Fatalf("the next run failed: %v", err)
	}
	if list, _ := repo.List(ctx, "wekan"); len(list) != 2 || list[0].Manifest.ID != next.Manifest.ID {
		t.Fatalf("after the next run List = %+v", list)
	}
}
