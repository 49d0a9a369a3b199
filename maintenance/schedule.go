package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// ScheduleOff is the schedule of a job that does not run by itself.
const ScheduleOff = "off"

// Defaults of SchedulerOptions.
const (
	DefaultRunTimeout = 6 * time.Hour
	DefaultStopGrace  = time.Minute
	// DefaultCatchUp: a run missed while the bot was down is caught up at
	// start-up only if it is less late than this; an older one would
	// surprise (a cold backup at noon stops the apps) more than it helps.
	DefaultCatchUp = 24 * time.Hour
	// schedReportTimeout bounds posting one report to the outbox.
	schedReportTimeout = 30 * time.Second
)

// ErrUnknownJob is returned for a job name the scheduler does not know.
var ErrUnknownJob = errors.New("no such job")

// schedParser reads schedules as config validates them: five fields, or
// six with seconds first, or a descriptor such as @daily.
var schedParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ReportPublisher sends a run's report to people (Reporter does, to the
// ops channel).
type ReportPublisher interface {
	Publish(ctx context.Context, r Report) error
}

// ScheduledJob is a job the scheduler runs.
type ScheduledJob struct {
	Name string // "dump": what `schedule set dump ...` and the config call it
	// Title is how messages name it, "the scheduled dump"; "" gives that
	// for the config's jobs (dump, cold_backup, verify_restore,
	// verify_cold_restore, prune, digest) and "the <name> job" for others.
	Title string
	// Spec is the schedule from the config, or "off"; a change made from
	// chat overrides it.
	Spec    string
	Timeout time.Duration // each run's deadline; 0 is the scheduler's RunTimeout
	// Run does the work and says what happened. It must return once ctx
	// ends; a panic is reported as a failure.
	Run func(ctx context.Context) Report
}

// SchedulerOptions configure a Scheduler.
type SchedulerOptions struct {
	// StateFile keeps schedule changes and last runs (mode 0600).
	StateFile  string
	Location   *time.Location // the schedules' time zone; nil is the server's
	Reports    ReportPublisher
	Logger     *slog.Logger
	RunTimeout time.Duration // default for jobs without one; 0 is DefaultRunTimeout
	StopGrace  time.Duration // how long Stop lets runs finish before cancelling them
	CatchUp    time.Duration // 0 is DefaultCatchUp
}

// ScheduleInfo is one job as `schedule` lists it.
type ScheduleInfo struct {
	Name, Title string
	Spec        string    // the schedule in force, or "off"
	Default     string    // the config's schedule
	Changed     bool      // Spec was set from chat and overrides Default
	Next        time.Time // zero when off
	LastRun     time.Time // zero when it never ran
	LastFailed  bool
	Running     bool
}

// schedState is the state file.
type schedState struct {
	// Since is when the scheduler first ran: the reference for catching up
	// a job that never ran.
	Since     time.Time               `json:"since"`
	Overrides map[string]string       `json:"overrides,omitempty"`
	Runs      map[string]schedLastRun `json:"last_runs,omitempty"`
}

type schedLastRun struct {
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	Failed  bool      `json:"failed,omitempty"`
	// MissedReported is the due time of a miss too old to catch up that
	// was already reported, so a second restart does not say it again.
	MissedReported time.Time `json:"missed_reported,omitzero"`
}

// schedJob is a registered job and its run-time state.
type schedJob struct {
	ScheduledJob
	entry cron.EntryID // 0 when off
	// running is held for the whole of a run: a tick that cannot take it
	// is skipped (a lock per job, as in offen's run_script.go).
	running sync.Mutex
	skipped int // ticks skipped during the current run; guarded by Scheduler.mu
}

// Scheduler runs maintenance jobs on their schedules and reports each run.
type Scheduler struct {
	o    SchedulerOptions
	log  *slog.Logger
	cron *cron.Cron

	mu      sync.Mutex
	jobs    map[string]*schedJob
	order   []string
	state   schedState
	started bool
	stopped bool

	base   context.Context // parent of every run; cancelled by Stop after the grace
	cancel context.CancelFunc
	wg     sync.WaitGroup // runs started outside cron (catch-ups)
}

