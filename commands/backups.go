package commands

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/internal/human"
	"github.com/summoner-bot/summoner/storage"
)

// BackupRepo is what the backup commands need from storage.Repository.
type BackupRepo interface {
	List(ctx context.Context, minion string) ([]storage.Backup, []error)
	Verify(ctx context.Context, id string) (*storage.Manifest, []storage.CopyCheck, error)
	Prune(ctx context.Context, minion string, dryRun bool) ([]storage.Removal, error)
	Verifications() storage.Verifications
}

const (
	// confirmLines bounds the removals a prune confirmation lists: enough
	// to judge, short enough to read on a phone.
	confirmLines = 20
	// replyLines bounds the removals a prune reply lists, so a first prune
	// of years of backups stays under the chat server's message size.
	replyLines = 100
)

// BackupCommands list, verify and prune backups. repo may be nil when no
// destination is configured; the commands then say so.
//
// Replies name destinations by their configured name. Members below
// operator never see a destination's host, user or path, nor a backend's
// own error message: those only go to operators, admins and the log.
func BackupCommands(repo BackupRepo) []Definition {
	return backupCommands(repo, time.Now)
}

func backupCommands(repo BackupRepo, now func() time.Time) []Definition {
	need := func() error {
		if repo == nil {
			return Errorf("No backup destination is configured: add one under `backups.destinations` in the config.")
		}
		return nil
	}
	pruneArgs := func(r *Request) (dry bool, err error) {
		if err := need(); err != nil {
			return false, err
		}
		pos, flags, err := Flags(r.Args, nil, "dry-run")
		if err != nil {
			return false, err
		}
		if len(pos) > 0 {
			return false, Errorf("Usage: `prune [--dry-run]`")
		}
		return flags["dry-run"] != "", nil
	}
	return []Definition{
		{
			Name: "backups", Args: "[minion]", Summary: "list backups: id, age, size, where, verified",
			Timeout: 2 * time.Minute, // reads every manifest on every destination
			Run: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				pos, _, err := Flags(r.Args, nil)
				if err != nil {
					return "", err
				}
				if len(pos) > 1 {
					return "", Errorf("Usage: `backups [minion]`")
				}
				minion := ""
				if len(pos) == 1 {
					minion = strings.ToLower(pos[0])
				}
				list, errs := repo.List(ctx, minion)
				return renderBackups(list, errs, repo.Verifications(), now(), r.Level), nil
			},
		},
		{
			Name: "verify", Args: "<backup id>", Summary: "fetch a backup from every destination and check it end to end",
			Level:   Operator,
			Timeout: time.Hour, // downloads every copy in full
			Run: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				pos, _, err := Flags(r.Args, nil)
				if err != nil {
					return "", err
				}
				if len(pos) != 1 {
					return "", Errorf("Usage: `verify <backup id>`; `backups` lists the ids.")
				}
				r.Progress(ctx, "Verifying "+pos[0]+"…")
				m, checks, err := repo.Verify(ctx, pos[0])
				if storage.IsNotExist(err) {
					return "", Errorf("There is no backup %s. `backups` lists them.", pos[0])
				}
				if err != nil {
					return "", err
				}
				return renderVerify(pos[0], m, checks, r.Level), nil
			},
		},
		{
			Name: "prune", Args: "[--dry-run]", Summary: "remove backups the retention policy no longer keeps",
			Help: "Never removes the newest good backup of a minion on any destination. Also removes incomplete backups (no manifest) older than a day. " +
				"It lists what it would remove and asks for confirmation first; `--dry-run` only lists.",
			Level: Admin, Mutating: true,
			Timeout: 10 * time.Minute,
			// The list shown is a dry run; a backup finishing between it and
			// the confirmation can make one more old copy removable, which
			// the automatic prune after that backup would remove anyway.
			Confirm: func(ctx context.Context, r *Request) (string, error) {
				dry, err := pruneArgs(r)
				if err != nil || dry {
					return "", err
				}
				would, err := repo.Prune(ctx, "", true)
				if err != nil {
					return "", pruneFailed(nil, err, r.Level)
				}
				if len(would) == 0 {
					return "", nil // Run says there is nothing to prune
				}
				return renderPruneConfirm(would), nil
			},
			Run: func(ctx context.Context, r *Request) (string, error) {
				dry, err := pruneArgs(r)
				if err != nil {
					return "", err
				}
				removed, err := repo.Prune(ctx, "", dry)
				if err != nil {
					return "", pruneFailed(removed, err, r.Level)
				}
				return renderPrune(removed, dry), nil
			},
		},
	}
}

// trouble describes a storage failure in two lines: what failed, naming
// the destination only, then for operators the cause (which may name a
// host, a user or a path; backends keep secrets out of their errors) or
// for members who can see it.
func trouble(err error, lvl Level) (what, detail string) {
	var de *storage.DestinationError
	if errors.As(err, &de) {
		what, err = de.Public(), de.Err
	} else {
		what = "a backup destination failed"
	}
	if lvl < Operator {
		return what, "An operator can see why."
	}
	return what, "Cause: `" + strings.ReplaceAll(err.Error(), "`", "'") + "`"
}

