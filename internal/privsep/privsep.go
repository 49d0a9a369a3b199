// Package privsep gives a process started by root an identity and a
// folder of its own: a system user with no shell and no home, created if
// missing, a folder only that user may enter, and an environment that
// holds only what is named. The gateway uses it so that the process facing
// the internet holds no secret and no privilege it does not need.
//
// It must never hand an unprivileged user anything it did not create or
// move there itself: no chown of what such a user could have put in place.
package privsep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Path is the PATH of a process whose environment is built here: the
// system's folders only, never the caller's.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Env is an environment holding PATH (fixed) and, of the names in keep,
// those that lookup finds: nothing else of the caller's reaches the child.
func Env(lookup func(string) (string, bool), keep ...string) []string {
	env := []string{"PATH=" + Path}
	for _, k := range keep {
		if v, ok := lookup(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Runner runs a program to its end and returns its combined output
// (bootstrap.HostSystem, which also finds programs in the sbin folders).
type Runner interface {
	Run(ctx context.Context, env []string, name string, args ...string) ([]byte, error)
}

// EnsureUser returns the credentials of the system user name, creating it
// if missing (useradd --system: its own group, no shell, no home). The
// credentials carry no supplementary group. root is refused.
func EnsureUser(ctx context.Context, run Runner, name string) (cred *syscall.Credential, created bool, err error) {
	u, err := user.Lookup(name)
	if err != nil {
		if !errors.As(err, new(user.UnknownUserError)) {
			return nil, false, fmt.Errorf("looking up the user %s: %w", name, err)
		}
		out, uerr := run.Run(ctx, nil, "useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "--comment", "Summoner gateway", name)
		// Another process may have created it meanwhile: look again.
		if u, err = user.Lookup(name); err != nil {
			return nil, false, fmt.Errorf("creating the system user %s: %v: %s", name, uerr, strings.TrimSpace(string(out)))
		}
		created = uerr == nil
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	switch {
	case err1 != nil || err2 != nil:
		return nil, false, fmt.Errorf("the user %s has ids %q/%q, not numbers", name, u.Uid, u.Gid)
	case uid == 0 || gid == 0:
		return nil, false, fmt.Errorf("the user %s is root (uid %d, gid %d): it must be an unprivileged user", name, uid, gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, created, nil
}

// OwnDir makes dir a folder of the user's own, mode 0700: created and
// given to the user if missing. An existing folder must be the user's
// already, or empty: a folder of someone else's never changes hands with
// its content. With cred nil (no separation), the folder is only made
// 0700 for the current user.
func OwnDir(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && cred != nil && (st.Uid != cred.Uid || st.Gid != cred.Gid) {
		if empty, err := isEmpty(dir); err != nil || !empty {
			return fmt.Errorf("%s belongs to uid %d and is not empty: give it to uid %d or choose another folder", dir, st.Uid, cred.Uid)
		}
		if err := os.Lchown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	return os.Chmod(dir, 0o700)
}

func isEmpty(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// MoveIn moves the folder old to dst, where dst does not exist yet, and
// gives its content to the user first, while it is still where only root
// reaches it. Nothing at old, or something at dst already: nothing moves.
func MoveIn(old, dst string, cred *syscall.Credential) (bool, error) {
	if old == "" || filepath.Clean(old) == filepath.Clean(dst) {
		return false, nil
	}
	if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	fi, err := os.Lstat(old)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !fi.IsDir() {
		return false, fmt.Errorf("%s is not a folder", old)
	}
	if cred != nil {
		err := filepath.WalkDir(old, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, int(cred.Uid), int(cred.Gid))
		})
		if err != nil {
			return false, fmt.Errorf("giving %s to uid %d: %w", old, cred.Uid, err)
		}
	}
	if err := os.Rename(old, dst); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			return false, fmt.Errorf("%s is on another file system than %s: move it there by hand (mv %s %s)", old, dst, old, dst)
		}
		return false, err
	}
	return true, nil
}

// CanReach tells why the user cannot reach path (every folder on the way
// searchable, and the file itself with the permission bits want, 0o4 for
// read or 0o1 for execute), by the mode bits; nil if it can. A root-only
// build folder is the usual cause, found here with one clear line instead
// of a "permission denied" from the child.
func CanReach(path string, cred *syscall.Credential, want fs.FileMode) error {
	if cred == nil {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	allowed := func(fi fs.FileInfo, bits fs.FileMode) bool {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		m := fi.Mode().Perm()
		switch {
		case st.Uid == cred.Uid:
			return m>>6&bits == bits
		case st.Gid == cred.Gid:
			return m>>3&bits == bits
		}
		return m&bits == bits
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if !allowed(fi, 0o1) {
			return fmt.Errorf("uid %d cannot enter %s (mode %04o)", cred.Uid, dir, fi.Mode().Perm())
		}
		if dir == "/" {
			break
		}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return err
	}
	if !allowed(fi, want) {
		return fmt.Errorf("uid %d may not use %s (mode %04o)", cred.Uid, abs, fi.Mode().Perm())
	}
	return nil
}

// Cmd is exec.Command for a child with the given credentials (nil: the
// same user) and no supplementary group, that gets SIGTERM if its parent
// dies, so it never outlives the process that handed it its ports.
func Cmd(ctx context.Context, cred *syscall.Credential, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM}
	return cmd
}