// NewScheduler reads the state file (a missing one is a first start).
func NewScheduler(o SchedulerOptions) (*Scheduler, error) {
	if o.StateFile == "" {
		return nil, errors.New("the scheduler needs a state file")
	}
	if o.Reports == nil {
		return nil, errors.New("the scheduler needs somewhere to send reports")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.RunTimeout <= 0 {
		o.RunTimeout = DefaultRunTimeout
	}
	if o.StopGrace <= 0 {
		o.StopGrace = DefaultStopGrace
	}
	if o.CatchUp <= 0 {
		o.CatchUp = DefaultCatchUp
	}
	s := &Scheduler{o: o, log: o.Logger, jobs: map[string]*schedJob{}}
	if err := s.loadState(); err != nil {
		return nil, err
	}
	// Recover is the last net under our own wrapper, which already turns a
	// job's panic into a failure report.
	s.cron = cron.New(cron.WithParser(schedParser), cron.WithLocation(o.Location),
		cron.WithLogger(schedLogger{s.log}), cron.WithChain(cron.Recover(schedLogger{s.log})))
	return s, nil
}

// Register adds a job; call it before Start.
func (s *Scheduler) Register(j ScheduledJob) error {
	if j.Name == "" || j.Run == nil {
		return errors.New("registering a job: it needs a name and a function")
	}
	if _, err := schedParse(j.Spec); err != nil {
		return fmt.Errorf("registering job %s: %w", j.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("registering job %s: the scheduler has started", j.Name)
	}
	if _, dup := s.jobs[j.Name]; dup {
		return fmt.Errorf("registering job %s: registered twice", j.Name)
	}
	if j.Title == "" {
		j.Title = schedTitle(j.Name)
	}
	if j.Timeout <= 0 {
		j.Timeout = s.o.RunTimeout
	}
	s.jobs[j.Name] = &schedJob{ScheduledJob: j}
	s.order = append(s.order, j.Name)
	return nil
}

// Start schedules every job, then runs once each job whose run was missed
// while the bot was down and is less than a day late. Runs outlive ctx's
// cancellation until Stop: only Stop ends them, after its grace period.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("the scheduler has already started")
	}
	s.started = true
	s.base, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for name, spec := range s.state.Overrides {
		j := s.jobs[name]
		if j == nil {
			s.log.Warn("schedule change for a job that no longer exists; ignored", "job", name, "spec", spec)
			continue
		}
		if _, err := schedParse(spec); err != nil {
			s.log.Warn("bad schedule change in the state file; using the config's", "job", name, "spec", spec, "err", err)
			continue
		}
	}
	now := time.Now()
	for _, name := range s.order {
		j := s.jobs[name]
		sched, err := schedParse(s.specLocked(j))
		if err != nil {
			return fmt.Errorf("scheduling %s: %w", name, err)
		}
		if sched == nil {
			continue
		}
		j.entry = s.cron.Schedule(sched, s.cronJob(j))
		s.catchUpLocked(j, sched, now)
	}
	s.cron.Start()
	return nil
}

