package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/internal/fuzzy"
)

// Level is how much a user may do. Higher levels include the lower ones.
type Level int

// The permission levels, lowest first.
const (
	Everyone Level = iota
	Operator
	Admin
)

func (l Level) String() string {
	switch l {
	case Operator:
		return "operator"
	case Admin:
		return "admin"
	}
	return "everyone"
}

// Definition is one command: everything help, permissions and routing need.
type Definition struct {
	Name    string
	Args    string // argument synopsis for usage, e.g. "[command]"
	Summary string // one line for the command list
	Help    string // longer text for "help <name>"; optional
	Level   Level
	// Mutating commands change something, so they run only in the channels
	// the configuration allows.
	Mutating bool
	// Confirm, when set, makes the command destructive: it returns what the
	// command is about to do, and the user must answer "confirm <code>".
	// Returning "" means this run needs no confirmation (a flag decides).
	Confirm func(ctx context.Context, r *Request) (string, error)
	// Timeout is how long one run may take; 0 means DefaultTimeout. Long
	// work (summon, update) gets minutes, quick lookups seconds.
	Timeout time.Duration
	// Run does the work and returns the reply. A *UserError is shown as is.
	Run func(ctx context.Context, r *Request) (string, error)
}

// DefaultTimeout is a command's deadline when its definition sets none.
const DefaultTimeout = 30 * time.Second

// Usage is the one-line synopsis.
func (d *Definition) Usage() string {
	if d.Args == "" {
		return d.Name
	}
	return d.Name + " " + d.Args
}

// Registry holds the command definitions by name.
type Registry struct {
	byName map[string]*Definition
	names  []string // sorted, for help and suggestions
}

// NewRegistry builds a registry; it refuses empty and duplicate names.
func NewRegistry(defs ...Definition) (*Registry, error) {
	r := &Registry{byName: make(map[string]*Definition)}
	for _, d := range defs {
		if err := r.Add(d); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Add registers one more definition.
func (r *Registry) Add(d Definition) error {
	switch {
	case d.Name == "" || strings.ContainsFunc(d.Name, func(c rune) bool { return c == ' ' || c == '\t' }):
		return fmt.Errorf("registering command %q: a name is one word", d.Name)
	case d.Run == nil:
		return fmt.Errorf("registering command %q: no Run function", d.Name)
	case r.byName[d.Name] != nil:
		return fmt.Errorf("registering command %q: the name is taken", d.Name)
	}
	r.byName[d.Name] = &d
	r.names = append(r.names, d.Name)
	slices.Sort(r.names)
	return nil
}

// Lookup finds a definition by name.
func (r *Registry) Lookup(name string) (*Definition, bool) {
	d, ok := r.byName[name]
	return d, ok
}

// All lists the definitions sorted by name.
func (r *Registry) All() []*Definition {
	out := make([]*Definition, 0, len(r.names))
	for _, n := range r.names {
		out = append(out, r.byName[n])
	}
	return out
}

// Suggest returns the known names closest to a mistyped one, best first.
func (r *Registry) Suggest(name string) []string {
	name = strings.ToLower(name)
	best, bestD := []string(nil), 3
	for _, n := range r.names {
		d := fuzzy.Distance(name, n)
		if d > len(n)/2 && !strings.HasPrefix(n, name) {
			continue // too far to be a typo of n
		}
		if strings.HasPrefix(n, name) && len(name) >= 2 {
			d = min(d, 1)
		}
		switch {
		case d < bestD:
			best, bestD = []string{n}, d
		case d == bestD:
			best = append(best, n)
		}
	}
	return best
}
