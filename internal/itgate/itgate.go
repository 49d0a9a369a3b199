// Package itgate is the one gate for tests that need something of the
// machine: a service (Mattermost, Docker, the ACME server, sshd), a tool,
// or root. On a developer's machine such a test skips and says what it
// needs; under SUMMONER_INTEGRATION=1 (CI, as root, with every service
// up: .ci/run) it fails instead, because there a skip would hide a test
// that never ran.
package itgate

import (
	"os"
	"testing"
)

// On tells whether the integration tests are required (CI).
func On() bool { return os.Getenv("SUMMONER_INTEGRATION") == "1" }

// Skip skips t with the message, or fails it when the integration tests
// are required. The message says what is missing and how to get it.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if On() {
		t.Fatalf("SUMMONER_INTEGRATION=1 but "+format, args...)
		return
	}
	t.Skipf(format, args...)
}

// NeedRoot skips (fails, in CI) unless the test runs as root; why says
// what root is needed for.
func NeedRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Skip(t, "not running as root, which this test needs %s", why)
	}
}
