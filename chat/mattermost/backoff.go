package mattermost

import (
	"math/rand/v2"
	"time"
)

// Backoff spaces reconnection attempts: exponential from Min to Max with
// jitter, so a restarted server is not hit by every bot at once.
type Backoff struct {
	Min, Max time.Duration
	// ResetAfter: a connection that stayed up this long starts the next
	// outage's attempts from Min again.
	ResetAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Min <= 0 {
		b.Min = time.Second
	}
	if b.Max < b.Min {
		b.Max = max(60*time.Second, b.Min)
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = time.Minute
	}
	return b
}

// Delay is the wait before attempt n (0-based): a random time in
// [d/2, d] where d = min(Max, Min·2ⁿ).
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	d := b.Max
	if n < 30 {
		d = min(b.Max, b.Min<<n)
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
