package bootstrap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
)

// DefaultOSRelease is where the operating system says what it is.
const DefaultOSRelease = "/etc/os-release"

// OSStep checks that this is Debian or Ubuntu and that bootstrap runs as
// root (it installs packages and writes to /etc). It changes nothing.
type OSStep struct {
	// ReleaseFile is the os-release file; "" is DefaultOSRelease.
	ReleaseFile string
	// EUID is the effective user id; nil is os.Geteuid.
	EUID func() int
	// AllowNonRoot passes without root (a dry run changes nothing).
	AllowNonRoot bool
}

// Name implements Step.
func (s *OSStep) Name() string { return "os" }

// Title implements Step.
func (s *OSStep) Title() string { return "Check the operating system (Debian or Ubuntu) and root" }

// Done reads the os-release file: a supported system run as root is done;
// anything else is a failure, as nothing bootstrap can do would fix it.
func (s *OSStep) Done(ctx context.Context) (bool, string, error) {
	path := s.ReleaseFile
	if path == "" {
		path = DefaultOSRelease
	}
	rel, err := ReadOSRelease(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, "", Failf("bootstrap supports Debian and Ubuntu; run it on one of them",
			"cannot tell which operating system this is: %s is missing", path)
	}
	if err != nil {
		return false, "", Failf("bootstrap supports Debian and Ubuntu; run it on one of them",
			"cannot tell which operating system this is: %v", err)
	}
	name := rel.Pretty()
	if !rel.DebianLike() {
		return false, "", Failf("bootstrap supports Debian and Ubuntu; run it on one of them",
			"unsupported operating system: this is %s (from %s)", name, path)
	}
	euid := os.Geteuid
	if s.EUID != nil {
		euid = s.EUID
	}
	if uid := euid(); uid != 0 {
		if s.AllowNonRoot {
			return true, name + "; not root: a real run needs sudo", nil
		}
		return false, "", Failf("run it with sudo: sudo summoner bootstrap …",
			"bootstrap installs packages and writes to /etc, so it needs root (this is uid %d)", uid)
	}
	return true, name + ", as root", nil
}

// Apply has nothing to do: Done either passes or fails.
func (s *OSStep) Apply(ctx context.Context, say func(string, ...any)) error { return nil }

// OSRelease is the content of an os-release file (os-release(5)).
type OSRelease map[string]string

// ReadOSRelease reads and parses an os-release file.
func ReadOSRelease(path string) (OSRelease, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseOSRelease(b), nil
}

// ParseOSRelease parses KEY=value lines; values may be quoted with " or '
// and use shell escapes inside double quotes. Other lines are ignored.
func ParseOSRelease(b []byte) OSRelease {
	rel := OSRelease{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		} else if len(v) >= 2 && v[0] == '"' {
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			} else if v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
		}
		rel[strings.TrimSpace(k)] = v
	}
	return rel
}

// DebianLike is true for Debian, Ubuntu and their derivatives (ID or
// ID_LIKE names debian or ubuntu).
func (r OSRelease) DebianLike() bool {
	ids := append([]string{r["ID"]}, strings.Fields(r["ID_LIKE"])...)
	return slices.ContainsFunc(ids, func(id string) bool {
		id = strings.ToLower(id)
		return id == "debian" || id == "ubuntu"
	})
}

// Pretty names the system for humans.
func (r OSRelease) Pretty() string {
	switch {
	case r["PRETTY_NAME"] != "":
		return r["PRETTY_NAME"]
	case r["NAME"] != "":
		return strings.TrimSpace(r["NAME"] + " " + r["VERSION"])
	case r["ID"] != "":
		return r["ID"]
	}
	return "an unnamed system"
}
