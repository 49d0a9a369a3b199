package minions

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// Error is a failure the user can act on; its message is written for them
// (the commands package shows it verbatim). Err keeps the cause for logs.
type Error struct {
	Msg string
	Err error
}

func (e *Error) Error() string { return e.Msg }

// Unwrap gives the cause.
func (e *Error) Unwrap() error { return e.Err }

// UserMessage marks the error as fit for chat.
func (e *Error) UserMessage() string { return e.Msg }

func userErr(err error, format string, args ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, args...), Err: err}
}

// ErrBusy is returned when work on the same minion is already running.
var ErrBusy = errors.New("already in progress")

// explainDocker turns Docker client errors into messages a user can act on;
// other errors pass through unchanged.
func explainDocker(err error, doing string) error {
	var (
		ue *Error
		te *TimeoutError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ue):
		return err
	case errors.As(err, &te):
		return userErr(err, "%s", timeoutMessage(te.After, doing))
	case client.IsErrConnectionFailed(err) || strings.Contains(err.Error(), "connect: connection refused") && strings.Contains(err.Error(), "docker"):
		return userErr(err, "I cannot reach Docker while %s: is the Docker daemon running? (on the server: `systemctl start docker`)", doing)
	case strings.Contains(err.Error(), "port is already allocated") || strings.Contains(err.Error(), "address already in use"):
		return userErr(err, "%s failed: a port this minion publishes is already taken on this server (%s)", doing, portFrom(err.Error()))
	case cerrdefs.IsNotFound(err) && strings.Contains(doing, "pulling"):
		return userErr(err, "%s failed: the registry has no such image or version", doing)
	}
	return fmt.Errorf("%s: %w", doing, err)
}

// portFrom finds the host port in Docker's "Bind for 0.0.0.0:8081 failed:
// port is already allocated" or "listen tcp4 0.0.0.0:8081: bind: address
// already in use".
func portFrom(msg string) string {
	if m := portRE.FindStringSubmatch(msg); m != nil {
		return "port " + m[1]
	}
	return "see the bot's log for which"
}

var portRE = regexp.MustCompile(`(?:Bind for|listen tcp[46]?) \S*?:(\d+)`)
