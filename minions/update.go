package minions

import (
	"context"
	"errors"
	"time"

	"github.com/docker/docker/api/types/container"
)

// UpdateTarget is where an update would take a minion.
type UpdateTarget struct {
	Minion   string
	From, To string // To == From: there is nothing newer to move to
	// NewMajor: To is another major version than From. Apps often migrate
	// their data then, with no way back but a restore, so the user is
	// asked first.
	NewMajor bool
	// Newest is the newest published version of the flavour, whatever its
	// major version; set only when no version was asked for, so a reply
	// can mention a major upgrade that update did not take.
	Newest string
}

// UpdateTarget resolves the version an update of a summoned minion goes
// to: version if given, else the newest release of the same major version
// and flavour as the one running.
func (e *Engine) UpdateTarget(ctx context.Context, name, version string) (*UpdateTarget, error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	existing, err := e.containers(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil, err
	}
	return e.updateTarget(ctx, m, st, existing, version)
}

func (e *Engine) updateTarget(ctx context.Context, m *Minion, st *State, existing map[string]container.Summary, version string) (*UpdateTarget, error) {
	if len(existing) == 0 {
		return nil, userErr(nil, "%s is not summoned; `summon %s` brings it up.", m.Name, m.Name)
	}
	from := st.Version
	if from == "" {
		from = existing[m.Web.Service].Labels[LabelVersion]
	}
	if from == "" {
		from = m.Version
	}
	t := &UpdateTarget{Minion: m.Name, From: from, To: version}
	if version == "" {
		vs, err := e.publishedVersions(ctx, m, st, from)
		if err != nil {
			return nil, err
		}
		if len(vs) == 0 {
			return nil, userErr(nil, "I found no published versions of %s to update to.", m.Name)
		}
		t.Newest = vs[0]
		t.To = newestSameMajor(vs, from)
	}
	t.NewMajor = majorChange(t.From, t.To)
	return t, nil
}

// Update moves a summoned minion to another version (without one, the
// newest of the same major version and flavour; see UpdateTarget): it
// pulls, replaces the changed containers and waits for them. The change
// is all or nothing: if the new version does not come up, what ran before
// runs again and the error is an *UpdateError (or, if even that failed, a
// *ChangeError saying the minion is down).
func (e *Engine) Update(ctx context.Context, name, version string, progress Progress) (*Result, error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	var res *Result
	err = e.change(ctx, m, "update", func() (err error) {
		res, err = e.update(ctx, m, version, progress)
		return err
	})
	if res != nil {
		res.Address = e.address(ctx, m, res.Address)
		res.URL = res.Address.String()
	}
	return res, err
}

// update is Update for a caller that holds the minion's lock.
func (e *Engine) update(ctx context.Context, m *Minion, version string, progress Progress) (*Result, error) {
	started := time.Now()

	existing, err := e.recoverLeftovers(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil, err
	}
	target, err := e.updateTarget(ctx, m, st, existing, version)
	if err != nil {
		return nil, err
	}
	next, merged, err := e.render(ctx, m, target.To, st, nil)
	if err != nil {
		return nil, err
	}
	res := &Result{Minion: m.Name, Version: next.Version, Previous: target.From, Address: next.address()}
	if upToDate(next, existing) {
		res.Unchanged = true
		return res, nil
	}
	if progress != nil {
		progress("Updating " + m.Name + " from " + target.From + " to " + next.Version + "…")
	}
	err = e.deploy(ctx, next, existing, true, progress)
	res.Took = time.Since(started)
	if err == nil {
		st.Version, st.Settings, st.Images = next.Version, merged, next.images()
		return res, e.o.State.Save(m.Name, st)
	}
	var ce *ChangeError
	if errors.As(err, &ce) && ce.Restored {
		res.Version, res.RolledBack = target.From, true
		return res, &UpdateError{Result: res, Cause: ce.Cause, Stopped: ce.WasStopped}
	}
	return nil, err
}

// UpdateError is an update that failed and was rolled back: the minion
// runs its previous version.
type UpdateError struct {
	Result  *Result
	Cause   error
	Stopped bool // the minion was stopped before, and is again
}

func (e *UpdateError) Error() string {
	again := ", which is running again."
	if e.Stopped {
		again = ", which is stopped, as it was before."
	}
	return "Updating " + e.Result.Minion + " failed, so I rolled it back to " + e.Result.Previous +
		again + "\nWhat went wrong: " + explainCause(e.Cause)
}

// UserMessage marks the error as fit for chat.
func (e *UpdateError) UserMessage() string { return e.Error() }

// Unwrap gives the cause.
func (e *UpdateError) Unwrap() error { return e.Cause }
