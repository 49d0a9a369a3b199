package golden

import (
	"os"
	"path/filepath"
	"testing"
)

// recorder is a testing.TB that records failures instead of stopping.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestAssert(t *testing.T) {
	if *update {
		t.Skip("-update rewrites files instead of comparing them")
	}
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("testdata", "reply.golden"), []byte("Hello.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		check  func(tb testing.TB)
		failed bool
	}{
		{"same text", func(tb testing.TB) { AssertText(tb, "reply", "Hello.") }, false},
		{"same bytes", func(tb testing.TB) { Assert(tb, "reply", []byte("Hello.\n")) }, false},
		{"one character more", func(tb testing.TB) { AssertText(tb, "reply", "Hello!.") }, true},
		{"no final line end", func(tb testing.TB) { Assert(tb, "reply", []byte("Hello.")) }, true},
		{"a second line end", func(tb testing.TB) { AssertText(tb, "reply", "Hello.\n") }, true},
		{"no such file", func(tb testing.TB) { AssertText(tb, "missing", "Hello.") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &recorder{TB: t}
			tt.check(r)
			if r.failed != tt.failed {
				t.Errorf("failed = %v, want %v", r.failed, tt.failed)
			}
		})
	}
}