// catchUpLocked runs j now if a run fell due while the bot was down and
// is less late than the catch-up limit, and reports an older miss.
func (s *Scheduler) catchUpLocked(j *schedJob, sched cron.Schedule, now time.Time) {
	ref := s.state.Runs[j.Name].Started
	if ref.IsZero() {
		ref = s.state.Since
	}
	first := sched.Next(ref.In(s.o.Location))
	if first.IsZero() || first.After(now) {
		return // nothing was missed
	}
	// The latest due time at or before now, from a bounded start so that a
	// per-second schedule down for a month does not loop for long.
	from := ref
	if limit := now.Add(-s.o.CatchUp); from.Before(limit) {
		from = limit
	}
	due := sched.Next(from.In(s.o.Location))
	if due.IsZero() || due.After(now) {
		last := s.state.Runs[j.Name]
		if last.MissedReported.Equal(first) {
			return
		}
		s.log.Info("a run was missed more than the catch-up limit ago; waiting for the next", "job", j.Name, "was_due", first)
		last.MissedReported = first
		s.setRunLocked(j.Name, last)
		rep := Report{Job: j.Name, Title: j.Title, Started: now, MissedAt: first, NextRun: sched.Next(now.In(s.o.Location))}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.publish(rep)
		}()
		return
	}
	for next := sched.Next(due); !next.IsZero() && !next.After(now); next = sched.Next(next) {
		due = next
	}
	s.log.Info("catching up a run missed while stopped", "job", j.Name, "was_due", due)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(j, due)
	}()
}

// schedTitle names the config's jobs in messages. The titles say nothing
// of how often they run: an admin may change that from chat.
func schedTitle(name string) string {
	switch name {
	case "dump":
		return "the scheduled dump"
	case "cold_backup":
		return "the scheduled cold backup"
	case "verify_restore":
		return "the scheduled test restore"
	case "verify_cold_restore":
		return "the scheduled test restore of cold backups"
	case "prune":
		return "the prune of old backups"
	case "digest":
		return "the backup digest"
	}
	return "the " + strings.ReplaceAll(name, "_", " ") + " job"
}

// cronJob is what cron calls on each tick.
func (s *Scheduler) cronJob(j *schedJob) cron.Job {
	return cron.FuncJob(func() { s.run(j, time.Time{}) })
}

// run runs j once unless a run of j is already going, in which case the
// skip is reported (robfig's SkipIfStillRunning would only log it) once
// per overlapping run. catchUpOf is the missed due time, or zero.
func (s *Scheduler) run(j *schedJob, catchUpOf time.Time) {
	// j.running is only tried and released under s.mu, so the skip count
	// belongs to exactly one run.
	s.mu.Lock()
	if !j.running.TryLock() {
		j.skipped++
		first := j.skipped == 1
		s.mu.Unlock()
		s.log.Warn("skipping a run: the previous one is still going", "job", j.Name)
		if first {
			s.publish(Report{Job: j.Name, Title: j.Title, Started: time.Now(), Skipped: true})
		}
		return
	}
	j.skipped = 0
	s.mu.Unlock()

	start := time.Now()
	s.recordRun(j.Name, schedLastRun{Started: start})
	ctx, cancel := context.WithTimeout(s.base, j.Timeout)
	rep := s.call(ctx, j)
	if err := ctx.Err(); err != nil && !rep.Failed() {
		// The job returned as if all went well after being cut short: say so.
		if errors.Is(err, context.DeadlineExceeded) {
			rep.Err = PublicErrorf("it was stopped after %s (maintenance.run_timeout), before it finished", reportDuration(j.Timeout))
		} else {
			rep.Err = PublicErrorf("it was stopped because Summoner was shutting down, before it finished")
		}
	}
	cancel()
	rep.Job, rep.Title, rep.CatchUpOf = j.Name, j.Title, catchUpOf
	if rep.Started.IsZero() {
		rep.Started = start
	}
	if rep.Duration == 0 {
		rep.Duration = time.Since(start)
	}
	s.recordRun(j.Name, schedLastRun{Started: start, Ended: time.Now(), Failed: rep.Failed()})

	s.mu.Lock()
	rep.SkippedMore = max(0, j.skipped-1)
	j.skipped = 0
	j.running.Unlock()
	s.mu.Unlock()
	s.log.Info("job ran", "job", j.Name, "failed", rep.Failed(), "took", rep.Duration)
	s.publish(rep)
}

