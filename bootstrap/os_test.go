package bootstrap

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOSStep(t *testing.T) {
	tests := []struct {
		name    string
		release string // "" for no file
		uid     int
		nonRoot bool
		want    string // what, when done
		wantErr string // Why, when it fails
		next    string
	}{
		{name: "debian", release: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n", want: "Debian GNU/Linux 12 (bookworm), as root"},
		{name: "ubuntu", release: "NAME=\"Ubuntu\"\nVERSION=\"24.04 LTS (Noble Numbat)\"\nID=ubuntu\nID_LIKE=debian\n", want: "Ubuntu 24.04 LTS (Noble Numbat), as root"},
		{name: "id_like debian", release: "PRETTY_NAME='Linux Mint 21'\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n", want: "Linux Mint 21, as root"},
		{name: "fedora", release: "PRETTY_NAME=\"Fedora Linux 40 (Server Edition)\"\nID=fedora\n",
			wantErr: "unsupported operating system: this is Fedora Linux 40 (Server Edition) (from ", next: "bootstrap supports Debian and Ubuntu"},
		{name: "missing file", wantErr: "cannot tell which operating system this is: ", next: "bootstrap supports Debian and Ubuntu"},
		{name: "not root", release: "ID=debian\n", uid: 1000, wantErr: "needs root (this is uid 1000)", next: "run it with sudo"},
		{name: "dry run as a user", release: "ID=debian\n", uid: 1000, nonRoot: true, want: "debian; not root: a real run needs sudo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "os-release")
			if tt.release != "" {
				if err := os.WriteFile(p, []byte(tt.release), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := &OSStep{ReleaseFile: p, EUID: func() int { return tt.uid }, AllowNonRoot: tt.nonRoot}
			done, what, err := s.Done(context.Background())
			if tt.wantErr != "" {
				var se *StepError
				if !errors.As(err, &se) || !strings.Contains(se.Why, tt.wantErr) || !strings.HasPrefix(se.Next, tt.next) {
					t.Fatalf("Done = %v, %q, %v; want a StepError %q, next %q", done, what, err, tt.wantErr, tt.next)
				}
				if strings.Contains(se.Why, "\n") {
					t.Errorf("Why has several lines: %q", se.Why)
				}
				return
			}
			if err != nil || !done || what != tt.want {
				t.Fatalf("Done = %v, %q, %v; want true, %q", done, what, err, tt.want)
			}
		})
	}
}

func TestParseOSRelease(t *testing.T) {
	r := ParseOSRelease([]byte("# comment\nID=debian\nPRETTY_NAME=\"A \\\"quoted\\\" name\"\nBAD LINE\nVERSION_ID='12'\n"))
	if r["ID"] != "debian" || r["PRETTY_NAME"] != `A "quoted" name` || r["VERSION_ID"] != "12" {
		t.Errorf("parsed %#v", r)
	}
}
