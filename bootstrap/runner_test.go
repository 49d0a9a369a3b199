package bootstrap

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeStep is done after its Apply ran (or from the start).
type fakeStep struct {
	name      string
	done      bool
	doneErr   error
	applyErr  error
	stuck     bool // Apply succeeds but the step stays not done
	block     bool // Apply waits for its context
	plan      string
	applied   int
	doneCalls int
}

func (s *fakeStep) Name() string  { return s.name }
func (s *fakeStep) Title() string { return "Do " + s.name }
func (s *fakeStep) Done(ctx context.Context) (bool, string, error) {
	s.doneCalls++
	if s.doneErr != nil {
		return false, "", s.doneErr
	}
	if s.done {
		return true, s.name + " is there", nil
	}
	return false, "", nil
}

func (s *fakeStep) Apply(ctx context.Context, say func(string, ...any)) error {
	s.applied++
	say("working on %s", s.name)
	say("two\nlines")
	if s.block {
		<-ctx.Done()
		return ctx.Err()
	}
	if s.applyErr != nil {
		return s.applyErr
	}
	if !s.stuck {
		s.done = true
	}
	return nil
}

type plannedStep struct{ *fakeStep }

func (s plannedStep) Plan(ctx context.Context) string { return s.plan }

// ticking is a clock that advances by step at every reading.
func ticking(step time.Duration) func() time.Time {
	t := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time { t = t.Add(step); return t }
}

func run(t *testing.T, r *Runner) (out, errOut string, err error) {
	t.Helper()
	var o, e bytes.Buffer
	r.Out, r.Err = &o, &e
	if r.now == nil {
		r.now = ticking(500 * time.Millisecond)
	}
	err = r.Run(context.Background())
	return o.String(), e.String(), err
}

func TestRunnerAppliesWhatIsNotDone(t *testing.T) {
	a := &fakeStep{name: "a", done: true}
	b := &fakeStep{name: "b"}
	out, errOut, err := run(t, &Runner{Steps: []Step{a, b}})
	if err != nil || errOut != "" {
		t.Fatalf("err %v, stderr %q", err, errOut)
	}
	if a.applied != 0 || b.applied != 1 || b.doneCalls != 2 {
		t.Errorf("applied a=%d b=%d, b.Done called %d times (want 0, 1, 2)", a.applied, b.applied, b.doneCalls)
	}
	want := "[1/2] a: already done (a is there), 0.5s\n" +
		"[2/2] b: Do b\n" +
		"      working on b\n" +
		"      two\n" +
		"      lines\n" +
		"[2/2] b: done in 0.5s (b is there)\n" +
		"bootstrap finished in 2.5s: 1 step done now, 1 step already done\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}

	// A second run: already done, every step.
	out, _, err = run(t, &Runner{Steps: []Step{a, b}})
	if err != nil || strings.Count(out, "already done (") != 2 || b.applied != 1 {
		t.Errorf("second run: %v\n%s", err, out)
	}
}

func TestRunnerFailureStopsWithStepWhyAndNext(t *testing.T) {
	a := &fakeStep{name: "a", applyErr: Failf("start the engine and run again", "the socket\ndoes not answer")}
	b := &fakeStep{name: "b"}
	out, errOut, err := run(t, &Runner{Steps: []Step{a, b}})
	var f *Failure
	if !errors.As(err, &f) || f.Step != "a" {
		t.Fatalf("err %v, want a *Failure of step a", err)
	}
	if want := "✗ a: the socket does not answer\n  next: start the engine and run again\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	if b.doneCalls != 0 || strings.Contains(out, "b") && strings.Contains(out, "[2/2]") {
		t.Errorf("the run went on after the failure:\n%s", out)
	}
}

func TestRunnerFailureKinds(t *testing.T) {
	tests := []struct {
		name string
		step *fakeStep
		ctx  func() (context.Context, context.CancelFunc)
		want []string
	}{
		{"done fails", &fakeStep{name: "os", doneErr: Failf("use Debian", "this is Fedora")}, nil, []string{"✗ os: this is Fedora\n", "  next: use Debian\n"}},
		{"plain error", &fakeStep{name: "x", applyErr: errors.New("disk full")}, nil, []string{"✗ x: disk full\n", "  next: see the lines above"}},
		{"still not done", &fakeStep{name: "x", stuck: true}, nil, []string{"✗ x: still not done after applying it\n", "  next: run `summoner bootstrap` again"}},
		{"interrupted", &fakeStep{name: "x", block: true}, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(20*time.Millisecond, cancel)
			return ctx, cancel
		}, []string{"✗ x: interrupted\n", "resumes at this step"}},
		{"deadline", &fakeStep{name: "x", block: true}, nil, []string{"✗ x: did not finish within 50ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o, e bytes.Buffer
			r := &Runner{Steps: []Step{tt.step}, Out: &o, Err: &e, StepTimeout: 50 * time.Millisecond}
			ctx, cancel := context.Background(), func() {}
			if tt.ctx != nil {
				ctx, cancel = tt.ctx()
			}
			defer cancel()
			if err := r.Run(ctx); err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(e.String(), w) {
					t.Errorf("stderr %q lacks %q", e.String(), w)
				}
			}
			if n := strings.Count(e.String(), "\n"); n > 2 {
				t.Errorf("%d lines on stderr, want one or two:\n%s", n, e.String())
			}
		})
	}
}

func TestRunnerDryRunChangesNothing(t *testing.T) {
	a := &fakeStep{name: "a", done: true}
	b := &fakeStep{name: "b"}
	c := plannedStep{&fakeStep{name: "c", plan: "Install c and start it"}}
	out, _, err := run(t, &Runner{Steps: []Step{a, b, c}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if b.applied+c.applied != 0 {
		t.Error("a dry run applied a step")
	}
	want := "[1/3] a: already done (a is there)\n" +
		"[2/3] b: would do b\n" +
		"[3/3] c: would install c and start it\n" +
		"dry run: 2 of 3 steps would change something; nothing was changed (3.5s)\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
}

func TestElapsed(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Millisecond:                 "0.0s",
		1500 * time.Millisecond:               "1.5s",
		2*time.Minute + 3400*time.Millisecond: "2m3s",
		59*time.Second + 940*time.Millisecond: "59.9s",
		61*time.Minute + 500*time.Millisecond: "1h1m1s",
	} {
		if got := elapsed(d); got != want {
			t.Errorf("elapsed(%v) = %q, want %q", d, got, want)
		}
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
