package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/storage"
)

// internalName is how an SFTP destination names itself: host, user, path.
const internalName = "sftp:backup@vault.example.org:2222/srv/backups"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// internals are the parts of internalName that only operators may see.
var internals = []string{"vault.example.org", "backup@", "/srv/backups", "2222"}

// failing is a destination whose calls fail on demand, with the kind of
// message a real SFTP backend writes.
type failing struct {
	storage.Backend
	fail map[string]bool
}

func (f *failing) Name() string { return internalName }

func (f *failing) err(doing string) error {
	return fmt.Errorf("%s /srv/backups/wekan on %s: dial tcp 10.0.0.5:2222: connect: connection refused", doing, internalName)
}

func (f *failing) Save(ctx context.Context, name string, r io.Reader) error {
	if f.fail["save"] {
		_, _ = io.Copy(io.Discard, r)
		return f.err("saving")
	}
	return f.Backend.Save(ctx, name, r)
}

func (f *failing) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if f.fail["open"] {
		return nil, f.err("opening")
	}
	return f.Backend.Open(ctx, name)
}

func (f *failing) List(ctx context.Context, prefix string) ([]storage.FileInfo, error) {
	if f.fail["list"] {
		return nil, f.err("listing")
	}
	return f.Backend.List(ctx, prefix)
}

func (f *failing) Remove(ctx context.Context, name string) error {
	if f.fail["remove"] {
		return f.err("removing")
	}
	return f.Backend.Remove(ctx, name)
}

func TestDestinationErrorsKeepInternalsOutOfPublicText(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		fail   string
		run    func(t *testing.T, repo *storage.Repository, f *failing, id string) error
		op     storage.Op
		public string
	}{
		{
			name: "list", fail: "list", op: storage.OpList, public: "second-server could not be listed",
			run: func(t *testing.T, repo *storage.Repository, _ *failing, _ string) error {
				list, errs := repo.List(ctx, "")
				if len(list) != 2 || len(errs) != 1 {
					t.Fatalf("List = %d backups, errors %v; want the 2 on home and 1 error", len(list), errs)
				}
				return errs[0]
			},
		},
		{
			name: "store", fail: "save", op: storage.OpSave, public: "second-server did not get a good copy",
			run: func(t *testing.T, repo *storage.Repository, _ *failing, _ string) error {
				res, err := repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindCold}, strings.NewReader("rows"))
				if err != nil || len(res.Failed()) != 1 {
					t.Fatalf("Store = %+v, %v; want one failed copy", res, err)
				}
				return res.Failed()[0].Err
			},
		},
		{
			name: "verify unreadable", fail: "open", op: storage.OpRead, public: "the copy on second-server could not be read",
			run: func(t *testing.T, repo *storage.Repository, _ *failing, id string) error {
				return failedCheck(t, repo, id)
			},
		},
		{
			name: "verify damaged", op: storage.OpRead, public: "the copy on second-server is damaged: it differs from what was stored",
			run: func(t *testing.T, repo *storage.Repository, f *failing, id string) error {
				damage(t, f.Backend.(*storage.Local).Root, id)
				err := failedCheck(t, repo, id)
				if !errors.Is(err, storage.ErrDamaged) {
					t.Errorf("a hash mismatch does not match ErrDamaged: %v", err)
				}
				return err
			},
		},
		{
			name: "prune list", fail: "list", op: storage.OpList, public: "second-server could not be listed",
			run: func(t *testing.T, repo *storage.Repository, _ *failing, _ string) error {
				removed, err := repo.Prune(ctx, "", false)
				if len(removed) != 0 {
					t.Errorf("prune removed %+v though a destination could not be listed", removed)
				}
				return err
			},
		},
		{
			name: "prune remove", fail: "remove", op: storage.OpRemove, public: "a backup could not be removed from second-server",
			run: func(t *testing.T, repo *storage.Repository, _ *failing, id string) error {
				removed, err := repo.Prune(ctx, "", false)
				// home comes first and is pruned; second-server fails, so
				// its removal must not be reported as done.
				if len(removed) != 1 || removed[0].Destination != "home" || removed[0].ID != id {
					t.Errorf("prune reports %+v, want only %s on home", removed, id)
				}
				return err
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo, f, oldest := twoBackups(t)
			f.fail = map[string]bool{tt.fail: true}
			err := tt.run(t, repo, f, oldest)
			var de *storage.DestinationError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T) is not a *DestinationError", err, err)
			}
			if de.Destination != "second-server" || de.Op != tt.op {
				t.Errorf("DestinationError names %q, op %q; want second-server, %q", de.Destination, de.Op, tt.op)
			}
			if got := de.Public(); got != tt.public {
				t.Errorf("Public() = %q, want %q", got, tt.public)
			}
			for _, s := range internals {
				if strings.Contains(de.Public(), s) {
					t.Errorf("Public() %q shows %q", de.Public(), s)
				}
			}
			// The detail stays available for the log and for operators.
			if tt.name != "verify damaged" && !strings.Contains(err.Error(), "vault.example.org") {
				t.Errorf("Error() %q lost the backend's detail", err)
			}
		})
	}
}