// call runs the job's function, turning a panic into a failed report.
func (s *Scheduler) call(ctx context.Context, j *schedJob) (rep Report) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("job panicked", "job", j.Name, "panic", p, "stack", string(debug.Stack()))
			const msg = "it stopped on an internal error (a bug in Summoner; the logs have the details)"
			// The panic's value may name anything: the log has it.
			rep = Report{Err: &userError{msg: fmt.Sprintf("%s: %v", msg, p), pub: msg}}
		}
	}()
	return j.Run(ctx)
}

// publish sends a report with a deadline of its own: a report of a run cut
// short by Stop must still reach the outbox.
func (s *Scheduler) publish(rep Report) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), schedReportTimeout)
	defer cancel()
	if err := s.o.Reports.Publish(ctx, rep); err != nil {
		s.log.Error("posting a maintenance report", "job", rep.Job, "err", err)
	}
}

// Stop stops scheduling, lets running jobs finish for the grace period,
// then cancels them and waits until they return or ctx ends.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	cronDone := s.cron.Stop() // done once the runs cron started have returned
	all := make(chan struct{})
	go func() {
		<-cronDone.Done()
		s.wg.Wait()
		close(all)
	}()
	grace := time.NewTimer(s.o.StopGrace)
	defer grace.Stop()
	select {
	case <-all:
		s.cancel()
		return nil
	case <-grace.C:
		s.log.Warn("maintenance jobs still running after the grace period; cancelling them", "running", s.runningNames())
	case <-ctx.Done():
	}
	s.cancel()
	select {
	case <-all:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping maintenance jobs (%s still running): %w", strings.Join(s.runningNames(), ", "), ctx.Err())
	}
}

// Run starts the scheduler, waits for ctx to end, then stops it: the
// shape an errgroup wants.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.StopGrace+30*time.Second)
	defer cancel()
	return s.Stop(stopCtx)
}

func (s *Scheduler) runningNames() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, name := range s.order {
		j := s.jobs[name]
		if j.running.TryLock() {
			j.running.Unlock()
			continue
		}
		out = append(out, name)
	}
	return out
}

// List returns every job with its schedule and next run, in the order
// they were registered.
func (s *Scheduler) List() []ScheduleInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScheduleInfo, 0, len(s.order))
	for _, name := range s.order {
		out = append(out, s.infoLocked(s.jobs[name]))
	}
	return out
}

func (s *Scheduler) infoLocked(j *schedJob) ScheduleInfo {
	spec := s.specLocked(j)
	_, changed := s.state.Overrides[j.Name]
	info := ScheduleInfo{Name: j.Name, Title: j.Title, Spec: spec, Default: j.Spec, Changed: changed}
	if j.entry != 0 {
		info.Next = s.cron.Entry(j.entry).Next
	}
	if info.Next.IsZero() {
		if sched, err := schedParse(spec); err == nil && sched != nil {
			info.Next = sched.Next(time.Now().In(s.o.Location))
		}
	}
	last := s.state.Runs[j.Name]
	info.LastRun, info.LastFailed = last.Started, last.Failed
	if j.running.TryLock() {
		j.running.Unlock()
	} else {
		info.Running = true
	}
	return info
}

// Set changes a job's schedule, keeps the change across restarts and
// applies it at once. The error's text is written for the user.
func (s *Scheduler) Set(name, spec string) (ScheduleInfo, error) {
	return s.change(name, strings.TrimSpace(spec), true)
}

// Off stops a job from running by itself, across restarts.
func (s *Scheduler) Off(name string) (ScheduleInfo, error) {
	return s.change(name, ScheduleOff, true)
}

// Reset puts back the config's schedule of a job.
func (s *Scheduler) Reset(name string) (ScheduleInfo, error) {
	return s.change(name, "", false)
}

