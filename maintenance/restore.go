package maintenance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// RestoreResult is a restore that worked.
type RestoreResult struct {
	Minion, BackupID string
	// SafetyID is the dump of the data just before the restore, stored as
	// a normal backup: `restore <minion> <SafetyID>` undoes the restore.
	SafetyID string
	Took     time.Duration
}

// Steps of a restore, as a RestoreError names the one that failed.
const (
	StepCheck   = "checking the backup"
	StepSafety  = "taking a safety dump of the current data"
	StepStop    = "stopping the app"
	StepRestore = "restoring the backup"
	StepStart   = "starting the app"
)

// RestoreError is a restore that failed, and how it ended.
type RestoreError struct {
	Minion, BackupID string
	Step             string // the step that failed, one of the Step constants
	Cause            error
	// Touched: the database or the app was changed. If not, everything is
	// as it was before the restore.
	Touched bool
	// SafetyID is the safety dump, "" if none was stored.
	SafetyID string
	// Recovered: the safety dump was put back and the app runs on it.
	Recovered  bool
	RecoverErr error
}

func (e *RestoreError) Error() string { return e.UserMessage() }

// Unwrap gives the cause.
func (e *RestoreError) Unwrap() error { return e.Cause }

// UserMessage says how the restore ended, for chat.
func (e *RestoreError) UserMessage() string {
	switch {
	case !e.Touched:
		return fmt.Sprintf("I did not restore %s from %s: %s failed, so I changed nothing.\nWhat went wrong: %s",
			e.Minion, e.BackupID, e.Step, minions.Explain(e.Cause))
	case e.Recovered:
		return fmt.Sprintf("Restoring %s from %s failed while %s, so I put back the data it had just before (safety dump %s); %s runs on it again.\nWhat went wrong: %s",
			e.Minion, e.BackupID, e.Step, e.SafetyID, e.Minion, minions.Explain(e.Cause))
	}
	return fmt.Sprintf("⚠️ Restoring %s from %s failed while %s, and putting back its data from just before failed too: %s may be down or hold partly restored data.\nWhat went wrong: %s\nWhy the safety dump could not be put back: %s\nThe safety dump %s is stored: `restore %s %s` tries again.",
		e.Minion, e.BackupID, e.Step, e.Minion, minions.Explain(e.Cause), minions.Explain(e.RecoverErr), e.SafetyID, e.Minion, e.SafetyID)
}

// Restore replaces a minion's database with a dump, all or nothing:
//
//  1. the backup is checked on every destination before anything is touched;
//  2. a safety dump of the current data is stored as a normal backup;
//  3. the app stops, the dump is restored, the app starts and must be healthy;
//  4. if step 3 fails, the safety dump is restored the same way.
//
// It holds the minion's lock throughout. Progress says each step; a
// failure is a *RestoreError saying how it ended.
func (s *Service) Restore(ctx context.Context, minion, backupID string, progress Progress) (*RestoreResult, error) {
	started := time.Now()
	db, release, err := s.reserve(ctx, minion, "restore")
	if err != nil {
		return nil, err
	}
	defer release()
	fail := &RestoreError{Minion: db.Minion, BackupID: backupID}

	say(progress, "Checking backup %s…", backupID)
	if err := s.check(ctx, db, backupID); err != nil {
		fail.Step, fail.Cause = StepCheck, err
		return nil, fail
	}

	say(progress, "Taking a safety dump of the current data of %s…", db.Minion)
	safety, err := s.dump(ctx, db, progress)
	if err != nil {
		fail.Step, fail.Cause = StepSafety, err
		return nil, fail
	}
	fail.SafetyID = safety.Manifest.ID
	say(progress, "Safety dump stored as %s.", fail.SafetyID)

	if step, err := s.apply(ctx, db, backupID, progress); err != nil {
		fail.Step, fail.Cause, fail.Touched = step, err, true
		s.log.Error("a restore failed; putting the safety dump back", "db", db, "backup", backupID, "step", step, "err", err)
		// Putting the data back must happen even when the command ran out
		// of time, but not forever.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.RecoverTimeout)
		defer cancel()
		say(progress, "That failed; putting back the safety dump %s…", fail.SafetyID)
		if _, err := s.apply(rctx, db, fail.SafetyID, progress); err != nil {
			s.log.Error("putting the safety dump back", "db", db, "safety", fail.SafetyID, "err", err)
			fail.RecoverErr = err
		} else {
			fail.Recovered = true
		}
		return nil, fail
	}
	say(progress, "Restored %s from %s.", db.Minion, backupID)
	return &RestoreResult{Minion: db.Minion, BackupID: backupID, SafetyID: fail.SafetyID, Took: time.Since(started)}, nil
}

