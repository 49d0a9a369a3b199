package maintenance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/summoner-bot/summoner/minions"
)

// Database is a running database server and its credentials; its String
// and LogValue leave the password out.
type Database = minions.RunningDatabase

// Dumper dumps and restores one kind of database, running the kind's own
// tools inside its container.
type Dumper interface {
	// Dump writes a complete dump to w. It returns nil only when the tool
	// exited 0 and its output is whole (not empty, and ending as the
	// format ends); any other outcome is a *DumpError, and what was
	// written must be thrown away.
	Dump(ctx context.Context, db *Database, w io.Writer) error
	// Restore replaces the database's content with the dump read from r.
	// It fails, with a *DumpError, if r fails before its end.
	Restore(ctx context.Context, db *Database, r io.Reader) error
}

// DumperFor returns the dumper of a database kind.
func DumperFor(d Docker, kind string) (Dumper, error) {
	switch kind {
	case "postgres":
		return &Postgres{Docker: d}, nil
	case "mysql", "mariadb":
		return &MySQL{Docker: d}, nil
	case "mongodb":
		return &Mongo{Docker: d}, nil
	}
	return nil, fmt.Errorf("no dumper for database kind %q", kind)
}

// DumpError is a dump or a restore that failed, with the end of the tool's
// messages (secrets hidden).
type DumpError struct {
	Op     string // "dump" or "restore"
	DB     string // "postgres database appdb of testmin"
	Tool   string
	Reason string // what was wrong, in words
	Output string // the end of the tool's messages
	Err    error  // the cause, when it was not the tool's output
}

func (e *DumpError) Error() string {
	msg := fmt.Sprintf("the %s of the %s failed: %s", e.Op, e.DB, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if out := lastLines(e.Output, 6); out != "" {
		msg += "\n" + e.Tool + " said:\n" + out
	}
	return msg
}

// UserMessage marks the error as written for the user.
func (e *DumpError) UserMessage() string { return e.Error() }

func (e *DumpError) Unwrap() error { return e.Err }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

// format says what a whole dump of a kind looks like.
type format struct {
	name string
	head []byte                // the stream starts with it
	tail func(end []byte) bool // the stream's last bytes end as the format ends; nil: any
	want string                // the end marker, in words
}

// checkWriter passes a dump on and keeps what is needed to judge it at
// the end: its size, first bytes and last bytes.
type checkWriter struct {
	w    io.Writer
	n    int64
	head []byte
	tail tailBuffer
}

func newCheckWriter(w io.Writer) *checkWriter {
	return &checkWriter{w: w, tail: tailBuffer{max: 512}}
}

func (c *checkWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if room := 16 - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(room, n)]...)
	}
	c.tail.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// problem says what is wrong with a finished dump, or "" if nothing.
func (c *checkWriter) problem(f format) string {
	switch {
	case c.n == 0:
		return "it produced no output"
	case !bytes.HasPrefix(c.head, f.head):
		return fmt.Sprintf("its output does not start as a %s does", f.name)
	case f.tail != nil && !f.tail(c.tail.b):
		return fmt.Sprintf("its output was cut short: it does not end with %s", f.want)
	}
	return ""
}

// runTool runs a dump or restore tool and turns every way it can fail
// into a *DumpError.
func runTool(ctx context.Context, d Docker, db *Database, op, tool string, s execSpec) (execResult, error) {
	res, err := runExec(ctx, d, db.ContainerID, s)
	secrets := append([]string{db.Password}, db.Secrets...)
	res.Output = redact(res.Output, secrets...)
	fail := func(reason string, cause error) error {
		return &DumpError{Op: op, DB: db.String(), Tool: tool, Reason: reason, Output: res.Output, Err: cause}
	}
	switch {
	case err != nil && ctx.Err() != nil:
		return res, fail("it was stopped before it finished", err)
	case err != nil:
		return res, fail("it did not run to its end", redactErr(err, secrets))
	case res.ExitCode == 137:
		return res, fail(tool+" was killed (exit code 137: the container stopped, or ran out of memory)", nil)
	case res.ExitCode != 0:
		return res, fail(fmt.Sprintf("%s exited with code %d", tool, res.ExitCode), nil)
	}
	return res, nil
}

// redactErr hides secrets in an error's text, keeping it for errors.Is.
func redactErr(err error, secrets []string) error {
	if msg := redact(err.Error(), secrets...); msg != err.Error() {
		return &redactedError{msg: msg, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// dumpWith runs a dump tool, streaming its output to w, and checks that
// the output is whole.
func dumpWith(ctx context.Context, d Docker, db *Database, tool string, f format, s execSpec, w io.Writer) error {
	cw := newCheckWriter(w)
	s.Stdout = cw
	res, err := runTool(ctx, d, db, "dump", tool, s)
	if err != nil {
		return err
	}
	if p := cw.problem(f); p != "" {
		return &DumpError{Op: "dump", DB: db.String(), Tool: tool, Reason: p, Output: res.Output}
	}
	return nil
}
