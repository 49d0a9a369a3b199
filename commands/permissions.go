package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// UserDirectory looks accounts up in the chat system; the Mattermost
// adapter satisfies it.
type UserDirectory interface {
	// UsersByName maps each name that has an account to the account's ID.
	UsersByName(ctx context.Context, names []string) (map[string]string, error)
	// UsersByID maps each ID of an active account to its current username;
	// deactivated, deleted and unknown accounts are absent.
	UsersByID(ctx context.Context, ids []string) (map[string]string, error)
}

// PermissionsOptions configure Permissions.
type PermissionsOptions struct {
	Admins, Operators []string // usernames from the config, "@" optional
	// StateFile keeps each configured name's first account. Without it a
	// restart after a rename would give the name's new owner the rights.
	StateFile string
	Logger    *slog.Logger
}

// Permissions gives chat users their level by account ID, not by name: the
// configured names are bound to accounts the first time they resolve, and
// the binding is kept. An admin who is renamed keeps their rights; whoever
// takes the freed name gets none; a deactivated or deleted account loses
// them (and gets them back if reactivated: it is still the same person).
//
// Until the first Resolve everyone has Everyone rights. The shell and the
// one-shot CLI do not use this: their user is local.
type Permissions struct {
	admins, operators []string
	path              string
	log               *slog.Logger

	resolving sync.Mutex // one Resolve at a time

	mu     sync.RWMutex
	bound  map[string]string // configured name -> account ID, as persisted
	levels map[string]Level  // account ID -> level, from the last Resolve
}

type bindingsFile struct {
	Version int               `json:"version"`
	Bound   map[string]string `json:"bound"` // username -> account ID
}

// NewPermissions loads the bindings made so far. A damaged state file is an
// error, not an empty state: starting over would bind names afresh, maybe to
// whoever took a freed one.
func NewPermissions(o PermissionsOptions) (*Permissions, error) {
	if o.StateFile == "" {
		return nil, errors.New("permissions need a state file to remember who the configured names belong to")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	p := &Permissions{
		admins: normalize(o.Admins), operators: normalize(o.Operators),
		path: o.StateFile, log: o.Logger,
		bound: map[string]string{}, levels: map[string]Level{},
	}
	data, err := os.ReadFile(o.StateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return p, nil
	case err != nil:
		return nil, fmt.Errorf("reading permission bindings %s: %w", o.StateFile, err)
	}
	var f bindingsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("permission bindings %s are damaged (fix or remove the file, then check who has rights): %w", o.StateFile, err)
	}
	if f.Bound != nil {
		p.bound = f.Bound
	}
	return p, nil
}

func normalize(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(n), "@")))
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Level is u's level, by account ID.
func (p *Permissions) Level(u chat.User) Level {
	if u.ID == "" {
		return Everyone
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.levels[u.ID] // Everyone when absent
}

// Resolve binds configured names not bound yet to their accounts, saves the
// bindings, and recomputes every level from the accounts as they are now.
// Call it on every (re)connect. On error the levels stay as they were;
// bindings already made are kept in memory even when saving them failed.
func (p *Permissions) Resolve(ctx context.Context, dir UserDirectory) error {
	p.resolving.Lock()
	defer p.resolving.Unlock()

	configured := append(slices.Clone(p.admins), p.operators...)
	p.mu.RLock()
	bound := make(map[string]string, len(configured))
	for _, n := range configured {
		if id, ok := p.bound[n]; ok {
			bound[n] = id // names no longer configured are forgotten
		}
	}
	changed := len(bound) != len(p.bound)
	p.mu.RUnlock()

	var unbound []string
	for _, n := range configured {
		if _, ok := bound[n]; !ok && !slices.Contains(unbound, n) {
			unbound = append(unbound, n)
		}
	}
	if len(unbound) > 0 {
		found, err := dir.UsersByName(ctx, unbound)
		if err != nil {
			return fmt.Errorf("resolving configured usernames: %w", err)
		}
		for _, n := range unbound {
			if id, ok := found[n]; ok {
				bound[n] = id
				changed = true
				p.log.Info("bound a configured name to its account", "name", n, "id", id)
			} else {
				p.log.Warn("a configured name has no account; it gets no rights until one exists", "name", n)
			}
		}
	}
	var saveErr error
	if changed {
		saveErr = p.save(bound)
		p.mu.Lock()
		p.bound = bound
		p.mu.Unlock()
	}

	ids := slices.Sorted(maps.Values(bound))
	ids = slices.Compact(ids)
	active, err := dir.UsersByID(ctx, ids)
	if err != nil {
		return errors.Join(saveErr, fmt.Errorf("checking the configured accounts: %w", err))
	}
	levels := map[string]Level{}
	grant := func(names []string, l Level) {
		for _, n := range names {
			id, ok := bound[n]
			if !ok {
				continue
			}
			now, ok := active[id]
			if !ok {
				p.log.Warn("the account a configured name belongs to is deactivated or deleted; it has no rights", "name", n, "id", id)
				continue
			}
			if !strings.EqualFold(now, n) {
				p.log.Warn("the config names someone who was renamed; they keep their rights (update the config)", "name", n, "now", now, "level", l.String())
			}
			levels[id] = max(levels[id], l)
		}
	}
	grant(p.operators, Operator)
	grant(p.admins, Admin)
	p.mu.Lock()
	p.levels = levels
	p.mu.Unlock()
	return saveErr
}

func (p *Permissions) save(bound map[string]string) error {
	data, err := json.MarshalIndent(bindingsFile{Version: 1, Bound: bound}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding permission bindings: %w", err)
	}
	if err := atomicfile.Write(p.path, data, 0o600); err != nil {
		return fmt.Errorf("saving permission bindings %s: %w", p.path, err)
	}
	return nil
}
