package minions

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataFolderLinkedOutsideIsRefused(t *testing.T) {
	root := t.TempDir()
	data, outside := filepath.Join(root, "volumes", "app"), filepath.Join(root, "host-etc")
	for _, d := range []string{filepath.Join(data, "ok"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(data, "uploads")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir  string
		want string // "" for accepted
	}{
		{filepath.Join(data, "ok"), ""},
		{filepath.Join(data, "uploads"), "is a link to " + outside + ", outside the minion's own folders"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.dir), func(t *testing.T) {
			err := staysInside(tt.dir, []string{data, filepath.Join(root, "databases", "app")})
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
