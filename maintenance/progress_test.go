package maintenance

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestRateReaderSaysHowFarItGot(t *testing.T) {
	var said []string
	start := time.Now().Add(-4 * time.Second)
	r := &rateReader{r: strings.NewReader(strings.Repeat("x", 8<<20)), what: "Dumping wekan", every: time.Nanosecond,
		start: start, last: start, say: func(s string) { said = append(said, s) }}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	if len(said) == 0 {
		t.Fatal("no progress")
	}
	last := said[len(said)-1]
	if !strings.HasPrefix(last, "Dumping wekan: 8 MiB so far, ") || !strings.HasSuffix(last, "/s…") {
		t.Fatalf("progress %q", last)
	}
}
