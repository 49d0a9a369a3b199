package fuzzy

import "testing"

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"help", "help", 0},
		{"hlep", "help", 1},
		{"hep", "help", 1},
		{"tokn", "token", 1},
		{"status", "summon", 5},
		{"", "abc", 3},
		{"héllo", "hello", 1},
	}
	for _, tt := range tests {
		if got := Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
