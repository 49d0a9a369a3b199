package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/internal/dockertest"
	"github.com/summoner-bot/summoner/internal/itgate"
)

// bootstrapEnv keeps the caller's DOCKER_HOST, as a user's shell would.
func bootstrapEnv(extra ...string) []string {
	var env []string
	if h, ok := os.LookupEnv("DOCKER_HOST"); ok {
		env = append(env, "DOCKER_HOST="+h)
	}
	return append(env, extra...)
}

func writeOSRelease(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "os-release")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const debianRelease = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n"

// assertOneFailure checks the acceptance's "fails at its step with one
// clear line and a non-zero exit": the ✗ line names the step and why (and
// at most a "next:" line follows).
func assertOneFailure(t *testing.T, stderr string, code int, want string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) < 1 || len(lines) > 2 || !strings.HasPrefix(lines[0], want) ||
		(len(lines) == 2 && !strings.HasPrefix(lines[1], "  next: ")) {
		t.Errorf("stderr:\n%s\nwant one line starting %q (and a next: line)", stderr, want)
	}
}

func TestBootstrapUnsupportedOS(t *testing.T) {
	fedora := writeOSRelease(t, "NAME=\"Fedora Linux\"\nPRETTY_NAME=\"Fedora Linux 40 (Server Edition)\"\nID=fedora\n")
	stdout, stderr, code := summoner(t, bootstrapEnv(), "", "bootstrap", "--domain", "example.test", "--os-release", fedora)
	assertOneFailure(t, stderr, code, "✗ os: unsupported operating system: this is Fedora Linux 40 (Server Edition) (from "+fedora+")")
	if !strings.Contains(stderr, "next: bootstrap supports Debian and Ubuntu") {
		t.Errorf("no next step:\n%s", stderr)
	}
	if stdout != "" {
		t.Errorf("stdout %q: nothing should run after the os step", stdout)
	}
}

func TestBootstrapDockerSocketUnavailable(t *testing.T) {
	itgate.NeedRoot(t, "for the os step before the docker step")
	sock := filepath.Join(t.TempDir(), "nothing.sock")
	daemonJSON := filepath.Join(t.TempDir(), "daemon.json")
	stdout, stderr, code := summoner(t, []string{"DOCKER_HOST=unix://" + sock}, "",
		"bootstrap", "--domain", "example.test", "--os-release", writeOSRelease(t, debianRelease), "--daemon-json", daemonJSON)
	assertOneFailure(t, stderr, code, "✗ docker: the Docker socket "+sock+" does not answer: connect: no such file or directory")
	if !strings.Contains(stdout, "[1/") || strings.Contains(stdout, "dockerd") || strings.Contains(stdout, "apt-get") || strings.Contains(stdout, "dirs") {
		t.Errorf("stdout:\n%s\nwant the os step only, and no attempt to install or start an engine", stdout)
	}
	if _, err := os.Stat(daemonJSON); err == nil {
		t.Error("daemon.json was written for an engine bootstrap does not manage")
	}
}

func TestBootstrapDryRunChangesNothing(t *testing.T) {
	root := t.TempDir()
	cfg := writeConfig(t, "summoner:\n  vsroot: "+root+"/volumes\n  dbsroot: "+root+"/databases\ndocker:\n  state_dir: "+root+"/state\n")
	stdout, stderr, code := summoner(t, bootstrapEnv(), "", "--config", cfg, "bootstrap", "--domain", "example.test", "--dry-run",
		"--os-release", writeOSRelease(t, debianRelease), "--only", "os,dirs")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"[1/2] os: already done (Debian GNU/Linux 12 (bookworm)", "[2/2] dirs: would create " + root + "/volumes, " + root + "/databases", "nothing was changed"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("the dry run created %v", entries)
	}
}

func TestBootstrapUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bootstrap"}, "summoner: bootstrap needs --domain"},
		{[]string{"bootstrap", "--domain", "example.test", "--bogus"}, "summoner: bootstrap: flag provided but not defined: -bogus"},
		{[]string{"bootstrap", "--domain", "Not A Domain"}, "summoner: bootstrap: --domain \"Not A Domain\" is not a domain name"},
		{[]string{"bootstrap", "--only", "nope"}, "summoner: bootstrap: --only nope: no such step (steps: os, docker, dirs"},
		{[]string{"bootstrap", "--only", "docker", "--docker-packages", "snap"}, "summoner: bootstrap: --docker-packages is docker.io, docker-ce or none"},
	} {
		_, stderr, code := summoner(t, bootstrapEnv(), "", tc.args...)
		if code != 2 || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestBootstrapDockerAlreadyDone is what CI's docker.sh start does on a
// machine where the engine is up: the step says "already done". Its
// daemon.json is a rotated copy, so the test never writes to /etc.
func TestBootstrapDockerAlreadyDone(t *testing.T) {
	dockertest.Require(t)
	daemonJSON := filepath.Join(t.TempDir(), "daemon.json")
	if err := os.WriteFile(daemonJSON, []byte(`{"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := summoner(t, bootstrapEnv(), "", "bootstrap", "--only", "docker", "--daemon-json", daemonJSON)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "[1/1] docker: already done (Docker ") || !strings.Contains(stdout, "answers on") {
		t.Errorf("stdout:\n%s", stdout)
	}
}
