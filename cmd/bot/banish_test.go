package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBanishPurgeWithoutDockerDeletesNothing runs the real binary against a
// Docker socket that does not exist: `banish --purge --yes` must fail,
// say why and that nothing was deleted, and leave every file in place.
// It needs no Docker engine.
func TestBanishPurgeWithoutDockerDeletesNothing(t *testing.T) {
	dir := t.TempDir()
	minionsDir, err := filepath.Abs("../../minions/testdata/minions")
	if err != nil {
		t.Fatal(err)
	}
	vsroot, dbsroot, state := filepath.Join(dir, "volumes"), filepath.Join(dir, "databases"), filepath.Join(dir, "state")
	files := []string{
		filepath.Join(vsroot, minion, "uploads", "photo.jpg"),
		filepath.Join(dbsroot, minion, "pg", "PG_VERSION"),
		filepath.Join(state, minion, "state.json"),
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"DOCKER_HOST=unix:///nonexistent.sock",
		"SUMMONER_VSROOT=" + vsroot, "SUMMONER_DBSROOT=" + dbsroot,
		"SUMMONER_DOCKER_MINIONS_DIR=" + minionsDir, "SUMMONER_DOCKER_STATE_DIR=" + state,
	}
	stdout, stderr, code := summoner(t, env, "", "banish", minion, "--purge", "--yes")
	t.Logf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	if code == 0 {
		t.Errorf("exit code 0, want a failure\nstdout: %s\nstderr: %s", stdout, stderr)
	}
	for _, want := range []string{"I cannot reach Docker", "Nothing was deleted"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the output lacks %q\nstdout: %s\nstderr: %s", want, stdout, stderr)
		}
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("%s is gone: %v", f, err)
		}
	}
}
