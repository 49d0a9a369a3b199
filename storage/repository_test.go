package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/summoner-bot/summoner/storage"
	"github.com/summoner-bot/summoner/storage/storagetest"
)

// broken is a destination that is down.
type broken struct{ storage.Backend }

func (broken) Name() string { return "down" }
func (broken) Save(ctx context.Context, name string, r io.Reader) error {
	return errors.New("connection refused")
}

func newRepo(t *testing.T, o storage.Options) *storage.Repository {
	t.Helper()
	r, err := storage.NewRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestStoreToSeveralDestinationsWhenOneIsDown(t *testing.T) {
	ctx := context.Background()
	a, b := &storage.Local{Root: t.TempDir()}, &storage.Local{Root: t.TempDir()}
	repo := newRepo(t, storage.Options{Backends: []storage.Backend{a, broken{&storage.Local{Root: t.TempDir()}}, b}, VerifyCopies: true})
	res, err := repo.Store(ctx, storage.Meta{Minion: "ghost", Kind: storage.KindDump}, storagetest.Stream(1, 5<<20))
	if err != nil {
		t.Fatalf("Store with one destination down: %v", err)
	}
	failed := res.Failed()
	if len(failed) != 1 || failed[0].Backend != "down" || !strings.Contains(failed[0].Err.Error(), "connection refused") {
		t.Fatalf("failed copies %+v", failed)
	}
	list, _ := repo.List(ctx, "ghost")
	if len(list) != 1 || len(list[0].Copies) != 2 {
		t.Fatalf("List = %+v", list)
	}
}

func TestStoreRefusesEmptyAndTruncatedPayloads(t *testing.T) {
	tests := []struct {
		name    string
		payload io.Reader
		want    string
	}{
		{"empty", bytes.NewReader(nil), "empty (0 bytes)"},
		{"truncated", io.MultiReader(storagetest.Stream(1, 3<<20), errReader{errors.New("pg_dump: connection lost")}), "pg_dump: connection lost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			local := &storage.Local{Root: t.TempDir()}
			repo := newRepo(t, storage.Options{Backends: []storage.Backend{local}})
			_, err := repo.Store(context.Background(), storage.Meta{Minion: "ghost", Kind: storage.KindDump}, tt.payload)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Store = %v, want an error with %q", err, tt.want)
			}
			if files, _ := local.List(context.Background(), ""); len(files) != 0 {
				t.Fatalf("a refused payload left %+v", files)
			}
		})
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestCorruptCopyIsCaught(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	repo := newRepo(t, storage.Options{Backends: []storage.Backend{&storage.Local{Root: root}}})
	res, err := repo.Store(ctx, storage.Meta{Minion: "wiki", Kind: storage.KindCold}, strings.NewReader(strings.Repeat("precious data\n", 10000)))
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(root, res.Manifest.ID, res.Manifest.DataFile)
	raw, _ := os.ReadFile(data)
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(data, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, checks, err := repo.Verify(ctx, res.Manifest.ID)
	if err != nil || len(checks) != 1 || checks[0].Err == nil {
		t.Fatalf("Verify of a corrupt copy: %+v, %v", checks, err)
	}
	rc, _, err := repo.Open(ctx, res.Manifest.ID)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
	}
	if err == nil {
		t.Fatal("reading a corrupt backup succeeded")
	}
}

func TestEncryptedWithoutIdentityChecksStoredBytes(t *testing.T) {
	ctx := context.Background()
	id, _ := age.GenerateX25519Identity()
	local := &storage.Local{Root: t.TempDir()}
	writer := newRepo(t, storage.Options{Backends: []storage.Backend{local}, Recipients: []string{id.Recipient().String()}})
	res, err := writer.Store(ctx, storage.Meta{Minion: "wiki", Kind: storage.KindDump}, strings.NewReader("secret rows"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(local.Root, res.Manifest.ID, "data.zst.age"))
	if bytes.Contains(raw, []byte("secret rows")) {
		t.Fatal("the stored file holds the plain text")
	}
	reader := newRepo(t, storage.Options{Backends: []storage.Backend{local}})
	_, checks, err := reader.Verify(ctx, res.Manifest.ID)
	if err != nil || checks[0].Err != nil || checks[0].Decrypted {
		t.Fatalf("verify without identity: %+v, %v", checks, err)
	}
	if _, _, err := reader.Open(ctx, res.Manifest.ID); err == nil || !strings.Contains(err.Error(), "identity") {
		t.Fatalf("Open without identity: %v", err)
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	a, b := &storage.Local{Root: t.TempDir()}, &storage.Local{Root: t.TempDir()}
	clock := now.Add(-10 * 24 * time.Hour)
	o := storage.Options{Backends: []storage.Backend{a, b}, Now: func() time.Time { return clock }}
	repo := newRepo(t, o)
	// Ten daily backups; the last three of them only reached a (b was down).
	for i := range 10 {
		clock = now.Add(time.Duration(i-9) * 24 * time.Hour)
		if i >= 7 {
			repo = newRepo(t, storage.Options{Backends: []storage.Backend{a}, Now: o.Now})
		}
		if _, err := repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump}, strings.NewReader("rows")); err != nil {
			t.Fatal(err)
		}
	}
	// An upload that died without a manifest, two days ago.
	if err := a.Save(ctx, "wekan/20260508T130000Z-dump/data.zst", strings.NewReader("half")); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(a.Root, "wekan/20260508T130000Z-dump/data.zst"), old, old); err != nil {
		t.Fatal(err)
	}

	clock = now
	repo = newRepo(t, storage.Options{Backends: []storage.Backend{a, b}, Retention: storage.Retention{KeepLast: 2}, Now: o.Now})
	list, _ := repo.List(ctx, "wekan")
	if len(list) != 10 {
		t.Fatalf("%d complete backups listed, want 10 (the incomplete one is not listed)", len(list))
	}
	dry, err := repo.Prune(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(mustList(t, a)) + len(mustList(t, b)); got != 10*2+7*2+1 {
		t.Fatalf("a dry run removed files: %d left", got)
	}
	removed, err := repo.Prune(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != len(dry) {
		t.Fatalf("dry run said %d, prune removed %d", len(dry), len(removed))
	}
	ids := func(l storage.Backend) []string {
		var out []string
		for _, f := range mustList(t, l) {
			if strings.HasSuffix(f.Name, "/manifest.json") {
				out = append(out, strings.TrimSuffix(f.Name, "/manifest.json"))
			}
		}
		return out
	}
	// a keeps the two newest; b keeps its own newest, though the policy
	// (over all destinations) would not: it is b's last good backup.
	if got := ids(a); strings.Join(got, " ") != "wekan/20260509T120000Z-dump wekan/20260510T120000Z-dump" {
		t.Fatalf("a keeps %v", got)
	}
	if got := ids(b); strings.Join(got, " ") != "wekan/20260507T120000Z-dump" {
		t.Fatalf("b keeps %v", got)
	}
	if files, _ := a.List(ctx, "wekan/20260508T130000Z-dump/"); len(files) != 0 {
		t.Fatalf("the old incomplete backup was not removed: %v", files)
	}
}

func mustList(t *testing.T, b storage.Backend) []storage.FileInfo {
	t.Helper()
	l, err := b.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestStoreRecordsTheTally(t *testing.T) {
	r, err := storage.NewRepository(storage.Options{Backends: []storage.Backend{&storage.Local{Root: t.TempDir()}}})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int64{"given": 1}
	payload := strings.NewReader("the payload")
	meta := storage.Meta{Minion: "m", Kind: storage.KindCold, Counts: counts, Tally: func() storage.Tally {
		if payload.Len() != 0 {
			t.Error("the tally was asked for before the payload was read to its end")
		}
		return storage.Tally{Counts: map[string]int64{"files": 2}, EntriesSHA256: "abc"}
	}}
	res, err := r.Store(context.Background(), meta, payload)
	if err != nil {
		t.Fatal(err)
	}
	list, errs := r.List(context.Background(), "m")
	if len(errs) > 0 || len(list) != 1 {
		t.Fatalf("list %v %v", list, errs)
	}
	for _, m := range []*storage.Manifest{res.Manifest, list[0].Manifest} {
		if m.Counts["given"] != 1 || m.Counts["files"] != 2 || m.EntriesSHA256 != "abc" {
			t.Errorf("manifest counts %v, entries hash %q", m.Counts, m.EntriesSHA256)
		}
	}
	if len(counts) != 1 {
		t.Errorf("the caller's counts were changed: %v", counts)
	}
}
