// Package bootstrap turns a bare Debian or Ubuntu server into Mattermost
// plus a running Summoner, as a list of idempotent steps.
//
// Each step first says whether it is already done (Done), and only if not
// does it act (Apply), after which it must be done. A second run therefore
// reports "already done" for every step, and a run interrupted in the
// middle resumes at the first step that is not done.
//
// Steps depend on narrow interfaces (a command runner, a pinger, paths that
// tests point into a temporary folder), so every failure path is tested
// with fakes; cmd/bot wires the real ones.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Step is one idempotent thing bootstrap does.
type Step interface {
	// Name is short and lowercase: "os", "docker", "dirs", "gateway",
	// "mattermost", "accounts", "config", "bot", "backups".
	Name() string
	// Title is for humans: "Install and start the Docker engine".
	Title() string
	// Done says whether the step is already done, and what is there
	// ("Docker 20.10.24 answers on /var/run/docker.sock"). Done is also
	// called by --dry-run for every step, before any earlier step has been
	// applied: a missing prerequisite (no engine yet) is "not done", not
	// an error. An error is a failure the user must act on (a *StepError).
	Done(ctx context.Context) (done bool, what string, err error)
	// Apply does it; say reports progress lines as it goes.
	Apply(ctx context.Context, say func(format string, args ...any)) error
}

// Planner is what a step would do, for --dry-run: steps may implement it
// to say more than their Title. Plan is called only when Done said "not
// done".
type Planner interface {
	Plan(ctx context.Context) string
}

// Timeouter lets a step ask for a deadline other than the runner's
// default (installing packages takes longer than creating folders).
type Timeouter interface {
	Timeout() time.Duration
}

// StepError is a failure a user can act on: the runner prints
//
//	✗ docker: the Docker socket /var/run/docker.sock does not answer: connection refused
//	  next: start the engine (systemctl start docker, or dockerd &) and run `summoner bootstrap` again
//
// and the command exits non-zero. Why is one line; Next says what to do.
type StepError struct {
	Why  string
	Next string
}

func (e *StepError) Error() string { return e.Why }

// Failf returns a StepError whose Why is formatted from format and args.
func Failf(next, format string, args ...any) *StepError {
	return &StepError{Why: fmt.Sprintf(format, args...), Next: next}
}

// Failure is what Run returns when a step fails. Run has already printed
// the step, why and next: the caller only exits non-zero.
type Failure struct {
	Step string
	Err  error
}

func (f *Failure) Error() string { return f.Step + ": " + f.Err.Error() }

func (f *Failure) Unwrap() error { return f.Err }

// DefaultStepTimeout is the deadline of a step that does not implement
// Timeouter.
const DefaultStepTimeout = 10 * time.Minute

// Runner runs steps in order.
type Runner struct {
	Steps []Step
	// Out gets the progress; Err the failure lines (Out when nil).
	Out    io.Writer
	Err    io.Writer
	DryRun bool
	// StepTimeout is the deadline of each step (Done, Apply and the check
	// after it); 0 means DefaultStepTimeout. A Timeouter step sets its own.
	StepTimeout time.Duration

	now func() time.Time // tests make time pass
	mu  sync.Mutex       // say may be called from a step's goroutines
}

const indent = "      "

// Run runs each step in order: Done first; if done, it prints
// "[2/9] docker: already done (what)"; else Apply, with its progress lines
// indented, then Done again (a step that still is not done after Apply is
// a failure). With DryRun it prints the plan of every step and changes
// nothing. The first failure stops the run: Run prints the step, why and
// next, and returns a *Failure.
func (r *Runner) Run(ctx context.Context) error {
	now := r.now
	if now == nil {
		now = time.Now
	}
	start := now()
	n := len(r.Steps)
	var nApplied, nAlready int
	for i, s := range r.Steps {
		tag := fmt.Sprintf("[%d/%d] %s", i+1, n, s.Name())
		t0 := now()
		out, what, err := r.step(ctx, s, tag)
		if err != nil {
			r.fail(ctx, s, err, r.timeout(s))
			return &Failure{Step: s.Name(), Err: err}
		}
		took := elapsed(now().Sub(t0))
		switch out {
		case alreadyDone:
			nAlready++
			if r.DryRun {
				r.printf("%s: already done%s\n", tag, paren(what))
			} else {
				r.printf("%s: already done%s, %s\n", tag, paren(what), took)
			}
		case applied:
			nApplied++
			r.printf("%s: done in %s%s\n", tag, took, paren(what))
		}
	}
	total := elapsed(now().Sub(start))
	if r.DryRun {
		r.printf("dry run: %d of %d steps would change something; nothing was changed (%s)\n", n-nAlready, n, total)
		return nil
	}
	r.printf("bootstrap finished in %s: %s done now, %s already done\n", total, plural(nApplied, "step"), plural(nAlready, "step"))
	return nil
}

type outcome int

const (
	alreadyDone outcome = iota
	applied             // Apply ran and the step is done now
	planned             // dry run: the plan was printed
)

// step runs one step under its deadline.
func (r *Runner) step(ctx context.Context, s Step, tag string) (outcome, string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout(s))
	defer cancel()
	done, what, err := s.Done(ctx)
	if err != nil || done {
		return alreadyDone, what, err
	}
	if r.DryRun {
		plan := s.Title()
		if p, ok := s.(Planner); ok {
			if more := p.Plan(ctx); more != "" {
				plan = more
			}
		}
		r.printf("%s: would %s\n", tag, lowerFirst(plan))
		return planned, "", nil
	}
	r.printf("%s: %s\n", tag, s.Title())
	say := func(format string, args ...any) {
		line := strings.TrimRight(fmt.Sprintf(format, args...), "\n")
		line = strings.ReplaceAll(line, "\n", "\n"+indent)
		r.printf("%s%s\n", indent, line)
	}
	if err := s.Apply(ctx, say); err != nil {
		return applied, "", err
	}
	done, what, err = s.Done(ctx)
	if err != nil {
		return applied, "", err
	}
	if !done {
		return applied, "", Failf("run `summoner bootstrap` again; if this step fails the same way, report it with the lines above",
			"still not done after applying it%s", paren(what))
	}
	return applied, what, nil
}

func (r *Runner) timeout(s Step) time.Duration {
	if t, ok := s.(Timeouter); ok && t.Timeout() > 0 {
		return t.Timeout()
	}
	if r.StepTimeout > 0 {
		return r.StepTimeout
	}
	return DefaultStepTimeout
}

// fail prints why a step failed and what to do next.
func (r *Runner) fail(ctx context.Context, s Step, err error, timeout time.Duration) {
	why, next := err.Error(), ""
	var se *StepError
	switch {
	case errors.As(err, &se):
		why, next = se.Why, se.Next
	case ctx.Err() != nil:
		why, next = "interrupted", "run `summoner bootstrap` again: it resumes at this step"
	case errors.Is(err, context.DeadlineExceeded):
		why = fmt.Sprintf("did not finish within %s: %v", timeout, err)
		next = "see the lines above, then run `summoner bootstrap` again"
	default:
		next = "see the lines above, fix the cause, and run `summoner bootstrap` again"
	}
	w := r.Err
	if w == nil {
		w = r.Out
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "✗ %s: %s\n", s.Name(), oneLine(why))
	if next != "" {
		fmt.Fprintf(w, "  next: %s\n", oneLine(next))
	}
}

func (r *Runner) printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.Out, format, args...)
}

// elapsed is a duration for humans: "0.3s", "12.0s", "2m3s".
func elapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

func paren(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
