package storage

import (
	"slices"
	"testing"
	"time"
)

func TestRetentionKeep(t *testing.T) {
	day := func(d, h int) time.Time { return time.Date(2026, 1, d, h, 0, 0, 0, time.UTC) }
	// Two backups a day (03:00 and 15:00) from Jan 1 to Jan 31 2026.
	var month []time.Time
	for d := 1; d <= 31; d++ {
		month = append(month, day(d, 3), day(d, 15))
	}
	tests := []struct {
		name   string
		policy Retention
		times  []time.Time
		want   []time.Time // kept, newest first
	}{
		{"keep everything by default", Retention{}, []time.Time{day(1, 3), day(2, 3)}, []time.Time{day(2, 3), day(1, 3)}},
		{"keep last 3", Retention{KeepLast: 3}, month, []time.Time{day(31, 15), day(31, 3), day(30, 15)}},
		{"daily 3 keeps each day's newest", Retention{Daily: 3}, month, []time.Time{day(31, 15), day(30, 15), day(29, 15)}},
		{"weekly 3 by ISO week", Retention{Weekly: 3}, month,
			// Jan 31 2026 is a Saturday (week 5); weeks 4 and 3 end on Sundays Jan 25 and Jan 18.
			[]time.Time{day(31, 15), day(25, 15), day(18, 15)}},
		{"monthly 2 over a single month", Retention{Monthly: 2}, month, []time.Time{day(31, 15)}},
		{"gfs union", Retention{KeepLast: 1, Daily: 2, Weekly: 2, Monthly: 1}, month,
			[]time.Time{day(31, 15), day(30, 15), day(25, 15)}},
		{"newest kept even with a zero-ish policy", Retention{Monthly: 0, Daily: 0, KeepLast: 0, Weekly: 1}, []time.Time{day(5, 3), day(1, 3)}, []time.Time{day(5, 3)}},
		{"unsorted input", Retention{KeepLast: 2}, []time.Time{day(2, 3), day(9, 3), day(5, 3)}, []time.Time{day(9, 3), day(5, 3)}},
		{"nothing", Retention{KeepLast: 2}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keep := tt.policy.Keep(tt.times)
			var got []time.Time
			for k := range keep {
				got = append(got, k)
			}
			slices.SortFunc(got, func(a, b time.Time) int { return b.Compare(a) })
			if !slices.Equal(got, tt.want) {
				t.Fatalf("kept %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestRetentionNeverDropsTheNewest(t *testing.T) {
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, p := range []Retention{{KeepLast: 1}, {Daily: 1}, {Weekly: 1}, {Monthly: 1}, {KeepLast: 5, Monthly: 12}} {
		for n := 1; n < 50; n += 7 {
			var times []time.Time
			for i := range n {
				times = append(times, base.Add(time.Duration(i*7)*time.Hour))
			}
			if !p.Keep(times)[times[n-1]] {
				t.Fatalf("policy %v dropped the newest of %d", p, n)
			}
		}
	}
}
