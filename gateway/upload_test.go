package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/itgate"
)

// zeros is an endless reader of zeros: a body that costs no memory.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// vmRSS reads this process's resident set size in bytes.
func vmRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		itgate.Skip(t, "no /proc/self/status to read the memory from (Linux only): %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestLargeUploadStreams sends 1 GiB through the proxy (over TLS) to a
// counting sink and checks the process's memory stays flat: the body is
// streamed, never buffered.
func TestLargeUploadStreams(t *testing.T) {
	// -short is someone asking for a quick run; .ci/run never passes it,
	// so in CI this always runs.
	if testing.Short() {
		t.Skip("1 GiB upload")
	}
	const size = 1 << 30
	const limit = 64 << 20
	var received atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		received.Store(n)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		_, _ = w.Write([]byte(strconv.FormatInt(n, 10))) // a lost write shows in the client's read
	}))
	t.Cleanup(sink.Close)
	_, srv := tlsRouter(t, []Route{{Host: "files.example.com", Minion: "nextcloud", Backend: sink.Listener.Addr().String(), State: StateUp}})

	runtime.GC()
	base := vmRSS(t)
	var baseHeap runtime.MemStats
	runtime.ReadMemStats(&baseHeap)

	var peak atomic.Int64
	var peakHeap atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if r := vmRSS(t); r > peak.Load() {
					peak.Store(r)
				}
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > peakHeap.Load() {
					peakHeap.Store(ms.HeapInuse)
				}
			}
		}
	}()

	start := time.Now()
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/remote.php/dav/files/big.bin", io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "files.example.com"
	req.ContentLength = size
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()

	if resp.StatusCode != 200 || received.Load() != size {
		t.Fatalf("status %d, sink got %d bytes (%s)", resp.StatusCode, received.Load(), body)
	}
	growth := peak.Load() - base
	heapGrowth := int64(peakHeap.Load()) - int64(baseHeap.HeapInuse)
	t.Logf("1 GiB through the proxy in %v (%.0f MiB/s); peak RSS growth %.1f MiB, peak heap-in-use growth %.1f MiB",
		elapsed.Round(time.Millisecond), float64(size)/(1<<20)/elapsed.Seconds(), float64(growth)/(1<<20), float64(heapGrowth)/(1<<20))
	if growth > limit {
		t.Errorf("RSS grew by %d MiB for a 1 GiB upload (limit %d MiB): the body is buffered", growth>>20, limit>>20)
	}
}
