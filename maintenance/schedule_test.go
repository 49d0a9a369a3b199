package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
)

const everySecond = "*/1 * * * * *"

// schedWaitFor polls cond until it holds, failing the test after 10s.
func schedWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// schedLogCount counts log records whose message contains a string.
type schedLogCount struct {
	substr string
	n      *atomic.Int32
}

func (h schedLogCount) Enabled(context.Context, slog.Level) bool { return true }
func (h schedLogCount) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.substr) {
		h.n.Add(1)
	}
	return nil
}
func (h schedLogCount) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h schedLogCount) WithGroup(string) slog.Handler      { return h }

// schedFixture is a scheduler whose reports reach a recorder.
type schedFixture struct {
	s     *Scheduler
	rec   *chattest.Recorder
	state string
}

func newSchedFixture(t *testing.T, state string, o SchedulerOptions, jobs ...ScheduledJob) *schedFixture {
	t.Helper()
	if state == "" {
		state = filepath.Join(t.TempDir(), "maintenance-state.json")
	}
	rec := &chattest.Recorder{}
	o.StateFile, o.Reports, o.Location = state, testReporter{rec}, time.UTC
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s, err := NewScheduler(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if err := s.Register(j); err != nil {
			t.Fatal(err)
		}
	}
	return &schedFixture{s: s, rec: rec, state: state}
}

func (f *schedFixture) start(t *testing.T) {
	t.Helper()
	if err := f.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.stop(t) })
}

func (f *schedFixture) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.s.Stop(ctx); err != nil {
		t.Error(err)
	}
}

// posts counts the posts containing substr.
func (f *schedFixture) posts(substr string) int {
	n := 0
	for _, p := range f.rec.Posts() {
		if strings.Contains(p.Text, substr) {
			n++
		}
	}
	return n
}

func TestSchedulerRunsAndReports(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	f := newSchedFixture(t, "", SchedulerOptions{}, ScheduledJob{Name: "dump", Title: "the nightly dump", Spec: everySecond,
		Run: func(ctx context.Context) Report {
			runs.Add(1)
			if _, ok := ctx.Deadline(); !ok {
				return Report{Err: errors.New("the run has no deadline")}
			}
			return Report{Results: []MinionResult{{Minion: "wekan", Action: ActionDump, Size: 2048, StoredOn: []string{"disk"}, Verified: true}}}
		}})
	f.start(t)
	schedWaitFor(t, "a report in the ops channel", func() bool { return f.posts("✅ **The nightly dump**: 1 ok") > 0 })
	p := f.rec.Posts()[0]
	if p.To.ChannelID != "~ops" || !strings.Contains(p.Text, "| wekan | dump | 2 KiB |") {
		t.Fatalf("post = %+v", p)
	}
	info := f.s.List()
	if len(info) != 1 || info[0].Next.IsZero() || info[0].LastRun.IsZero() || info[0].LastFailed || info[0].Spec != everySecond {
		t.Fatalf("List = %+v", info)
	}
}

func TestSchedulerReportsAnOverlapOnce(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var skips atomic.Int32
	var runs atomic.Int32
	log := slog.New(schedLogCount{substr: "skipping a run", n: &skips})
	f := newSchedFixture(t, "", SchedulerOptions{Logger: log}, ScheduledJob{Name: "dump", Title: "the nightly dump", Spec: everySecond,
		Run: func(ctx context.Context) Report {
			if runs.Add(1) == 1 {
				select {
				case <-release:
				case <-ctx.Done():
				}
			}
			return Report{}
		}})
	f.start(t)
	skipped := "⏭️ The nightly dump was still running when the next one was due; this run was skipped."
	schedWaitFor(t, "the skip report", func() bool { return f.posts(skipped) > 0 })
	schedWaitFor(t, "a second skipped tick", func() bool { return skips.Load() >= 2 })
	if f.rec.Posts()[0].Text != skipped {
		t.Fatalf("first post = %q", f.rec.Posts()[0].Text)
	}
	close(release)
	schedWaitFor(t, "the long run's report", func() bool { return f.posts("more run") > 0 })
	if n := f.posts(skipped); n != 1 {
		t.Fatalf("%d skip reports for one overlapping run, want 1:\n%s", n, f.rec.Transcript())
	}
	// The job goes on running on its schedule.
	schedWaitFor(t, "a later run", func() bool { return runs.Load() >= 2 })
}

