package maintenance_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/maintenance"
)

// A 2 GiB cold backup is test-restored with TMPDIR on a 16 MiB tmpfs: the
// archive is read through as a stream, so nothing lands there and memory
// stays flat. The time and peak memory of the test restore are logged
// (figures for the change's note, not assertions).
func TestVerifyRestoreOfA2GiBColdBackupWritesNothing(t *testing.T) {
	f := newITFixture(t, "testmin")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cold, err := f.s.Cold(maintenance.ColdOptions{HelperImage: itHelperImage})
	if err != nil {
		t.Fatal(err)
	}
	target, err := f.e.ColdTarget(f.minion)
	if err != nil {
		t.Fatal(err)
	}
	const files, fileSize = 4, 512 << 20
	started := time.Now()
	for i := range files {
		writeHalfRandom(t, filepath.Join(target.Dirs[0].Path, fmt.Sprintf("big-%d.bin", i)), fileSize, uint64(i))
	}
	t.Logf("wrote %d × %d MiB in %s", files, fileSize>>20, time.Since(started).Round(time.Millisecond))

	started = time.Now()
	res, err := cold.Backup(ctx, f.minion, nil)
	if err != nil {
		t.Fatalf("cold backup: %v", err)
	}
	m := res.Manifest
	t.Logf("cold backup %s: %d bytes plain, %d stored, in %s", m.ID, m.Payload.Size, m.Stored.Size, time.Since(started).Round(time.Millisecond))
	if m.Payload.Size < files*fileSize || m.Counts[maintenance.CountBytes] < files*fileSize || m.EntriesSHA256 == "" {
		t.Fatalf("the backup holds %d bytes, records %v and entries hash %q; want at least %d bytes, recorded", m.Payload.Size, m.Counts, m.EntriesSHA256, files*fileSize)
	}

	tmp := t.TempDir()
	if err := syscall.Mount("tmpfs", tmp, "tmpfs", 0, "size=16m"); err != nil {
		t.Fatalf("mounting a 16 MiB tmpfs (the test runs as root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(tmp, 0); err != nil {
			t.Errorf("unmounting the tmpfs %s: %v", tmp, err)
		}
	})
	t.Setenv("TMPDIR", tmp)

	resetPeakRSS(t)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	started = time.Now()
	vr, err := f.s.VerifyRestore(ctx, f.minion, m.ID, nil)
	took := time.Since(started)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("test restore of the 2 GiB cold backup: %v", err)
	}
	t.Logf("test restore of %d bytes took %s; process peak RSS during it %s; Go heap in use %d MiB after (%d MiB before); %d MiB allocated in all",
		m.Payload.Size, took.Round(time.Millisecond), peakRSS(t), after.HeapInuse>>20, before.HeapInuse>>20, (after.TotalAlloc-before.TotalAlloc)>>20)
	if !vr.Hashed || len(vr.Failed()) != 0 || !strings.Contains(vr.Text(), "passed") {
		t.Errorf("the test restore did not compare what was recorded:\n%s", vr.Text())
	}

	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(tmp, &st); err != nil {
		t.Fatal(err)
	}
	if len(entries) > 0 || st.Bfree != st.Blocks {
		t.Errorf("the test restore wrote to TMPDIR: %d entries, %d of %d blocks used", len(entries), st.Blocks-st.Bfree, st.Blocks)
	}
}

// writeHalfRandom writes size bytes where every other 64 KiB block comes
// from a seeded PRNG and the others are zeros: quick to write, and zstd
// cannot shrink it to nothing.
func writeHalfRandom(t *testing.T, name string, size int, seed uint64) {
	t.Helper()
	out, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	rng := rand.NewChaCha8([32]byte{byte(seed)})
	block := make([]byte, 64<<10)
	for n := 0; n < size; n += len(block) {
		if (n/len(block))%2 == 0 {
			_, _ = rng.Read(block) // ChaCha8.Read always fills block and returns nil
		} else {
			clear(block)
		}
		if _, err := w.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// resetPeakRSS resets the process's VmHWM (Linux's clear_refs 5), so the
// next reading is the peak of what follows.
func resetPeakRSS(t *testing.T) {
	t.Helper()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v); the figure covers the whole test", err)
	}
}

func peakRSS(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}
