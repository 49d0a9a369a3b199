// Package golden compares rendered text with the files under a package's
// testdata, so a change to what users see shows as a reviewed diff. Run a
// package's tests with -update to rewrite its files.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// update is the one -update flag of every package that uses golden files.
var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Assert compares got with testdata/<name>.golden, byte for byte.
func Assert(t testing.TB, name string, got []byte) {
	t.Helper()
	AssertFile(t, name+".golden", got)
}

// AssertText compares a rendered reply with testdata/<name>.golden, where
// it is kept with one final line end (a text file; the reply has none).
func AssertText(t testing.TB, name, got string) {
	t.Helper()
	Assert(t, name, []byte(got+"\n"))
}

// AssertFile compares got with testdata/<file>, byte for byte, for golden
// files that keep their own extension (a minion's plan is a .yml file).
func AssertFile(t testing.TB, file string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("no golden file (run go test with -update to write it, then review it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run go test with -update and review the diff):\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}
