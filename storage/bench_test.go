package storage_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/summoner-bot/summoner/internal/sshtest"
	"github.com/summoner-bot/summoner/storage"
)

// BenchmarkThroughput stores one file (1 GiB by default, STOREBENCH_SIZE
// in MiB to change it) to a local folder and to an SFTP server on
// loopback, with and without encryption, and compares with cp and scp of
// the same file. Each store runs in a child process so its peak RSS is its
// own. Run with -benchtime 1x.
func BenchmarkThroughput(b *testing.B) {
	size := int64(1024)
	if v, err := strconv.Atoi(os.Getenv("STOREBENCH_SIZE")); err == nil {
		size = int64(v)
	}
	size <<= 20
	dir := b.TempDir()
	src := filepath.Join(dir, "dump.sql")
	writeDump(b, src, size)
	srv := sshtest.Start(b)
	id, _ := age.GenerateX25519Identity()

	report := func(b *testing.B, took time.Duration, rssKB int64) {
		b.ReportMetric(float64(size)/(1<<20)/took.Seconds(), "MiB/s")
		if rssKB > 0 {
			b.ReportMetric(float64(rssKB)/1024, "peak-RSS-MiB")
		}
	}
	for _, dest := range []string{"local", "sftp"} {
		for _, mode := range []string{"plain", "age", "age+verify"} {
			b.Run(dest+"/"+mode, func(b *testing.B) {
				for range b.N {
					root := filepath.Join(dir, "out-"+dest+"-"+mode)
					if dest == "sftp" {
						root = filepath.Join(srv.DataDir, "out-"+mode)
					}
					os.RemoveAll(root)
					cmd := exec.Command(os.Args[0], "-test.run=^TestStoreBenchChild$")
					cmd.Env = append(os.Environ(), "STOREBENCH_CHILD=1", "STOREBENCH_SRC="+src, "STOREBENCH_DEST="+dest,
						"STOREBENCH_ROOT="+root, "STOREBENCH_MODE="+mode, "STOREBENCH_RECIPIENT="+id.Recipient().String(),
						"STOREBENCH_ADDR="+srv.Addr, "STOREBENCH_USER="+srv.User, "STOREBENCH_KEY="+srv.KeyFile, "STOREBENCH_KH="+srv.KnownHostsFile)
					start := time.Now()
					if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "stored") {
						b.Fatalf("child: %v\n%s", err, out)
					}
					took := time.Since(start)
					report(b, took, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
					b.ReportMetric((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds(), "cpu-s")
					os.RemoveAll(root)
				}
			})
		}
	}
	b.Run("cp", func(b *testing.B) {
		for range b.N {
			dst := filepath.Join(dir, "cp-copy")
			start := time.Now()
			run(b, "cp", src, dst)
			run(b, "sync", dst)
			report(b, time.Since(start), 0)
			os.Remove(dst)
		}
	})
	b.Run("scp", func(b *testing.B) {
		_, port, _ := strings.Cut(srv.Addr, ":")
		for range b.N {
			start := time.Now()
			run(b, "scp", "-q", "-i", srv.KeyFile, "-o", "UserKnownHostsFile="+srv.KnownHostsFile, "-o", "StrictHostKeyChecking=yes",
				"-P", port, src, srv.User+"@127.0.0.1:"+filepath.Join(srv.DataDir, "scp-copy"))
			report(b, time.Since(start), 0)
			os.Remove(filepath.Join(srv.DataDir, "scp-copy"))
		}
	})
}

func run(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// writeDump writes a file that looks like a SQL dump (it compresses about
// as well as a real one), without holding it in memory.
func writeDump(b *testing.B, path string, size int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("alpha beta gamma delta kanban card board list done todo doing review sprint backlog user admin note comment label due")
	var n int64
	for i := 0; n < size; i++ {
		line := fmt.Sprintf("INSERT INTO cards VALUES (%d, '%s %s %s', %d, '2026-%02d-%02d %02d:%02d:%02d', %x);\n",
			i, words[rng.IntN(len(words))], words[rng.IntN(len(words))], words[rng.IntN(len(words))],
			rng.IntN(1000), 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60), rng.Uint64())
		if n+int64(len(line)) > size {
			line = line[:size-n]
		}
		if _, err := w.WriteString(line); err != nil {
			b.Fatal(err)
		}
		n += int64(len(line))
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// TestStoreBenchChild is the child of BenchmarkThroughput; it does nothing
// in a normal test run.
func TestStoreBenchChild(t *testing.T) {
	// Not a test but the entry point of BenchmarkThroughput's child
	// process: the skip is right everywhere, in CI too.
	if os.Getenv("STOREBENCH_CHILD") != "1" {
		t.Skip("only run by BenchmarkThroughput")
	}
	env := os.Getenv
	var be storage.Backend = &storage.Local{Root: env("STOREBENCH_ROOT")}
	if env("STOREBENCH_DEST") == "sftp" {
		s, err := storage.NewSFTP(storage.SFTPConfig{Addr: env("STOREBENCH_ADDR"), User: env("STOREBENCH_USER"),
			KeyFile: env("STOREBENCH_KEY"), KnownHostsFile: env("STOREBENCH_KH"), Root: env("STOREBENCH_ROOT")})
		if err != nil {
			t.Fatal(err)
		}
		be = s
	}
	o := storage.Options{Backends: []storage.Backend{be}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if strings.HasPrefix(env("STOREBENCH_MODE"), "age") {
		o.Recipients = []string{env("STOREBENCH_RECIPIENT")}
	}
	o.VerifyCopies = strings.HasSuffix(env("STOREBENCH_MODE"), "+verify")
	repo, err := storage.NewRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(env("STOREBENCH_SRC"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p := env("STOREBENCH_PROFILE"); p != "" {
		pf, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := repo.Store(context.Background(), storage.Meta{Minion: "bench", Kind: storage.KindDump}, f)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("stored %d bytes as %d\n", res.Manifest.Payload.Size, res.Manifest.Stored.Size)
}
