package minions_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkSummonVsDockerRun compares, in one run, `summon` of the
// two-container test minion (to healthy) with starting the same containers
// by `docker run` in sequence and waiting for the same health: database
// health check passing and the web app answering. Images are local.
func BenchmarkSummonVsDockerRun(b *testing.B) {
	f := newFixture(b)
	ctx := context.Background()
	f.summon(b, "") // pulls the images once
	if err := f.e.Banish(ctx, testMinion, true); err != nil {
		b.Fatal(err)
	}
	hasCompose := exec.Command("docker", "compose", "version").Run() == nil
	var summon, run, compose []time.Duration
	for range b.N {
		start := time.Now()
		f.summon(b, "")
		summon = append(summon, time.Since(start))
		if err := f.e.Banish(ctx, testMinion, true); err != nil {
			b.Fatal(err)
		}

		run = append(run, dockerRunSequence(b, f))
		if hasCompose {
			compose = append(compose, composeUp(b, f))
		}
	}
	p50 := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2].Microseconds()) / 1000
	}
	s, r := p50(summon), p50(run)
	b.ReportMetric(s, "summon-p50-ms")
	b.ReportMetric(r, "docker-run-p50-ms")
	b.ReportMetric(s/r, "ratio")
	if hasCompose {
		c := p50(compose)
		b.ReportMetric(c, "compose-up-wait-p50-ms")
		b.ReportMetric(s/c, "ratio-to-compose")
	}
}

// composeUp starts the minion's own compose file with `docker compose up
// -d --wait` (which waits for the database's health check and for the web
// container to run) and then for the web app to answer, like summon does.
func composeUp(b *testing.B, f *fixture) time.Duration {
	data := b.TempDir()
	for _, img := range []string{"summoner/testapp:1.0", "postgres:15.10"} {
		src := f.d.Registry + "/" + img
		if !strings.Contains(img, "/") {
			src = f.d.Registry + "/library/" + img
		}
		docker(b, "tag", src, img) // compose pulls nothing when the tag is local
	}
	env := append(os.Environ(), "VERSION=1.0", "HTTP_PORT="+f.port, "DATA="+filepath.Join(data, "app"),
		"DB_DATA="+filepath.Join(data, "db"), "DB_PASSWORD=benchpw")
	compose := func(args ...string) {
		cmd := exec.Command("docker", append([]string{"compose", "-p", "bench-compose", "-f", "testdata/minions/testmin/compose.yml"}, args...)...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("docker compose %v: %v\n%s", args, err, out)
		}
	}
	defer compose("down", "-v", "--timeout", "1")
	start := time.Now()
	compose("up", "-d", "--wait")
	for {
		if resp, err := http.Get("http://127.0.0.1:" + f.port + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > time.Minute {
			b.Fatal("the compose stack did not answer within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func docker(b *testing.B, args ...string) string {
	b.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		b.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// dockerRunSequence starts the test minion's containers by hand, as an
// experienced user would, and returns the time until both are ready.
func dockerRunSequence(b *testing.B, f *fixture) time.Duration {
	data := b.TempDir()
	net, db, web := "bench-run-net", "bench-run-db", "bench-run-web"
	// Leftovers of an earlier run first, and ours after; none is fine.
	cleanup := func() {
		_ = exec.Command("docker", "rm", "-f", "-v", db, web).Run()
		_ = exec.Command("docker", "network", "rm", net).Run()
	}
	cleanup()
	defer cleanup()
	reg := f.d.Registry + "/"
	start := time.Now()
	docker(b, "network", "create", net)
	docker(b, "run", "-d", "--name", db, "--network", net, "--network-alias", "db",
		"-e", "POSTGRES_USER=app", "-e", "POSTGRES_PASSWORD=benchpw", "-e", "POSTGRES_DB=appdb",
		"-v", filepath.Join(data, "pg")+":/var/lib/postgresql/data",
		"--health-cmd", "pg_isready -U app -d appdb -h 127.0.0.1", "--health-interval", "500ms", "--health-retries", "60",
		reg+"library/postgres:15.10")
	docker(b, "run", "-d", "--name", web, "--network", net, "-p", "127.0.0.1:"+f.port+":8080",
		"-e", "DATABASE_URL=postgres://app:benchpw@db:5432/appdb", "-v", filepath.Join(data, "uploads")+":/uploads",
		reg+"summoner/testapp:1.0")
	for {
		if docker(b, "inspect", "-f", "{{.State.Health.Status}}", db) == "healthy" {
			if resp, err := http.Get("http://127.0.0.1:" + f.port + "/"); err == nil {
				resp.Body.Close()
				break
			}
		}
		if time.Since(start) > time.Minute {
			b.Fatal("the docker run sequence did not get healthy within a minute")
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	os.RemoveAll(data)
	return took
}