func (s *Scheduler) change(name, spec string, override bool) (ScheduleInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[name]
	if j == nil {
		return ScheduleInfo{}, fmt.Errorf("%w %q; the jobs are %s", ErrUnknownJob, name, strings.Join(s.order, ", "))
	}
	if !override {
		spec = j.Spec
	}
	sched, err := schedParse(spec)
	if err != nil {
		return ScheduleInfo{}, err
	}
	// Persist first: a change that would not survive a restart is refused
	// rather than applied for a while.
	next := schedState{Since: s.state.Since, Overrides: map[string]string{}, Runs: s.state.Runs}
	for k, v := range s.state.Overrides {
		next.Overrides[k] = v
	}
	if override {
		next.Overrides[name] = schedNormalize(spec)
	} else {
		delete(next.Overrides, name)
	}
	if err := s.saveLocked(next); err != nil {
		return ScheduleInfo{}, err
	}
	s.state = next
	if s.started && !s.stopped {
		// Reload by ID, as offen's command.go does.
		if j.entry != 0 {
			s.cron.Remove(j.entry)
			j.entry = 0
		}
		if sched != nil {
			j.entry = s.cron.Schedule(sched, s.cronJob(j))
		}
	}
	s.log.Info("schedule changed", "job", name, "spec", s.specLocked(j))
	return s.infoLocked(j), nil
}

// specLocked is the schedule in force for j.
func (s *Scheduler) specLocked(j *schedJob) string {
	if o, ok := s.state.Overrides[j.Name]; ok {
		if _, err := schedParse(o); err == nil {
			return o
		}
	}
	return schedNormalize(j.Spec)
}

func schedNormalize(spec string) string {
	spec = strings.TrimSpace(spec)
	if strings.EqualFold(spec, ScheduleOff) {
		return ScheduleOff
	}
	return spec
}

// schedParse reads a schedule; "off" gives a nil schedule.
func schedParse(spec string) (cron.Schedule, error) {
	spec = schedNormalize(spec)
	if spec == ScheduleOff {
		return nil, nil
	}
	if spec == "" {
		return nil, errors.New(`the schedule is empty; write one like "0 3 * * *" (minute hour day month weekday) or off`)
	}
	sched, err := schedParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf(`%q is not a schedule (%v); write minute hour day month weekday like "0 3 * * *", optionally with seconds first, or off`, spec, err)
	}
	return sched, nil
}

// recordRun keeps a job's last run, so a restart knows what it missed.
func (s *Scheduler) recordRun(name string, r schedLastRun) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setRunLocked(name, r)
}

func (s *Scheduler) setRunLocked(name string, r schedLastRun) {
	next := s.state
	next.Runs = map[string]schedLastRun{}
	for k, v := range s.state.Runs {
		next.Runs[k] = v
	}
	next.Runs[name] = r
	if err := s.saveLocked(next); err != nil {
		// The run goes on: missing this only risks one extra catch-up run.
		s.log.Error("recording a job's last run", "job", name, "err", err)
	}
	s.state = next
}

func (s *Scheduler) loadState() error {
	data, err := os.ReadFile(s.o.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		s.state = schedState{Since: time.Now().UTC().Truncate(time.Second)}
		return s.saveLocked(s.state)
	}
	if err != nil {
		return fmt.Errorf("reading the maintenance state %s: %w", s.o.StateFile, err)
	}
	if err := json.Unmarshal(data, &s.state); err != nil {
		return fmt.Errorf("reading the maintenance state %s: %w", s.o.StateFile, err)
	}
	if s.state.Since.IsZero() {
		s.state.Since = time.Now().UTC().Truncate(time.Second)
	}
	return nil
}

func (s *Scheduler) saveLocked(st schedState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the maintenance state: %w", err)
	}
	if err := atomicfile.Write(s.o.StateFile, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("saving the maintenance state %s: %w", s.o.StateFile, err)
	}
	return nil
}

// schedLogger gives robfig/cron's logging to slog.
type schedLogger struct{ log *slog.Logger }

func (l schedLogger) Info(msg string, kv ...any) { l.log.Debug("cron: "+msg, kv...) }

func (l schedLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("cron: "+msg, append(kv, "err", err)...)
}
