package itgate

import (
	"os"
	"testing"
)

// recorder is a testing.TB that records how a test ended, without ending
// the real one.
type recorder struct {
	testing.TB
	fatal, skipped string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = format
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = format
}

func TestSkipFailsUnderIntegration(t *testing.T) {
	tests := []struct {
		env, fatal, skipped string
	}{
		{"1", "SUMMONER_INTEGRATION=1 but no sshd", ""},
		{"", "", "no sshd"},
		{"0", "", "no sshd"},
	}
	for _, tt := range tests {
		t.Run("SUMMONER_INTEGRATION="+tt.env, func(t *testing.T) {
			t.Setenv("SUMMONER_INTEGRATION", tt.env)
			r := &recorder{TB: t}
			Skip(r, "no sshd")
			if r.fatal != tt.fatal || r.skipped != tt.skipped {
				t.Fatalf("fatal %q, skipped %q; want %q, %q", r.fatal, r.skipped, tt.fatal, tt.skipped)
			}
		})
	}
}

func TestNeedRoot(t *testing.T) {
	t.Setenv("SUMMONER_INTEGRATION", "1")
	r := &recorder{TB: t}
	NeedRoot(r, "to change owners")
	if root := os.Geteuid() == 0; root != (r.fatal == "") || r.skipped != "" {
		t.Fatalf("root %v: fatal %q, skipped %q", root, r.fatal, r.skipped)
	}
}
