package minions

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// opsDocker is the smallest Docker that banish needs: containers in a
// list, and failures on demand. Other methods are not used (the embedded
// nil interface panics if they are).
type opsDocker struct {
	Docker

	mu         sync.Mutex
	containers []container.Summary
	lists      int   // ContainerList calls so far
	listFails  int   // fail this ContainerList call (1-based; 0: never)
	listErr    error // what it fails with
	removeErr  error // every ContainerRemove fails with it
	sticky     bool  // removed containers stay listed
	removed    []string
}

func (d *opsDocker) ContainerList(_ context.Context, o container.ListOptions) ([]container.Summary, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lists++
	if d.lists == d.listFails {
		return nil, d.listErr
	}
	var out []container.Summary
	for _, c := range d.containers {
		if o.Filters.Match("label", LabelMinion+"="+c.Labels[LabelMinion]) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (d *opsDocker) ContainerStop(context.Context, string, container.StopOptions) error {
	return nil
}

func (d *opsDocker) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removeErr != nil {
		return d.removeErr
	}
	d.removed = append(d.removed, id)
	if !d.sticky {
		d.containers = slices.DeleteFunc(d.containers, func(c container.Summary) bool { return c.ID == id })
	}
	return nil
}

func (d *opsDocker) NetworkRemove(context.Context, string) error {
	return cerrdefs.ErrNotFound
}

func opsContainer(id, name, service string) container.Summary {
	return container.Summary{ID: id, Names: []string{"/" + name}, Labels: map[string]string{
		LabelMinion: "testmin", labelService: service,
	}}
}

// opsSummoned is testmin deployed: its two containers, the web one set
// aside by an interrupted change as well, its data and its state.
type opsSummoned struct {
	engine  *Engine
	docker  *opsDocker
	files   []string // every file that must survive a failed purge
	folders []string // the minion's data, database and state folders
}

func opsSetup(t *testing.T, d *opsDocker) *opsSummoned {
	t.Helper()
	cat, err := LoadCatalog("testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	vs, dbs, state := filepath.Join(dir, "volumes"), filepath.Join(dir, "databases"), filepath.Join(dir, "state")
	files := []string{
		filepath.Join(vs, "testmin", "uploads", "photo.jpg"),
		filepath.Join(dbs, "testmin", "pg", "PG_VERSION"),
		filepath.Join(state, "testmin", "state.json"),
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if d.containers == nil {
		d.containers = []container.Summary{
			opsContainer("web1", "testmin-example.com", "web"),
			opsContainer("web0", "testmin-example.com.summoner-old", "web"), // set aside by deploy
			opsContainer("db1", "postgres-testmin-example.com", "db"),
		}
	}
	e := NewEngine(d, cat, EngineOptions{
		Domain: "example.com", VSRoot: vs, DBSRoot: dbs, State: &StateStore{Dir: state},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	folders := []string{filepath.Join(vs, "testmin"), filepath.Join(dbs, "testmin"), filepath.Join(state, "testmin")}
	return &opsSummoned{engine: e, docker: d, files: files, folders: folders}
}

func (s *opsSummoned) allFilesThere(t *testing.T) {
	t.Helper()
	for _, f := range s.files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s was deleted: %v", f, err)
		}
	}
}

// TestPurgeDeletesNothingUnlessContainersAreProvenGone: every way of not
// knowing that the containers are gone keeps every file.
func TestPurgeDeletesNothingUnlessContainersAreProvenGone(t *testing.T) {
	opsUnreachable := unreachableErr(t)
	tests := []struct {
		name   string
		docker *opsDocker
		want   []string
	}{
		{"listing fails", &opsDocker{listFails: 1, listErr: opsUnreachable},
			[]string{"I cannot reach Docker while listing the containers of testmin", "Nothing was deleted"}},
		{"removal fails", &opsDocker{removeErr: errors.New("Error response from daemon: removal of container web1 is already in progress")},
			[]string{"Docker failed: removing testmin-example.com", "Nothing was deleted"}},
		{"removal cannot reach Docker", &opsDocker{removeErr: opsUnreachable},
			[]string{"I cannot reach Docker while removing", "Nothing was deleted"}},
		{"a container is still listed", &opsDocker{sticky: true},
			[]string{"testmin still has containers after I removed them (postgres-testmin-example.com, testmin-example.com, testmin-example.com.summoner-old), so I deleted none of its data"}},
		{"the check after removal fails", &opsDocker{listFails: 2, listErr: opsUnreachable},
			[]string{"I cannot reach Docker while checking that the containers of testmin are gone", "Nothing was deleted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := opsSetup(t, tt.docker)
			err := s.engine.Banish(context.Background(), "testmin", true)
			if err == nil {
				t.Fatal("banish --purge succeeded")
			}
			var ue *Error
			if !errors.As(err, &ue) {
				t.Errorf("the error is a %T, not a message for the user: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q\nlacks %q", err, w)
				}
			}
			s.allFilesThere(t)
			t.Log(err)
		})
	}
}

// TestPurgeRemovesEverything: the containers, the one set aside by a
// change included, then the data and the state.
func TestPurgeRemovesEverything(t *testing.T) {
	s := opsSetup(t, &opsDocker{})
	if err := s.engine.Banish(context.Background(), "testmin", true); err != nil {
		t.Fatal(err)
	}
	// Dependents first: web before db; the set-aside web counts as web.
	if got := strings.Join(s.docker.removed, " "); got != "web1 web0 db1" {
		t.Errorf("removed %s, want web1 web0 db1", got)
	}
	for _, f := range s.files {
		if _, err := os.Stat(filepath.Dir(f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", filepath.Dir(f), err)
		}
	}
}

func TestBanishWithoutPurgeKeepsData(t *testing.T) {
	s := opsSetup(t, &opsDocker{})
	if err := s.engine.Banish(context.Background(), "testmin", false); err != nil {
		t.Fatal(err)
	}
	if len(s.docker.containers) != 0 {
		t.Errorf("containers left: %v", s.docker.containers)
	}
	s.allFilesThere(t)
	err := s.engine.Banish(context.Background(), "testmin", false)
	if err == nil || !strings.Contains(err.Error(), "testmin is not summoned") {
		t.Errorf("second banish: %v, want it to say testmin is not summoned", err)
	}
}

// TestPurgeOfBanishedMinion: data left by a plain banish can be purged
// later, once Docker confirms there is no container.
func TestPurgeOfBanishedMinion(t *testing.T) {
	s := opsSetup(t, &opsDocker{containers: []container.Summary{}})
	if err := s.engine.Banish(context.Background(), "testmin", true); err != nil {
		t.Fatal(err)
	}
	for _, f := range s.files {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there (%v)", f, err)
		}
	}
}

func TestSummoned(t *testing.T) {
	opsUnreachable := unreachableErr(t)
	none := []container.Summary{}
	tests := []struct {
		name    string
		docker  *opsDocker
		keep    []int // which of the setup's folders stay
		want    bool
		wantErr string
	}{
		{"nothing", &opsDocker{containers: none}, nil, false, ""},
		{"data only", &opsDocker{containers: none}, []int{0}, true, ""},
		{"database only", &opsDocker{containers: none}, []int{1}, true, ""},
		{"state only", &opsDocker{containers: none}, []int{2}, true, ""},
		{"containers only", &opsDocker{}, nil, true, ""},
		{"data, Docker down", &opsDocker{listFails: 1, listErr: opsUnreachable}, []int{0}, true, ""},
		{"nothing, Docker down", &opsDocker{listFails: 1, listErr: opsUnreachable}, nil, false, "I cannot reach Docker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := opsSetup(t, tt.docker)
			for i, dir := range s.folders {
				if !slices.Contains(tt.keep, i) {
					if err := os.RemoveAll(dir); err != nil {
						t.Fatal(err)
					}
				}
			}
			got, err := s.engine.Summoned(context.Background(), "testmin")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Summoned = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	s := opsSetup(t, &opsDocker{})
	if _, err := s.engine.Summoned(context.Background(), "nosuch"); err == nil || !strings.Contains(err.Error(), `There is no minion called "nosuch"`) {
		t.Errorf("unknown minion: %v", err)
	}
}
