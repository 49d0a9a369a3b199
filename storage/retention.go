package storage

import (
	"fmt"
	"sort"
	"time"
)

// Retention is a grandfather-father-son policy: the newest KeepLast, plus
// the newest backup of each of the last Daily days, Weekly ISO weeks and
// Monthly months that have backups. Zero everywhere keeps everything.
type Retention struct {
	KeepLast int `yaml:"keep_last"`
	Daily    int `yaml:"daily"`
	Weekly   int `yaml:"weekly"`
	Monthly  int `yaml:"monthly"`
}

// IsZero tells whether the policy keeps everything.
func (p Retention) IsZero() bool { return p == Retention{} }

func (p Retention) String() string {
	return fmt.Sprintf("last %d, daily %d, weekly %d, monthly %d", p.KeepLast, p.Daily, p.Weekly, p.Monthly)
}

// Keep returns which of the times to keep. The newest is always kept, so
// retention can never leave a minion without its last good backup.
func (p Retention) Keep(times []time.Time) map[time.Time]bool {
	keep := map[time.Time]bool{}
	if len(times) == 0 {
		return keep
	}
	sorted := append([]time.Time(nil), times...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].After(sorted[j]) })
	if p.IsZero() {
		for _, t := range sorted {
			keep[t] = true
		}
		return keep
	}
	keep[sorted[0]] = true
	for i := 0; i < p.KeepLast && i < len(sorted); i++ {
		keep[sorted[i]] = true
	}
	bucket := func(n int, key func(time.Time) string) {
		seen := map[string]bool{}
		for _, t := range sorted {
			if len(seen) >= n {
				return
			}
			k := key(t.UTC())
			if !seen[k] {
				seen[k] = true
				keep[t] = true
			}
		}
	}
	bucket(p.Daily, func(t time.Time) string { return t.Format("2006-01-02") })
	bucket(p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) })
	bucket(p.Monthly, func(t time.Time) string { return t.Format("2006-01") })
	return keep
}
