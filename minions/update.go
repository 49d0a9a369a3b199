package minions

import (
	"context"
	"errors"
	"time"
)

// Update moves a summoned minion to another version (the newest of its
// flavour if version is ""): it pulls, recreates the changed containers and
// waits for health; if the new version does not come up healthy it brings
// the previous one back and says so.
func (e *Engine) Update(ctx context.Context, name, version string, progress Progress) (*Result, error) {
	m, err := e.minion(name)
	if err != nil {
		return nil, err
	}
	if version == "" {
		vs, _, err := e.Versions(ctx, m.Name)
		if err != nil {
			return nil, err
		}
		if len(vs) == 0 {
			return nil, userErr(nil, "I found no published versions of %s to update to.", m.Name)
		}
		version = vs[0]
	}
	release, err := e.lock(m.Name, "update")
	if err != nil {
		return nil, err
	}
	defer release()
	started := time.Now()

	existing, err := e.containers(ctx, m.Name)
	if err != nil {
		return nil, err
	}
	if len(existing) == 0 {
		return nil, userErr(nil, "%s is not summoned; `summon %s %s` brings it up at that version.", m.Name, m.Name, version)
	}
	st, err := e.o.State.Load(m.Name)
	if err != nil {
		return nil, err
	}
	prevVersion := st.Version
	if prevVersion == "" {
		prevVersion = existing[m.Web.Service].Labels[LabelVersion]
	}
	prev, _, err := e.render(ctx, m, prevVersion, st, nil)
	if err != nil {
		return nil, err
	}
	next, merged, err := e.render(ctx, m, version, st, nil)
	if err != nil {
		return nil, err
	}
	res := &Result{Minion: m.Name, Version: next.Version, Previous: prev.Version, URL: next.URL, HostPort: next.HostPort}
	if upToDate(next, existing) {
		res.Unchanged = true
		return res, nil
	}
	if progress != nil {
		progress("Updating " + m.Name + " from " + prev.Version + " to " + next.Version + "…")
	}
	deployErr := e.deploy(ctx, next, existing, true, progress)
	if deployErr == nil {
		st.Version, st.Settings, st.Images = next.Version, merged, next.images()
		res.Took = time.Since(started)
		return res, e.o.State.Save(m.Name, st)
	}
	if ctx.Err() != nil {
		return nil, deployErr
	}

	// The new version failed: bring the previous one back. Its images are
	// still here, so nothing is pulled.
	if progress != nil {
		progress(m.Name + " " + next.Version + " failed; going back to " + prev.Version + "…")
	}
	current, err := e.containers(ctx, m.Name)
	if err != nil {
		return nil, errors.Join(deployErr, err)
	}
	if err := e.deploy(ctx, prev, current, false, progress); err != nil {
		return nil, userErr(errors.Join(deployErr, err), "Updating %s to %s failed (%s), and going back to %s failed too: %s",
			m.Name, next.Version, deployErr.Error(), prev.Version, err.Error())
	}
	res.Version, res.RolledBack = prev.Version, true
	res.Took = time.Since(started)
	return res, &UpdateError{Result: res, Cause: deployErr}
}

// UpdateError is an update that failed and was rolled back: the minion
// runs its previous version.
type UpdateError struct {
	Result *Result
	Cause  error
}

func (e *UpdateError) Error() string {
	return "Updating " + e.Result.Minion + " failed, so I rolled it back to " + e.Result.Previous +
		", which is running again.\nWhat went wrong: " + e.Cause.Error()
}

// UserMessage marks the error as fit for chat.
func (e *UpdateError) UserMessage() string { return e.Error() }

// Unwrap gives the cause.
func (e *UpdateError) Unwrap() error { return e.Cause }