func TestSchedulerPanicIsAFailureAndItGoesOn(t *testing.T) {
	t.Parallel()
	f := newSchedFixture(t, "", SchedulerOptions{}, ScheduledJob{Name: "prune", Title: "the prune of old backups", Spec: everySecond,
		Run: func(context.Context) Report { panic("index out of range") }})
	f.start(t)
	schedWaitFor(t, "two failure reports", func() bool {
		return f.posts("⚠️ **The run failed:** it stopped on an internal error (a bug in Summoner; the logs have the details)") >= 2
	})
	if info := f.s.List(); !info[0].LastFailed {
		t.Fatalf("List = %+v", info)
	}
}

func TestSchedulerDeadlineAndStopGrace(t *testing.T) {
	t.Parallel()
	blockUntilDone := func(ctx context.Context) Report { <-ctx.Done(); return Report{} }
	tests := []struct {
		name    string
		timeout time.Duration
		want    string
	}{
		{"run deadline", 50 * time.Millisecond, "it was stopped after <1s (maintenance.run_timeout), before it finished"},
		{"stop after the grace period", time.Hour, "it was stopped because Summoner was shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newSchedFixture(t, "", SchedulerOptions{StopGrace: 50 * time.Millisecond},
				ScheduledJob{Name: "dump", Spec: everySecond, Timeout: tt.timeout, Run: blockUntilDone})
			f.start(t)
			if tt.timeout == time.Hour {
				schedWaitFor(t, "a run", func() bool { return f.s.List()[0].Running })
				f.stop(t) // returns after the grace, once the cancelled run has reported
			}
			schedWaitFor(t, "the report", func() bool { return f.posts(tt.want) > 0 })
		})
	}
}

func TestSchedulerChangesPersist(t *testing.T) {
	t.Parallel()
	var runs atomic.Int32
	job := ScheduledJob{Name: "dump", Title: "the nightly dump", Spec: "off",
		Run: func(context.Context) Report { runs.Add(1); return Report{} }}
	f := newSchedFixture(t, "", SchedulerOptions{}, job)
	f.start(t)

	tests := []struct {
		name, job, spec string
		wantErr         string
	}{
		{"unknown job", "dumps", everySecond, `no such job "dumps"; the jobs are dump`},
		{"bad schedule", "dump", "every night", `"every night" is not a schedule`},
		{"empty schedule", "dump", " ", "the schedule is empty"},
	}
	for _, tt := range tests {
		if _, err := f.s.Set(tt.job, tt.spec); err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	if _, err := f.s.Set("nope", "@daily"); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("err = %v, want ErrUnknownJob", err)
	}

	// Turned on at run time: the entry is reloaded and fires.
	info, err := f.s.Set("dump", everySecond)
	if err != nil || !info.Changed || info.Spec != everySecond || info.Default != "off" || info.Next.IsZero() {
		t.Fatalf("Set = %+v, %v", info, err)
	}
	schedWaitFor(t, "a run on the new schedule", func() bool { return runs.Load() > 0 })
	if st, err := os.Stat(f.state); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v, %v", st, err)
	}
	f.stop(t)

	// A new scheduler on the same state file keeps the change.
	job.Spec = "0 3 * * *"
	g := newSchedFixture(t, f.state, SchedulerOptions{}, job)
	if got := g.s.List()[0]; got.Spec != everySecond || !got.Changed || got.Default != "0 3 * * *" {
		t.Fatalf("after a restart: %+v", got)
	}
	g.start(t)
	before := runs.Load()
	schedWaitFor(t, "a run after the restart", func() bool { return runs.Load() > before })

	if got, err := g.s.Off("dump"); err != nil || got.Spec != "off" || !got.Next.IsZero() {
		t.Fatalf("Off = %+v, %v", got, err)
	}
	h := newSchedFixture(t, f.state, SchedulerOptions{}, job)
	if got := h.s.List()[0]; got.Spec != "off" || !got.Changed {
		t.Fatalf("off after a restart: %+v", got)
	}
	if got, err := h.s.Reset("dump"); err != nil || got.Spec != "0 3 * * *" || got.Changed {
		t.Fatalf("Reset = %+v, %v", got, err)
	}
}