func renderBackups(list []storage.Backup, errs []error, lastChecks storage.Verifications, now time.Time, lvl Level) string {
	var b strings.Builder
	switch {
	case len(list) == 0 && len(errs) > 0:
		b.WriteString("I found no backups.")
	case len(list) == 0:
		b.WriteString("No backups yet.")
	default:
		b.WriteString("| id | age | size | where | verified |\n|---|---|---|---|---|\n")
		for _, bk := range list {
			m := bk.Manifest
			var where, checks []string
			for _, c := range bk.Copies {
				where = append(where, c.Destination)
				if v, ok := lastChecks.Of(m.ID, c.Backend); ok {
					mark := "✓"
					if !v.OK {
						mark = "✗"
					}
					checks = append(checks, fmt.Sprintf("%s %s %s ago", c.Destination, mark, human.Age(now.Sub(v.At))))
				}
			}
			verified := "at upload"
			if len(checks) > 0 {
				verified = strings.Join(checks, ", ")
			}
			lock := ""
			if len(m.Encryption) > 0 {
				lock = " 🔒"
			}
			fmt.Fprintf(&b, "| %s | %s | %s%s | %s | %s |\n", m.ID, human.Age(now.Sub(m.Created)), human.Bytes(m.Stored.Size), lock, strings.Join(where, ", "), verified)
		}
	}
	for _, err := range errs {
		what, detail := trouble(err, lvl)
		fmt.Fprintf(&b, "\n⚠️ %s, so backups kept only there are missing from this list. %s", what, detail)
	}
	return strings.TrimRight(b.String(), "\n")
}

func renderVerify(id string, m *storage.Manifest, checks []storage.CopyCheck, lvl Level) string {
	var b strings.Builder
	bad := 0
	for _, c := range checks {
		switch {
		case c.Err != nil:
			bad++
			what, detail := trouble(c.Err, lvl)
			fmt.Fprintf(&b, "✗ %s. %s\n", what, detail)
		case !c.Decrypted:
			fmt.Fprintf(&b, "✓ %s: the stored bytes match (%s); not decrypted: no identity_file is configured\n", c.Destination, human.Bytes(m.Stored.Size))
		default:
			fmt.Fprintf(&b, "✓ %s: %s stored, %s after decompression; both hashes match\n", c.Destination, human.Bytes(m.Stored.Size), human.Bytes(m.Payload.Size))
		}
	}
	head := fmt.Sprintf("%s: all %d copies are good.\n", id, len(checks))
	if bad > 0 {
		head = fmt.Sprintf("⚠️ %s: %d of %d copies are damaged or unreadable.\n", id, bad, len(checks))
	}
	return strings.TrimRight(head+b.String(), "\n")
}

func renderPruneConfirm(would []storage.Removal) string {
	var b strings.Builder
	fmt.Fprintf(&b, "⚠️ This removes %s for good; it cannot be undone:\n", copies(len(would)))
	writeRemovals(&b, would, confirmLines)
	b.WriteString("The newest good backup of each minion stays on every destination.")
	return b.String()
}

func renderPrune(removed []storage.Removal, dry bool) string {
	if len(removed) == 0 {
		return "Nothing to prune: every backup is kept by the retention policy."
	}
	verb := "Removed"
	if dry {
		verb = "Would remove"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s:\n", verb, copies(len(removed)))
	writeRemovals(&b, removed, replyLines)
	if dry {
		b.WriteString("Run `prune` without --dry-run to remove them.")
	}
	return strings.TrimRight(b.String(), "\n")
}

// pruneFailed says where a prune stopped and what it had removed by then.
func pruneFailed(removed []storage.Removal, err error, lvl Level) error {
	what, detail := trouble(err, lvl)
	var b strings.Builder
	fmt.Fprintf(&b, "⚠️ Prune stopped: %s. ", what)
	if len(removed) == 0 {
		b.WriteString("Nothing was removed.\n")
	} else {
		fmt.Fprintf(&b, "Before that it removed %s:\n", copies(len(removed)))
		writeRemovals(&b, removed, replyLines)
	}
	b.WriteString(detail)
	return &explained{msg: b.String(), cause: err}
}

func writeRemovals(b *strings.Builder, rs []storage.Removal, most int) {
	for i, r := range rs {
		if i == most {
			fmt.Fprintf(b, "- and %d more (`prune --dry-run` lists them)\n", len(rs)-most)
			break
		}
		fmt.Fprintf(b, "- %s on %s (%s)\n", r.ID, r.Destination, reasonText(r.Reason))
	}
}

func reasonText(reason string) string {
	switch reason {
	case "retention":
		return "the retention policy no longer keeps it"
	case "incomplete":
		return "incomplete: its upload never finished"
	}
	return reason
}

func copies(n int) string {
	if n == 1 {
		return "1 backup copy"
	}
	return fmt.Sprintf("%d backup copies", n)
}
