package maintenance_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dtypes "github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/summoner-bot/summoner/maintenance"
)

// fakeRun is how a command behaves in fakeDocker.
type fakeRun struct {
	stdout   []byte
	stderr   string
	exitCode int
	// runningFor is how many inspects still say it runs after its output
	// ended, as Docker may for a moment.
	runningFor int
	// consume: the command reads its input to the end before it answers.
	consume bool
}

// fakeDocker runs every exec by asking answer what the command does. It
// records each exec's options and input.
type fakeDocker struct {
	answer func(cmd []string) fakeRun

	mu     sync.Mutex
	execs  []container.ExecOptions
	runs   []*fakeRun
	inputs []*bytes.Buffer
}

var _ maintenance.Docker = (*fakeDocker)(nil)

func (f *fakeDocker) ContainerExecCreate(_ context.Context, _ string, o container.ExecOptions) (container.ExecCreateResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.answer(o.Cmd)
	f.execs = append(f.execs, o)
	f.runs = append(f.runs, &r)
	f.inputs = append(f.inputs, &bytes.Buffer{})
	return container.ExecCreateResponse{ID: fmt.Sprint(len(f.execs) - 1)}, nil
}

func (f *fakeDocker) ContainerExecAttach(_ context.Context, id string, _ container.ExecAttachOptions) (dtypes.HijackedResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := runIndex(id)
	r, in := f.runs[i], f.inputs[i]
	stream := muxed(r.stdout, r.stderr)
	c := &fakeConn{input: in, done: make(chan struct{}), mu: &f.mu}
	var out io.Reader = stream
	if f.execs[i].AttachStdin && r.consume {
		out = io.MultiReader(waitReader{c.done}, stream)
	}
	return dtypes.HijackedResponse{Conn: c, Reader: bufio.NewReader(out)}, nil
}

func (f *fakeDocker) ContainerExecInspect(_ context.Context, id string) (container.ExecInspect, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs[runIndex(id)]
	if r.runningFor > 0 {
		r.runningFor--
		return container.ExecInspect{ExecID: id, Running: true}, nil
	}
	return container.ExecInspect{ExecID: id, ExitCode: r.exitCode}, nil
}

// commands lists every command line and environment that ran.
func (f *fakeDocker) commands() (argv, env []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.execs {
		argv = append(argv, strings.Join(e.Cmd, " "))
		env = append(env, e.Env...)
	}
	return argv, env
}

// input is what the nth command whose argv starts with name was sent.
func (f *fakeDocker) input(name string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, e := range f.execs {
		if slices.Contains(e.Cmd, name) {
			return f.inputs[i].String()
		}
	}
	return ""
}

// fakeConn takes an exec's input; its end (or the connection's) releases
// the output of a command that reads its input first.
type fakeConn struct {
	net.Conn
	mu     *sync.Mutex
	input  *bytes.Buffer
	done   chan struct{}
	once   sync.Once
	closed bool
}

func (c *fakeConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.input.Write(p)
}

func (c *fakeConn) CloseWrite() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *fakeConn) SetDeadline(time.Time) error { return nil }

type waitReader struct{ done chan struct{} }

func (w waitReader) Read([]byte) (int, error) {
	<-w.done
	return 0, io.EOF
}

// runIndex reads back the index that the fakes put in an exec or
// container ID; any other ID is a bug in the test.
func runIndex(id string) int {
	i, err := strconv.Atoi(id)
	if err != nil {
		panic(fmt.Sprintf("fake docker: ID %q is none of ours", id))
	}
	return i
}

// muxed is what the Docker API streams for an attach: stdout and stderr
// framed by stdcopy.
func muxed(stdout []byte, stderr string) *bytes.Buffer {
	var stream bytes.Buffer
	if len(stdout) > 0 {
		// Writes to a bytes.Buffer cannot fail.
		_, _ = stdcopy.NewStdWriter(&stream, stdcopy.Stdout).Write(stdout)
	}
	if stderr != "" {
		_, _ = stdcopy.NewStdWriter(&stream, stdcopy.Stderr).Write([]byte(stderr))
	}
	return &stream
}
