package maintenance

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// PublicError says what went wrong in words anyone in a channel may read,
// the wording members get from the commands: destinations by their
// configured names, steps and checks, never a host, a user, a path, a
// tool's output or a backend's own message. Reports and alerts use it in
// every channel, the ops channel included; the log keeps the detail, and
// operators read it with `backups` and `verify`.
func PublicError(err error) string {
	var (
		room *NoRoomError
		ve   *VerifyError
		ce   *ColdError
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &room):
		return room.Public()
	case errors.As(err, &ve):
		id := ve.BackupID
		if id == "" {
			id = "its newest backup"
		}
		return fmt.Sprintf("the test restore from %s FAILED at %s: %s", id, ve.Check, publicCause(ve.Cause))
	case errors.As(err, &ce):
		if ce.Cause == nil {
			return fmt.Sprintf("the cold backup %s is stored, but starting %s again failed (%s); `start %s` tries again",
				ce.BackupID, ce.Minion, publicCause(ce.StartErr), ce.Minion)
		}
		msg := fmt.Sprintf("it failed while %s, so nothing was stored: %s", ce.Step, publicCause(ce.Cause))
		if ce.StartErr != nil {
			msg += fmt.Sprintf("; starting %s again failed too, so it may be down (%s); `start %s` tries again", ce.Minion, publicCause(ce.StartErr), ce.Minion)
		}
		return msg
	}
	return publicCause(err)
}

// PublicErrorf is an error in Summoner's own words, which any channel may
// read as it is.
func PublicErrorf(format string, args ...any) error {
	return &userError{msg: fmt.Sprintf(format, args...)}
}

// publicCause is one cause in public words; anything not known to be
// safe is replaced by a pointer to where the detail is.
func publicCause(err error) string {
	if ds := destinationErrors(err); len(ds) > 0 {
		parts := make([]string, len(ds))
		for i, de := range ds {
			parts[i] = de.Public()
		}
		return strings.Join(parts, "; ") + " (`backups` shows the destinations' state; the log has the cause)"
	}
	var (
		pub interface{ Public() string }
		de  *DumpError
		me  *minions.Error
		te  *minions.TimeoutError
	)
	switch {
	case errors.As(err, &pub):
		return pub.Public()
	case errors.Is(err, storage.ErrEmpty):
		return storage.ErrEmpty.Error()
	case errors.As(err, &de):
		// Reason is Summoner's own words; the tool's output stays in the log.
		return fmt.Sprintf("the %s by %s failed: %s (the log has %s's messages)", de.Op, de.Tool, de.Reason, de.Tool)
	case errors.As(err, &te):
		return te.UserMessage()
	case errors.As(err, &me):
		return me.UserMessage()
	case errors.Is(err, context.DeadlineExceeded):
		return "it took longer than it may run"
	case errors.Is(err, context.Canceled):
		return "it was stopped before it finished"
	}
	return "the details are in Summoner's log (they may name hosts, users or paths)"
}

// destinationErrors finds every destination's failure in an error tree
// (a store that failed everywhere joins one per destination).
func destinationErrors(err error) []*storage.DestinationError {
	var out []*storage.DestinationError
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *storage.DestinationError:
			out = append(out, e)
		case interface{ Unwrap() []error }:
			for _, c := range e.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}
