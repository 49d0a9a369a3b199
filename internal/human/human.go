// Package human formats sizes and durations for chat replies, the same way
// in every command.
package human

import (
	"fmt"
	"time"
)

// Bytes is a size like "1.5 GiB", "300 MiB", "788 KiB" or "12 B".
func Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// Age is a duration like "42s", "5m", "26h0m" or "3d".
func Age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// Left is a time left like "80 days" or "9 hours", for expiries; "expired"
// once it is past.
func Left(d time.Duration) string {
	switch days := int(d.Hours() / 24); {
	case d < 0:
		return "expired"
	case days >= 1:
		return fmt.Sprintf("%d days", days)
	}
	return fmt.Sprintf("%d hours", int(d.Hours()))
}
