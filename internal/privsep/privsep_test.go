package privsep

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/summoner-bot/summoner/internal/itgate"
)

// nobody is the credential the tests hand folders to.
var nobody = &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}

func needRoot(t *testing.T) {
	t.Helper()
	itgate.NeedRoot(t, "to change owners")
}

func owner(t *testing.T, path string) (uint32, uint32, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode().Perm()
}

func TestOwnDir(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string
	}{
		{name: "missing: created and given", setup: func(*testing.T, string) {}},
		{name: "empty and root's: given", setup: func(t *testing.T, dir string) { must(t, os.Mkdir(dir, 0o755)) }},
		{name: "the user's already, with files: kept", setup: func(t *testing.T, dir string) {
			must(t, os.Mkdir(dir, 0o755),
				os.WriteFile(filepath.Join(dir, "cert"), nil, 0o600),
				os.Lchown(filepath.Join(dir, "cert"), 65534, 65534),
				os.Lchown(dir, 65534, 65534))
		}},
		{name: "someone else's with files: refused", setup: func(t *testing.T, dir string) {
			must(t, os.Mkdir(dir, 0o700),
				os.WriteFile(filepath.Join(dir, "secret"), nil, 0o600))
		}, wantErr: "belongs to uid 0 and is not empty"},
		{name: "a symlink: refused", setup: func(t *testing.T, dir string) { must(t, os.Symlink("/etc", dir)) }, wantErr: "is not a folder"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(base, strings.Repeat("d", i+1), "gateway")
			must(t, os.MkdirAll(filepath.Dir(dir), 0o755))
			tt.setup(t, dir)
			err := OwnDir(dir, nobody)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(tt.name, "else") {
					if uid, _, _ := owner(t, filepath.Join(dir, "secret")); uid != 0 {
						t.Error("a file of someone else's changed hands")
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if uid, gid, mode := owner(t, dir); uid != nobody.Uid || gid != nobody.Gid || mode != 0o700 {
				t.Errorf("folder %d:%d %04o, want %d:%d 0700", uid, gid, mode, nobody.Uid, nobody.Gid)
			}
		})
	}
}

// An older install's certificates move in, given to the user; a second
// run, or a destination already there, moves nothing.
func TestMoveIn(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	old, dst := filepath.Join(base, "old", "certs"), filepath.Join(base, "gateway", "certs")
	must(t, os.MkdirAll(filepath.Join(old, "acme"), 0o700),
		os.WriteFile(filepath.Join(old, "acme", "key"), []byte("k"), 0o600),
		os.MkdirAll(filepath.Dir(dst), 0o700))
	moved, err := MoveIn(old, dst, nobody)
	if err != nil || !moved {
		t.Fatalf("MoveIn = %v, %v", moved, err)
	}
	if uid, _, _ := owner(t, filepath.Join(dst, "acme", "key")); uid != nobody.Uid {
		t.Errorf("the moved key belongs to uid %d", uid)
	}
	if _, err := os.Lstat(old); !os.IsNotExist(err) {
		t.Errorf("the old folder is still there: %v", err)
	}
	if moved, err := MoveIn(old, dst, nobody); moved || err != nil {
		t.Errorf("second MoveIn = %v, %v; want nothing moved", moved, err)
	}
	must(t, os.MkdirAll(old, 0o700))
	if moved, err := MoveIn(old, dst, nobody); moved || err != nil {
		t.Errorf("MoveIn onto an existing folder = %v, %v; want nothing moved", moved, err)
	}
	if _, err := os.Lstat(old); err != nil {
		t.Errorf("the old folder was touched: %v", err)
	}
}

func TestCanReach(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	closed := filepath.Join(base, "closed")
	must(t, os.MkdirAll(open, 0o755), os.MkdirAll(closed, 0o700))
	for _, dir := range []string{base, filepath.Dir(base)} {
		must(t, os.Chmod(dir, 0o755)) // the test tree itself may be root's only
		defer func(d string, m os.FileMode) {
			if err := os.Chmod(d, m); err != nil {
				t.Error(err)
			}
		}(dir, 0o700)
	}
	must(t, os.WriteFile(filepath.Join(open, "bin"), nil, 0o755),
		os.WriteFile(filepath.Join(closed, "bin"), nil, 0o755),
		os.WriteFile(filepath.Join(open, "private"), nil, 0o700))
	tests := []struct {
		path string
		want string // "" for reachable
	}{
		{filepath.Join(open, "bin"), ""},
		{filepath.Join(closed, "bin"), "cannot enter " + closed},
		{filepath.Join(open, "private"), "may not use"},
	}
	for _, tt := range tests {
		err := CanReach(tt.path, nobody, 0o1)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("CanReach(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
	if err := CanReach(filepath.Join(closed, "bin"), nil, 0o1); err != nil {
		t.Errorf("no separation: %v", err)
	}
}

// must fails the test with the first error of the setup steps given
// (all of them have run by then; a later failure follows from it).
func must(t *testing.T, errs ...error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
