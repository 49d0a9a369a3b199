package commands

import (
	"context"
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

// BackupCommands list, verify and prune backups. repo may be nil when no
// destination is configured; the commands then say so.
func BackupCommands(repo BackupRepo) []Definition {
	need := func() error {
		if repo == nil {
			return Errorf("No backup destination is configured: add one under `backups.destinations` in the config.")
		}
		return nil
	}
	return []Definition{
		{
			Name: "backups", Args: "[minion]", Summary: "list backups: id, age, size, where, verified",
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
				return renderBackups(repo, list, errs, time.Now()), nil
			},
		},
		{
			Name: "verify", Args: "<backup id>", Summary: "fetch a backup from every destination and check it end to end",
			Level: Operator,
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
				return renderVerify(pos[0], m, checks), nil
			},
		},
		{
			Name: "prune", Args: "[--dry-run]", Summary: "remove backups the retention policy no longer keeps",
			Help:  "Never removes the newest good backup of a minion on any destination. Also removes incomplete backups (no manifest) older than a day.",
			Level: Operator, Mutating: true,
			Run: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				pos, flags, err := Flags(r.Args, nil, "dry-run")
				if err != nil {
					return "", err
				}
				if len(pos) > 0 {
					return "", Errorf("Usage: `prune [--dry-run]`")
				}
				dry := flags["dry-run"] != ""
				removed, err := repo.Prune(ctx, "", dry)
				if err != nil {
					return "", err
				}
				return renderPrune(removed, dry), nil
			},
		},
	}
}

func renderBackups(repo BackupRepo, list []storage.Backup, errs []error, now time.Time) string {
	var b strings.Builder
	if len(list) == 0 {
		b.WriteString("No backups yet.")
	} else {
		b.WriteString("| id | age | size | where | verified |\n|---|---|---|---|---|\n")
		lastChecks := repo.Verifications()
		for _, bk := range list {
			m := bk.Manifest
			var checks []string
			for _, c := range bk.Copies {
				if v, ok := lastChecks.Of(m.ID, c); ok {
					mark := "✓"
					if !v.OK {
						mark = "✗"
					}
					checks = append(checks, fmt.Sprintf("%s %s ago", mark, human.Age(now.Sub(v.At))))
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
			fmt.Fprintf(&b, "| %s | %s | %s%s | %s | %s |\n", m.ID, human.Age(now.Sub(m.Created)), human.Bytes(m.Stored.Size), lock, strings.Join(bk.Copies, ", "), verified)
		}
	}
	for _, err := range errs {
		fmt.Fprintf(&b, "\n⚠️ %v", err)
	}
	return strings.TrimRight(b.String(), "\n")
}

func renderVerify(id string, m *storage.Manifest, checks []storage.CopyCheck) string {
	var b strings.Builder
	bad := 0
	for _, c := range checks {
		switch {
		case c.Err != nil:
			bad++
			fmt.Fprintf(&b, "✗ %s: %v\n", c.Backend, c.Err)
		case !c.Decrypted:
			fmt.Fprintf(&b, "✓ %s: the stored bytes match (%s); not decrypted: no identity_file is configured\n", c.Backend, human.Bytes(m.Stored.Size))
		default:
			fmt.Fprintf(&b, "✓ %s: %s stored, %s after decompression; both hashes match\n", c.Backend, human.Bytes(m.Stored.Size), human.Bytes(m.Payload.Size))
		}
	}
	head := fmt.Sprintf("%s: all %d copies are good.\n", id, len(checks))
	if bad > 0 {
		head = fmt.Sprintf("⚠️ %s: %d of %d copies are damaged or unreadable.\n", id, bad, len(checks))
	}
	return strings.TrimRight(head+b.String(), "\n")
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
	fmt.Fprintf(&b, "%s %d backup copies:\n", verb, len(removed))
	for _, r := range removed {
		fmt.Fprintf(&b, "- %s on %s (%s)\n", r.ID, r.Backend, r.Reason)
	}
	if dry {
		b.WriteString("Run `prune` without --dry-run to remove them.")
	}
	return strings.TrimRight(b.String(), "\n")
}
