package commands

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/chat"
)

// fakeDirectory is a chat server's accounts: ID -> username, and which are
// deactivated.
type fakeDirectory struct {
	names    map[string]string // ID -> username
	inactive map[string]bool
	err      error
	byName   int // UsersByName calls
}

func (d *fakeDirectory) UsersByName(_ context.Context, names []string) (map[string]string, error) {
	d.byName++
	if d.err != nil {
		return nil, d.err
	}
	out := map[string]string{}
	for id, n := range d.names {
		for _, want := range names {
			if n == want {
				out[n] = id
			}
		}
	}
	return out, nil
}

func (d *fakeDirectory) UsersByID(_ context.Context, ids []string) (map[string]string, error) {
	if d.err != nil {
		return nil, d.err
	}
	out := map[string]string{}
	for _, id := range ids {
		if n, ok := d.names[id]; ok && !d.inactive[id] {
			out[id] = n
		}
	}
	return out, nil
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newPerms(t *testing.T, path string, admins, operators []string) *Permissions {
	t.Helper()
	p, err := NewPermissions(PermissionsOptions{Admins: admins, Operators: operators, StateFile: path, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPermissionsFollowAccounts(t *testing.T) {
	type step struct {
		do   func(d *fakeDirectory) // what happens on the server before the resolve
		want map[string]Level       // ID -> level after it
	}
	tests := []struct {
		name    string
		restart bool // a new Permissions from the same file before each resolve
		steps   []step
	}{
		{"levels by ID after resolving", false, []step{
			{nil, map[string]Level{"id-alice": Admin, "id-olga": Operator, "id-bob": Everyone, "": Everyone}},
		}},
		{"a renamed admin keeps their rights", false, []step{
			{nil, map[string]Level{"id-alice": Admin}},
			{func(d *fakeDirectory) { d.names["id-alice"] = "alice.smith" }, map[string]Level{"id-alice": Admin}},
		}},
		{"whoever takes a freed name gets nothing", false, []step{
			{nil, map[string]Level{"id-alice": Admin}},
			{func(d *fakeDirectory) { d.names["id-alice"] = "alice.old"; d.names["id-mallory"] = "alice" },
				map[string]Level{"id-alice": Admin, "id-mallory": Everyone}},
		}},
		{"the binding survives a restart", true, []step{
			{nil, map[string]Level{"id-alice": Admin}},
			{func(d *fakeDirectory) { d.names["id-alice"] = "alice.old"; d.names["id-mallory"] = "alice" },
				map[string]Level{"id-alice": Admin, "id-mallory": Everyone}},
		}},
		{"a deactivated account loses its rights, and gets them back when reactivated", false, []step{
			{func(d *fakeDirectory) { d.inactive["id-olga"] = true }, map[string]Level{"id-olga": Everyone, "id-alice": Admin}},
			{func(d *fakeDirectory) { delete(d.inactive, "id-olga") }, map[string]Level{"id-olga": Operator}},
		}},
		{"a deleted account loses its rights, and its name stays bound", false, []step{
			{nil, map[string]Level{"id-olga": Operator}},
			{func(d *fakeDirectory) { delete(d.names, "id-olga") }, map[string]Level{"id-olga": Everyone}},
			{func(d *fakeDirectory) { d.names["id-new"] = "olga" }, map[string]Level{"id-new": Everyone}},
		}},
		{"a name with no account yet is bound once it exists", false, []step{
			{func(d *fakeDirectory) { delete(d.names, "id-olga") }, map[string]Level{"id-olga2": Everyone}},
			{func(d *fakeDirectory) { d.names["id-olga2"] = "olga" }, map[string]Level{"id-olga2": Operator}},
		}},
		{"a failed lookup keeps the levels", false, []step{
			{nil, map[string]Level{"id-alice": Admin}},
			{func(d *fakeDirectory) { d.err = errors.New("server down") }, map[string]Level{"id-alice": Admin}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "permissions.json")
			d := &fakeDirectory{names: map[string]string{"id-alice": "alice", "id-olga": "olga", "id-bob": "bob"}, inactive: map[string]bool{}}
			admins, operators := []string{"@Alice"}, []string{"olga", "alice"}
			p := newPerms(t, path, admins, operators)
			for i, s := range tt.steps {
				if s.do != nil {
					s.do(d)
				}
				if tt.restart {
					p = newPerms(t, path, admins, operators)
				}
				err := p.Resolve(context.Background(), d)
				if (err != nil) != (d.err != nil) {
					t.Fatalf("step %d: Resolve = %v", i, err)
				}
				for id, want := range s.want {
					if got := p.Level(chat.User{ID: id, Username: d.names[id]}); got != want {
						t.Errorf("step %d: level of %s (@%s) = %v, want %v", i, id, d.names[id], got, want)
					}
				}
			}
		})
	}
}

func TestPermissionsBeforeResolveGiveNothing(t *testing.T) {
	p := newPerms(t, filepath.Join(t.TempDir(), "p.json"), []string{"alice"}, nil)
	if got := p.Level(chat.User{ID: "id-alice", Username: "alice"}); got != Everyone {
		t.Fatalf("level before resolving = %v, want everyone", got)
	}
}

func TestPermissionsOnlyLookUpNewNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.json")
	d := &fakeDirectory{names: map[string]string{"id-alice": "alice"}, inactive: map[string]bool{}}
	p := newPerms(t, path, []string{"alice"}, nil)
	for range 3 {
		if err := p.Resolve(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if d.byName != 1 {
		t.Fatalf("names looked up %d times, want once: bound names are never looked up again", d.byName)
	}
}

func TestPermissionsForgetNamesNoLongerConfigured(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.json")
	d := &fakeDirectory{names: map[string]string{"id-alice": "alice", "id-bob": "bob"}, inactive: map[string]bool{}}
	if err := newPerms(t, path, []string{"alice", "bob"}, nil).Resolve(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	p := newPerms(t, path, []string{"alice"}, nil)
	if err := p.Resolve(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if got := p.Level(chat.User{ID: "id-bob"}); got != Everyone {
		t.Fatalf("bob, removed from the config, has %v", got)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "bob") {
		t.Fatalf("the bindings still hold bob: %s", data)
	}
}

func TestPermissionsStateFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		path    string
		content string // "" = no file
		wantErr string
	}{
		{"missing file is a fresh start", filepath.Join(dir, "none.json"), "", ""},
		{"damaged file is refused", filepath.Join(dir, "bad.json"), "{not json", "damaged"},
		{"no path is refused", "", "", "state file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.content != "" {
				if err := os.WriteFile(tt.path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := NewPermissions(PermissionsOptions{Admins: []string{"alice"}, StateFile: tt.path, Logger: quiet})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("NewPermissions = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
