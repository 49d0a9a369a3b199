package maintenance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Docker is the part of the Engine API the dump tools run through; the
// real client satisfies it.
type Docker interface {
	ContainerExecCreate(ctx context.Context, container string, o container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, o container.ExecAttachOptions) (dtypes.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
}

var _ Docker = (*client.Client)(nil)

// execSpec is one command to run in a container. Secrets go in Env, which
// only the process's own environment holds, never in Cmd.
type execSpec struct {
	Cmd    []string
	Env    []string
	Stdin  io.Reader // nil: no input
	Stdout io.Writer // nil: kept with stderr, for the error message
}

// execResult is how a command ended.
type execResult struct {
	ExitCode int
	Output   string // the end of its stderr (and of stdout when not streamed)
}

// stderrKeep is how much of a tool's messages is kept: enough for its
// error, bounded however much it prints.
const stderrKeep = 8 << 10

// runExec runs a command in a container as the Engine API's exec does it:
// create, attach, demultiplex stdout and stderr, then inspect the exit
// code. It fails if the input could not be read to its end or the output
// could not be written: the command's exit code alone is not enough then.
func runExec(ctx context.Context, d Docker, containerID string, s execSpec) (execResult, error) {
	var res execResult
	if err := ctx.Err(); err != nil {
		return res, err
	}
	ex, err := d.ContainerExecCreate(ctx, containerID, container.ExecOptions{
		Cmd: s.Cmd, Env: s.Env, AttachStdout: true, AttachStderr: true, AttachStdin: s.Stdin != nil,
	})
	if err != nil {
		return res, fmt.Errorf("starting %s in %s: %w", s.Cmd[0], shortID(containerID), err)
	}
	att, err := d.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return res, fmt.Errorf("attaching to %s in %s: %w", s.Cmd[0], shortID(containerID), err)
	}
	st := pump(ctx, att, s.Stdin, s.Stdout)
	res.Output = st.output
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if st.outErr != nil {
		return res, fmt.Errorf("passing on the output of %s: %w", s.Cmd[0], st.outErr)
	}
	if res.ExitCode, err = exitCode(ctx, d, ex.ID); err != nil {
		return res, fmt.Errorf("checking how %s ended: %w", s.Cmd[0], err)
	}
	if res.ExitCode != 0 {
		// The tool's own failure is the cause; the broken streams follow from it.
		return res, nil
	}
	if st.stdinErr != nil {
		return res, fmt.Errorf("sending the input to %s: %w", s.Cmd[0], st.stdinErr)
	}
	if st.copyErr != nil {
		return res, fmt.Errorf("reading the output of %s: %w", s.Cmd[0], st.copyErr)
	}
	return res, nil
}

// streams is how the copies over a hijacked connection ended.
type streams struct {
	output   string // the end of stderr (and of stdout when not passed on)
	stdinErr error  // the input could not be sent to its end
	copyErr  error  // the output broke off
	outErr   error  // stdout's destination stopped taking it
}

// pump feeds stdin (nil: none) to a hijacked exec or container connection
// and demultiplexes its output: stdout to stdout (nil: kept with stderr),
// the end of stderr kept for messages. It closes the connection when it is
// done or when ctx ends, since the connection ignores ctx once made.
func pump(ctx context.Context, att dtypes.HijackedResponse, stdin io.Reader, stdout io.Writer) streams {
	var closeOnce sync.Once
	closeConn := func() { closeOnce.Do(att.Close) }
	defer closeConn()
	stop := context.AfterFunc(ctx, closeConn)
	defer stop()

	var (
		st streams
		wg sync.WaitGroup
	)
	if stdin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := io.Copy(att.Conn, stdin); err != nil {
				// No clean end of input for a stream that broke: the tool
				// must not take half a backup for a whole one.
				st.stdinErr = err
				closeConn()
				return
			}
			if err := att.CloseWrite(); err != nil {
				st.stdinErr = fmt.Errorf("ending the input: %w", err)
			}
		}()
	}
	tail := &tailBuffer{max: stderrKeep}
	var out *errWriter
	var w io.Writer = tail
	if stdout != nil {
		out = &errWriter{w: stdout}
		w = out
	}
	_, st.copyErr = stdcopy.StdCopy(w, tail, att.Reader)
	closeConn() // the tool is done with its output: unblock a stuck input copy
	wg.Wait()
	st.output = tail.String()
	if out != nil {
		st.outErr = out.err
	}
	return st
}

// errWriter remembers the error of its writer, to tell a destination that
// stopped taking the output from a broken stream from Docker.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// exitCode waits, briefly, for Docker to record that an exec ended: its
// output can close a moment before.
func exitCode(ctx context.Context, d Docker, execID string) (int, error) {
	wait := 5 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := d.ContainerExecInspect(ctx, execID)
		if err != nil {
			return 0, err
		}
		if !st.Running {
			return st.ExitCode, nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("its output ended but Docker still reports it running")
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// redact hides every secret in a tool's output.
func redact(text string, secrets ...string) string {
	for _, s := range secrets {
		if len(s) >= 4 {
			text = strings.ReplaceAll(text, s, "***")
		}
	}
	return text
}
