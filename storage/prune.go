package storage

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Removal is one backup copy prune removes (or would, in a dry run).
type Removal struct {
	Location
	ID     string
	Reason string // "retention" or "incomplete"
}

// incompleteAge is how old a backup without manifest must be before prune
// removes it: younger ones may be uploads still running.
const incompleteAge = 24 * time.Hour

var backupDirRE = regexp.MustCompile(`^(\d{8}T\d{6}Z)-(dump|cold)(-\d+)?$`)

type stored struct {
	id       string
	minion   string
	kind     string
	created  time.Time
	complete bool
	newest   time.Time // newest file, for incomplete ones
	files    []string
}

// Prune applies the retention policy to a minion's backups ("" for every
// minion) on every destination, and removes incomplete backups older than
// a day. Each destination always keeps its newest complete backup. A
// failure is a *DestinationError; the removals done before it are
// returned with it.
func (r *Repository) Prune(ctx context.Context, minion string, dryRun bool) ([]Removal, error) {
	perBackend := make([][]*stored, len(r.o.Backends))
	union := map[string][]time.Time{} // minion/kind -> backup times on any destination
	for i, b := range r.o.Backends {
		files, err := b.List(ctx, prefixFor(minion))
		if err != nil {
			return nil, r.failure(i, OpList, err)
		}
		byID := map[string]*stored{}
		for _, f := range files {
			parts := strings.SplitN(f.Name, "/", 3)
			if len(parts) != 3 {
				continue
			}
			mt := backupDirRE.FindStringSubmatch(parts[1])
			if mt == nil {
				continue // not ours
			}
			id := parts[0] + "/" + parts[1]
			s := byID[id]
			if s == nil {
				created, _ := time.Parse(idTime, mt[1])
				s = &stored{id: id, minion: parts[0], kind: mt[2], created: created}
				byID[id] = s
			}
			s.files = append(s.files, f.Name)
			if parts[2] == manifestFile {
				s.complete = true
			}
			if f.ModTime.After(s.newest) {
				s.newest = f.ModTime
			}
		}
		for _, s := range byID {
			perBackend[i] = append(perBackend[i], s)
			if s.complete {
				k := s.minion + "/" + s.kind
				union[k] = append(union[k], s.created)
			}
		}
	}
	keep := map[string]map[time.Time]bool{}
	for k, times := range union {
		keep[k] = r.o.Retention.Keep(times)
	}

	var out []Removal
	now := r.o.Now()
	for i, b := range r.o.Backends {
		newest := map[string]time.Time{} // this destination's newest complete backup per minion/kind
		for _, s := range perBackend[i] {
			k := s.minion + "/" + s.kind
			if s.complete && s.created.After(newest[k]) {
				newest[k] = s.created
			}
		}
		sort.Slice(perBackend[i], func(a, c int) bool { return perBackend[i][a].id < perBackend[i][c].id })
		for _, s := range perBackend[i] {
			k := s.minion + "/" + s.kind
			var reason string
			switch {
			case !s.complete && now.Sub(s.newest) > incompleteAge:
				reason = "incomplete"
			case s.complete && !keep[k][s.created] && !s.created.Equal(newest[k]):
				reason = "retention"
			default:
				continue
			}
			rm := Removal{Location: r.at(i), ID: s.id, Reason: reason}
			if !dryRun {
				// The manifest goes first: a backup half removed is then
				// incomplete, never complete with missing data.
				sort.Slice(s.files, func(a, c int) bool { return path.Base(s.files[a]) == manifestFile })
				for _, f := range s.files {
					if err := b.Remove(ctx, f); err != nil {
						// out lists only what is gone, so the caller can say
						// exactly what happened before the failure.
						return out, r.failure(i, OpRemove, fmt.Errorf("removing %s: %w", s.id, err))
					}
				}
			}
			out = append(out, rm)
		}
	}
	return out, nil
}
