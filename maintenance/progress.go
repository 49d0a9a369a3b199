package maintenance

import (
	"fmt"
	"io"
	"time"

	"github.com/summoner-bot/summoner/internal/human"
)

// progressEvery is how often a long stream says how far it got; the chat
// layer edits one message in place, so this is one edit per interval.
const progressEvery = 2 * time.Second

// rateReader reports the bytes read so far and the rate, at most once per
// interval, so a long dump shows it is alive.
type rateReader struct {
	r     io.Reader
	what  string
	say   Progress
	every time.Duration
	start time.Time
	last  time.Time
	n     int64
}

func (r *rateReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if now := time.Now(); now.Sub(r.last) >= r.every {
		r.last = now
		rate := float64(r.n) / now.Sub(r.start).Seconds()
		r.say(fmt.Sprintf("%s: %s so far, %s/s…", r.what, human.Bytes(r.n), human.Bytes(int64(rate))))
	}
	return n, err
}
