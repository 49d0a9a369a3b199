package human

import (
	"testing"
	"time"
)

func TestBytesAndAge(t *testing.T) {
	for n, want := range map[int64]string{12: "12 B", 788 << 10: "788 KiB", 300 << 20: "300 MiB", 3 << 29: "1.5 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
	for d, want := range map[time.Duration]string{42 * time.Second: "42s", 5 * time.Minute: "5m", 26 * time.Hour: "26h0m", 80 * time.Hour: "3d"} {
		if got := Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestLeft(t *testing.T) {
	for d, want := range map[time.Duration]string{
		80 * 24 * time.Hour: "80 days", 9*24*time.Hour + time.Hour: "9 days", 5 * time.Hour: "5 hours", -time.Minute: "expired",
	} {
		if got := Left(d); got != want {
			t.Errorf("Left(%v) = %q, want %q", d, got, want)
		}
	}
}