// check verifies every copy of a backup and that it is a dump of this
// minion's kind of database. A damaged copy anywhere refuses the restore:
// the repository reads from the first destination that has one, and which
// that is may change between now and then.
func (s *Service) check(ctx context.Context, db *Database, id string) error {
	m, checks, err := s.o.Repo.Verify(ctx, id)
	if errors.Is(err, storage.ErrNotExist) {
		return &userError{msg: fmt.Sprintf("there is no backup %s; `backups %s` lists them", id, db.Minion), err: err}
	}
	if err != nil {
		return fmt.Errorf("checking backup %s: %w", id, err)
	}
	for _, c := range checks {
		if c.Err != nil {
			return &userError{msg: fmt.Sprintf("the copy of %s on %s is damaged or unreadable (%s)", id, c.Destination, minions.Explain(c.Err)), err: c.Err,
				pub: fmt.Sprintf("the copy of %s on %s is damaged or unreadable", id, c.Destination)}
		}
		if !c.Decrypted {
			return &userError{msg: fmt.Sprintf("%s is encrypted and no decryption key (backups.encryption.identity_file) is configured", id)}
		}
	}
	switch {
	case m == nil:
		return &userError{msg: fmt.Sprintf("no destination has a readable copy of %s", id)}
	case m.Minion != db.Minion:
		return &userError{msg: fmt.Sprintf("%s is a backup of %s, not of %s", id, m.Minion, db.Minion)}
	case m.Kind != storage.KindDump:
		return &userError{msg: fmt.Sprintf("%s is a %s backup, not a database dump", id, m.Kind)}
	case m.DBKind != db.Kind:
		return &userError{msg: fmt.Sprintf("%s is a %s dump and %s runs %s", id, m.DBKind, db.Minion, db.Kind)}
	}
	return nil
}

// apply stops the app, restores a backup into the database and starts
// the app again. It returns the step that failed.
func (s *Service) apply(ctx context.Context, db *Database, id string, progress Progress) (string, error) {
	d, err := s.dumper(db.Kind)
	if err != nil {
		return StepRestore, err
	}
	if err := s.o.Engine.StopApp(ctx, db.Minion, progress); err != nil {
		return StepStop, err
	}
	say(progress, "Restoring %s…", id)
	rc, _, err := s.o.Repo.Open(ctx, id)
	if err != nil {
		return StepRestore, fmt.Errorf("opening backup %s: %w", id, err)
	}
	err = d.Restore(ctx, db, rc)
	rc.Close()
	if err != nil {
		return StepRestore, err
	}
	if err := s.o.Engine.StartApp(ctx, db.Minion, progress); err != nil {
		return StepStart, err
	}
	return "", nil
}

// userError is a cause written for the user.
type userError struct {
	msg string
	err error
	// pub, when set, is msg without what only operators may read (a
	// path, a backend's message), for reports in channels.
	pub string
}

// Public is the message in words anyone may read (see PublicError).
func (e *userError) Public() string {
	if e.pub != "" {
		return e.pub
	}
	return e.msg
}

func (e *userError) Error() string       { return e.msg }
func (e *userError) UserMessage() string { return e.msg }
func (e *userError) Unwrap() error       { return e.err }
