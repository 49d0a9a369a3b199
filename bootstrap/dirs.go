package bootstrap

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir is a folder bootstrap creates.
type Dir struct {
	Path string
	Mode fs.FileMode // of the folder itself when created; parents get 0755
	What string      // "app data (summoner.vsroot)"
}

// DirsStep creates the data roots and bootstrap's own state folder. It
// never changes a folder that exists (its mode or owner are the admin's).
type DirsStep struct {
	Dirs []Dir
}

// Name implements Step.
func (s *DirsStep) Name() string { return "dirs" }

// Title implements Step.
func (s *DirsStep) Title() string { return "Create the data roots" }

// Done is true when every folder exists; a file in a folder's place is a
// failure.
func (s *DirsStep) Done(ctx context.Context) (bool, string, error) {
	missing, err := s.missing()
	if err != nil {
		return false, "", err
	}
	if len(missing) > 0 {
		return false, "", nil
	}
	return true, s.list(s.Dirs), nil
}

// Plan implements Planner.
func (s *DirsStep) Plan(ctx context.Context) string {
	missing, err := s.missing()
	if err != nil || len(missing) == 0 {
		return ""
	}
	return "create " + s.list(missing)
}

// Apply creates the missing folders.
func (s *DirsStep) Apply(ctx context.Context, say func(string, ...any)) error {
	missing, err := s.missing()
	if err != nil {
		return err
	}
	for _, d := range missing {
		if err := os.MkdirAll(filepath.Dir(d.Path), 0o755); err != nil {
			return Failf("check the path in the config file, then run `summoner bootstrap` again", "cannot create %s: %v", d.Path, err)
		}
		if err := os.Mkdir(d.Path, d.Mode); err != nil && !errors.Is(err, fs.ErrExist) {
			return Failf("check the path in the config file, then run `summoner bootstrap` again", "cannot create %s: %v", d.Path, err)
		}
		if err := os.Chmod(d.Path, d.Mode); err != nil { // umask
			return err
		}
		say("created %s %s (mode %04o)", d.What, d.Path, d.Mode)
	}
	return nil
}

func (s *DirsStep) missing() ([]Dir, error) {
	var missing []Dir
	for _, d := range s.Dirs {
		info, err := os.Stat(d.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, d)
		case err != nil:
			return nil, Failf("check its permissions, then run `summoner bootstrap` again", "cannot look at %s: %v", d.Path, err)
		case !info.IsDir():
			return nil, Failf("move the file away or choose another folder in the config file, then run `summoner bootstrap` again",
				"%s (%s) is a file, not a folder", d.Path, d.What)
		}
	}
	return missing, nil
}

func (s *DirsStep) list(dirs []Dir) string {
	paths := make([]string, len(dirs))
	for i, d := range dirs {
		paths[i] = d.Path
	}
	return strings.Join(paths, ", ")
}