func TestSchedulerCatchesUpOnce(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	tests := []struct {
		name       string
		late       time.Duration // how long ago the missed run was due
		noLastRun  bool
		wantRuns   int32
		wantPosted string
	}{
		{name: "an hour late runs once", late: time.Hour, wantRuns: 1, wantPosted: "🔁 Run at start-up: it was due"},
		{name: "23 hours late runs once", late: 23 * time.Hour, wantRuns: 1, wantPosted: "🔁 Run at start-up"},
		{name: "25 hours late waits", late: 25 * time.Hour, wantRuns: 0, wantPosted: "That is more than a day ago, so it was not run late"},
		{name: "never ran: nothing to catch up", late: time.Hour, noLastRun: true, wantRuns: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			due := now.Add(-tt.late)
			// A yearly schedule whose last time was due: cron itself will not
			// fire during the test.
			spec := fmt.Sprintf("%d %d %d %d %d *", due.Second(), due.Minute(), due.Hour(), due.Day(), int(due.Month()))
			st := schedState{Since: now.Add(-time.Minute), Runs: map[string]schedLastRun{}}
			if !tt.noLastRun {
				st.Since = due.Add(-48 * time.Hour)
				st.Runs["cold_backup"] = schedLastRun{Started: due.Add(-time.Hour), Ended: due.Add(-59 * time.Minute)}
			}
			state := filepath.Join(t.TempDir(), "state.json")
			var runs atomic.Int32
			job := ScheduledJob{Name: "cold_backup", Title: "the weekly cold backup", Spec: spec,
				Run: func(context.Context) Report { runs.Add(1); return Report{} }}
			for restart := range 2 {
				f := newSchedFixture(t, state, SchedulerOptions{}, job)
				if restart == 0 {
					if err := f.s.saveLocked(st); err != nil {
						t.Fatal(err)
					}
					if err := f.s.loadState(); err != nil {
						t.Fatal(err)
					}
				}
				f.start(t)
				f.stop(t) // waits for the catch-up run and its report
				// Said once: the second start has nothing to catch up or announce.
				if want := 1 - restart; tt.wantPosted != "" && f.posts(tt.wantPosted) != want {
					t.Errorf("start %d: %d posts with %q, want %d:\n%s", restart+1, f.posts(tt.wantPosted), tt.wantPosted, want, f.rec.Transcript())
				}
			}
			// The second start found the run done: still one run in all.
			if got := runs.Load(); got != tt.wantRuns {
				t.Fatalf("%d runs, want %d", got, tt.wantRuns)
			}
		})
	}
}

func TestSchedulerRegister(t *testing.T) {
	t.Parallel()
	f := newSchedFixture(t, "", SchedulerOptions{})
	run := func(context.Context) Report { return Report{} }
	tests := []struct {
		name    string
		job     ScheduledJob
		wantErr string
	}{
		{"good", ScheduledJob{Name: "dump", Spec: "@daily", Run: run}, ""},
		{"twice", ScheduledJob{Name: "dump", Spec: "@daily", Run: run}, "registered twice"},
		{"no function", ScheduledJob{Name: "x", Spec: "@daily"}, "needs a name and a function"},
		{"bad spec", ScheduledJob{Name: "y", Spec: "daily", Run: run}, `registering job y: "daily" is not a schedule`},
	}
	for _, tt := range tests {
		err := f.s.Register(tt.job)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	if got := f.s.List(); len(got) != 1 || got[0].Title != "the scheduled dump" {
		t.Errorf("List = %+v, want the config job's title", got)
	}
	f.start(t)
	if err := f.s.Register(ScheduledJob{Name: "late", Spec: "@daily", Run: run}); err == nil {
		t.Error("registered a job after Start")
	}
}

// A corrupt state file stops the start-up with its path, rather than
// silently dropping an admin's schedule changes.
func TestSchedulerCorruptState(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(p, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewScheduler(SchedulerOptions{StateFile: p, Reports: testReporter{&chattest.Recorder{}}})
	if err == nil || !strings.Contains(err.Error(), "reading the maintenance state "+p) {
		t.Fatalf("err = %v", err)
	}
}

// testReporter posts reports to ~ops as the daemon's reporter does.
type testReporter struct{ p *chattest.Recorder }

func (r testReporter) Publish(ctx context.Context, rep Report) error {
	_, err := r.p.Post(ctx, chat.Destination{ChannelID: "~ops"}, rep.Render())
	return err
}
