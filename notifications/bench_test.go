package notifications

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWebhooks is the benchmark, in one run on loopback: the
// same bounded load loop (benchRequests requests from benchConcurrency
// senders, each waiting for its answer) first against a bare net/http
// handler that reads the body and answers 200, then against the webhook
// server, where every request is HMAC-checked, parsed and stored with an
// fsync before its 202. It reports each side's rate and p99 latency and
// the ratio of the rates:
//
//	go test -run='^$' -bench=BenchmarkWebhooks -benchtime=1x ./notifications/
//
// SUMMONER_BENCH_REQUESTS and SUMMONER_BENCH_CONCURRENCY change the load.
func BenchmarkWebhooks(b *testing.B) {
	n := benchEnv("SUMMONER_BENCH_REQUESTS", 20000)
	conc := benchEnv("SUMMONER_BENCH_CONCURRENCY", 128)
	rounds := benchEnv("SUMMONER_BENCH_ROUNDS", 5)
	for b.Loop() {
		bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		})
		st, err := OpenStore(filepath.Join(b.TempDir(), "events.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		srv, err := NewServer(ServerOptions{
			Sources: []Source{{Name: "ci", Kind: KindGeneric, Secret: testSecret}},
			Store:   st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			// All senders share one address: the caps on strangers'
			// bodies stay out of the way of the throughput measured.
			Limits: Limits{Total: conc, PerSource: conc, PerAddress: conc},
		})
		if err != nil {
			b.Fatal(err)
		}
		// Rounds alternate the two sides, so a moment when the machine is
		// busier weighs on both; the medians are compared. Each round's
		// events are new (none is a replay).
		var bareRates, rates []float64
		var bareP99s, p99s []time.Duration
		for round := range rounds {
			base := int64(round) * int64(n+conc+1)
			// Both sides get the same signed requests: signing is the load
			// loop's work, and must not weigh on one side only.
			signed := func(i int64) (http.Header, []byte) {
				body := benchBody(base + i)
				return Sign(testSecret, body, time.Now()), body
			}
			r, p := benchLoad(b, bare, n, conc, signed, http.StatusOK)
			bareRates, bareP99s = append(bareRates, r), append(bareP99s, p)
			r, p = benchLoad(b, srv, n, conc, signed, http.StatusAccepted)
			rates, p99s = append(rates, r), append(p99s, p)
			b.Logf("round %d: bare %.0f/s p99 %v; webhooks %.0f/s p99 %v; ratio %.2f", round+1, bareRates[round], bareP99s[round], rates[round], p99s[round], rates[round]/bareRates[round])
		}
		pending, err := st.Pending()
		if err != nil || len(pending) != rounds*(n+conc) { // with the warm-up requests
			b.Fatalf("the store holds %d events (%v), want %d", len(pending), err, rounds*(n+conc))
		}
		st.Close()
		groups, events := st.stats.groups.Load(), st.stats.events.Load()
		busy := time.Duration(st.stats.busy.Load())
		bareRate, rate := median(bareRates), median(rates)
		bareP99, p99 := median(bareP99s), median(p99s)

		b.ReportMetric(bareRate, "bare/s")
		b.ReportMetric(float64(bareP99.Microseconds())/1000, "bare-p99-ms")
		b.ReportMetric(rate, "webhooks/s")
		b.ReportMetric(float64(p99.Microseconds())/1000, "webhook-p99-ms")
		b.ReportMetric(rate/bareRate, "ratio")
		b.ReportMetric(float64(events)/float64(groups), "events/group")
		b.ReportMetric(float64(busy.Microseconds())/1000/float64(groups), "commit-ms")
		b.Logf("%d rounds of %d requests, %d senders, medians: bare %.0f/s p99 %v; webhooks %.0f/s p99 %v; ratio %.2f; %d groups of %.1f events, %v each",
			rounds, n, conc, bareRate, bareP99, rate, p99, rate/bareRate, groups, float64(events)/float64(groups), busy/time.Duration(groups))
	}
}

// median of a copy of xs.
func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchBody is a generic event, distinct per i so none is a replay.
func benchBody(i int64) []byte {
	return []byte(`{"type":"deploy","project":"shop","ref":"main","status":"success","title":"run ` + strconv.FormatInt(i, 10) + `"}`)
}

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// benchLoad sends n requests to h from conc senders over loopback, each
// sender sending its next request once the last is answered, and returns
// the requests per second and the 99th percentile of the latency.
func benchLoad(b *testing.B, h http.Handler, n, conc int, req func(int64) (http.Header, []byte), want int) (float64, time.Duration) {
	b.Helper()
	ts := httptest.NewServer(h)
	defer ts.Close()
	tr := ts.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost, tr.MaxConnsPerHost = conc, conc
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	url := ts.URL + "/hooks/ci"

	send := func(i int64) (time.Duration, error) {
		hd, body := req(i)
		r, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		r.Header = hd
		start := time.Now()
		resp, err := client.Do(r)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			return 0, fmt.Errorf("status %d, want %d", resp.StatusCode, want)
		}
		return time.Since(start), nil
	}
	// Open the connections first, outside the measure.
	var next atomic.Int64
	next.Store(int64(n))
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			if _, err := send(next.Add(1)); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()

	lat := make([]time.Duration, n)
	var idx atomic.Int64
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := idx.Add(1) - 1
				if i >= int64(n) {
					return
				}
				d, err := send(i)
				if err != nil {
					b.Error(err)
					return
				}
				lat[i] = d
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if b.Failed() {
		b.FailNow()
	}
	slices.Sort(lat)
	return float64(n) / elapsed.Seconds(), lat[len(lat)*99/100]
}
