package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirsStep(t *testing.T) {
	root := t.TempDir()
	existing := filepath.Join(root, "existing")
	if err := os.Mkdir(existing, 0o750); err != nil {
		t.Fatal(err)
	}
	s := &DirsStep{Dirs: []Dir{
		{Path: filepath.Join(root, "srv", "volumes"), Mode: 0o755, What: "app data"},
		{Path: filepath.Join(root, "srv", "databases"), Mode: 0o700, What: "database data"},
		{Path: existing, Mode: 0o700, What: "state"},
	}}
	ctx := context.Background()
	if done, _, err := s.Done(ctx); done || err != nil {
		t.Fatalf("done %v, %v before creating", done, err)
	}
	if p := s.Plan(ctx); p != "create "+filepath.Join(root, "srv", "volumes")+", "+filepath.Join(root, "srv", "databases") {
		t.Errorf("plan %q", p)
	}
	var said []string
	if err := s.Apply(ctx, func(f string, a ...any) { said = append(said, sprintf(f, a...)) }); err != nil {
		t.Fatal(err)
	}
	if len(said) != 2 || !strings.Contains(said[1], "(mode 0700)") {
		t.Errorf("said %q", said)
	}
	for path, mode := range map[string]os.FileMode{s.Dirs[0].Path: 0o755, s.Dirs[1].Path: 0o700, existing: 0o750} {
		if info, err := os.Stat(path); err != nil || info.Mode().Perm() != mode {
			t.Errorf("%s: %v, %v; want mode %v", path, info.Mode().Perm(), err, mode)
		}
	}
	if done, what, err := s.Done(ctx); !done || err != nil || !strings.Contains(what, existing) {
		t.Errorf("Done = %v, %q, %v after creating", done, what, err)
	}

	// A file where a folder should be.
	file := filepath.Join(root, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := (&DirsStep{Dirs: []Dir{{Path: file, Mode: 0o700, What: "database data"}}}).Done(ctx)
	var se *StepError
	if !errors.As(err, &se) || !strings.Contains(se.Why, "is a file, not a folder") {
		t.Errorf("err %v", err)
	}
}