// twoBackups makes a repository over "home" (a local folder) and
// "second-server" (failing, not failing yet), both holding two backups a
// day apart, and a retention policy that keeps one. It returns the id
// of the older backup.
func twoBackups(t *testing.T) (*storage.Repository, *failing, string) {
	t.Helper()
	clock := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	home := &storage.Local{Root: t.TempDir()}
	f := &failing{Backend: &storage.Local{Root: t.TempDir()}}
	o := storage.Options{Backends: []storage.Backend{home, f}, Names: []string{"home", "second-server"}, Now: func() time.Time { return clock }, Logger: quiet}
	repo := newRepo(t, o)
	var ids []string
	for range 2 {
		res, err := repo.Store(context.Background(), storage.Meta{Minion: "wekan", Kind: storage.KindDump}, strings.NewReader("rows"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Manifest.ID)
		clock = clock.Add(24 * time.Hour)
	}
	o.Retention = storage.Retention{KeepLast: 1}
	return newRepo(t, o), f, ids[0]
}

// failedCheck verifies id and returns second-server's error.
func failedCheck(t *testing.T, repo *storage.Repository, id string) error {
	t.Helper()
	_, checks, err := repo.Verify(context.Background(), id)
	if err != nil || len(checks) != 2 {
		t.Fatalf("Verify = %+v, %v", checks, err)
	}
	if checks[0].Err != nil || checks[0].Destination != "home" {
		t.Errorf("home's check %+v, want a good copy", checks[0])
	}
	if checks[1].Destination != "second-server" || checks[1].Backend != internalName {
		t.Errorf("second-server's check is at %+v", checks[1].Location)
	}
	return checks[1].Err
}

// damage rewrites a copy's manifest so its stored hash no longer matches.
func damage(t *testing.T, root, id string) {
	t.Helper()
	p := filepath.Join(root, id, "manifest.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m storage.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m.Stored.SHA256 = strings.Repeat("0", 64)
	if raw, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestDestinationNames(t *testing.T) {
	tests := []struct {
		name    string
		names   []string
		want    []string
		wantErr bool
	}{
		{name: "configured", names: []string{"home", "second-server"}, want: []string{"home", "second-server"}},
		{name: "none: numbered, never the backend's own name", want: []string{"destination 1", "destination 2"}},
		{name: "one blank", names: []string{"home", " "}, want: []string{"home", "destination 2"}},
		{name: "more names than destinations", names: []string{"a", "b", "c"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			a, b := &storage.Local{Root: t.TempDir()}, &failing{Backend: &storage.Local{Root: t.TempDir()}}
			repo, err := storage.NewRepository(storage.Options{Backends: []storage.Backend{a, b}, Names: tt.names, Logger: quiet})
			if tt.wantErr {
				if err == nil {
					t.Fatal("NewRepository accepted more names than destinations")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, err := repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump}, strings.NewReader("rows")); err != nil {
				t.Fatal(err)
			}
			list, errs := repo.List(ctx, "")
			if len(list) != 1 || len(errs) != 0 {
				t.Fatalf("List = %+v, %v", list, errs)
			}
			var got []string
			for _, c := range list[0].Copies {
				got = append(got, c.Destination)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("copies are on %q, want %q", got, tt.want)
			}
			if list[0].Copies[1].Backend != internalName {
				t.Errorf("the second copy's backend is %q, want %q", list[0].Copies[1].Backend, internalName)
			}
		})
	}
}
