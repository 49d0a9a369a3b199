package minions

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// Claimed before public: an app whose first account becomes its admin
// (Mattermost) must not be reachable from the internet before Summoner has
// made that account. Such a minion is summoned "withheld": Endpoints leaves
// it out, so the gateway neither serves its host nor asks a certificate
// for it (which would publish the name in the CT logs). Summoner makes the
// account over loopback, then publishes it.
//
// The mark is a file beside the minion's state, so it outlives an
// interrupted run, and every process that builds routes from Endpoints
// (bootstrap, the running bot) honours it.

const withheldFile = "withheld"

func (s *StateStore) withheldPath(minion string) string {
	return filepath.Join(s.Dir, minion, withheldFile)
}

// Withheld says whether a minion is kept off the gateway. A mark that
// cannot be read counts as withheld: when in doubt, no public route.
func (s *StateStore) Withheld(minion string) (bool, error) {
	if s == nil || s.Dir == "" {
		return false, nil // nowhere to keep a mark: Withhold refuses
	}
	_, err := os.Stat(s.withheldPath(minion))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return true, fmt.Errorf("reading whether %s is withheld from the gateway: %w", minion, err)
	}
}

// Withhold keeps a minion off the gateway until Publish, and tells the
// gateway at once, so a route it served is dropped. Call it before
// Summon: the first table the gateway gets then already leaves it out.
func (e *Engine) Withhold(ctx context.Context, name string) error {
	m, err := e.minion(name)
	if err != nil {
		return err
	}
	if e.o.State == nil || e.o.State.Dir == "" {
		return fmt.Errorf("withholding %s from the gateway: the engine has no state folder", m.Name)
	}
	if err := atomicfile.Write(e.o.State.withheldPath(m.Name), []byte("kept off the gateway until Summoner has made its first admin\n"), 0o600); err != nil {
		return fmt.Errorf("withholding %s from the gateway: %w", m.Name, err)
	}
	e.changed(ctx, m.Name)
	return nil
}

// Publish gives a withheld minion its route again, and tells the gateway
// at once (which may wait, within ctx, for its certificate).
func (e *Engine) Publish(ctx context.Context, name string) error {
	m, err := e.minion(name)
	if err != nil {
		return err
	}
	if e.o.State == nil || e.o.State.Dir == "" {
		return nil
	}
	if err := os.Remove(e.o.State.withheldPath(m.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("publishing %s on the gateway: %w", m.Name, err)
	}
	e.changed(ctx, m.Name)
	return nil
}

// Withheld says whether a minion is kept off the gateway.
func (e *Engine) Withheld(name string) (bool, error) {
	m, err := e.minion(name)
	if err != nil {
		return false, err
	}
	return e.o.State.Withheld(m.Name)
}
