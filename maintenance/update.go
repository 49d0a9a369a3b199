package maintenance

import (
	"context"
	"errors"
	"fmt"

	"github.com/summoner-bot/summoner/minions"
)

// Updater is the part of minions.Engine a safe update drives.
type Updater interface {
	Update(ctx context.Context, name, version string, progress minions.Progress) (*minions.Result, error)
}

// UpdateResult is what a safe update did.
type UpdateResult struct {
	*minions.Result
	// Dump is the dump taken before the update ("" for a minion without a
	// database).
	Dump string
	// DataRestored: the update was rolled back and the dump was put back,
	// since the new version may have migrated the data before it failed.
	DataRestored bool
}

// SafeUpdateError is an update that failed; the message says what runs now
// and on which data.
type SafeUpdateError struct {
	Msg   string
	Cause error
}

func (e *SafeUpdateError) Error() string       { return e.Msg }
func (e *SafeUpdateError) UserMessage() string { return e.Msg }
func (e *SafeUpdateError) Unwrap() error       { return e.Cause }

// Update dumps the minion's database first, then updates it. When the new
// version fails and the engine puts the old containers back, the dump is
// restored too: the old version must not run on data the new one migrated.
// A minion without a database is updated as is. If the dump fails, nothing
// is updated.
func (s *Service) Update(ctx context.Context, u Updater, minion, version string, hasDB bool, progress Progress) (*UpdateResult, error) {
	out := &UpdateResult{}
	if hasDB {
		say(progress, "Dumping %s before the update…", minion)
		d, err := s.Dump(ctx, minion, progress)
		if err != nil {
			return nil, &SafeUpdateError{Cause: err, Msg: fmt.Sprintf("I did not update %s: the dump I take first failed, and updating without one could lose data. %s",
				minion, userText(err))}
		}
		out.Dump = d.Manifest.ID
	}
	res, err := u.Update(ctx, minion, version, progress)
	out.Result = res
	var ue *minions.UpdateError
	if err == nil || !errors.As(err, &ue) || out.Dump == "" {
		return out, err
	}
	// Rolled back: the old image runs, perhaps on migrated data.
	say(progress, "Putting back the data of %s from %s…", minion, out.Dump)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.RecoverTimeout)
	defer cancel()
	if _, rerr := s.Restore(rctx, minion, out.Dump, progress); rerr != nil {
		return out, &SafeUpdateError{Cause: errors.Join(err, rerr), Msg: fmt.Sprintf("%s\n⚠️ Putting back the data from the dump taken before the update (%s) failed too: %s",
			ue.UserMessage(), out.Dump, userText(rerr))}
	}
	out.DataRestored = true
	return out, &SafeUpdateError{Cause: err, Msg: fmt.Sprintf("%s\nIts data were put back from the dump taken just before the update (%s), in case the new version had already changed them.",
		ue.UserMessage(), out.Dump)}
}

// userText is an error's message for users, or a pointer to the log.
func userText(err error) string {
	var um interface{ UserMessage() string }
	if errors.As(err, &um) {
		return um.UserMessage()
	}
	return "The details are in the bot's log."
}
