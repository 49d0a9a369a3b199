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
	for b.Loop() {
		bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
		})
		bareRate, bareP99 := benchLoad(b, bare, n, conc, func(int64) (http.Header, []byte) { return http.Header{}, benchBody(0) }, http.StatusOK)

		st, err := OpenStore(filepath.Join(b.TempDir(), "events.db"), nil)
		if err != nil {
			b.Fatal(err)
		}
		srv, err := NewServer(ServerOptions{
			Sources: []Source{{Name: "ci", Kind: KindGeneric, Secret: testSecret}},
			Store:   st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err != nil {
			b.Fatal(err)
		}
		rate, p99 := benchLoad(b, srv, n, conc, func(i int64) (http.Header, []byte) {
			body := benchBody(i)
			return Sign(testSecret, body, time.Now()), body
		}, http.StatusAccepted)
		pending, err := st.Pending()
		if err != nil || len(pending) != n+conc { // with the warm-up requests
			b.Fatalf("the store holds %d events (%v), want %d", len(pending), err, n+conc)
		}
		st.Close()
		groups, events := st.stats.groups.Load(), st.stats.events.Load()
		busy := time.Duration(st.stats.busy.Load())

		b.ReportMetric(bareRate, "bare/s")
		b.ReportMetric(float64(bareP99.Microseconds())/1000, "bare-p99-ms")
		b.ReportMetric(rate, "webhooks/s")
		b.ReportMetric(float64(p99.Microseconds())/1000, "webhook-p99-ms")
		b.ReportMetric(rate/bareRate, "ratio")
		b.ReportMetric(float64(events)/float64(groups), "events/group")
		b.ReportMetric(float64(busy.Microseconds())/1000/float64(groups), "commit-ms")
		b.ReportMetric(busy.Seconds()*rate/float64(n+conc), "committer-busy")
		b.Logf("%d requests, %d senders: bare %.0f/s p99 %v; webhooks %.0f/s p99 %v; ratio %.2f; %d groups of %.1f events, %v each, committer busy %.0f%%",
			n, conc, bareRate, bareP99, rate, p99, rate/bareRate, groups, float64(events)/float64(groups), busy/time.Duration(groups), 100*busy.Seconds()*rate/float64(n+conc))
	}
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
