package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/internal/human"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// Maintenance is what the maintenance commands need from maintenance.Service.
type Maintenance interface {
	Dump(ctx context.Context, minion string, progress minions.Progress) (*maintenance.DumpResult, error)
	Restore(ctx context.Context, minion, backupID string, progress minions.Progress) (*maintenance.RestoreResult, error)
	ColdBackup(ctx context.Context, minion string, progress minions.Progress) (*maintenance.ColdResult, error)
	RestoreCold(ctx context.Context, minion, backupID string, progress minions.Progress) (*maintenance.RestoreResult, error)
	VerifyRestore(ctx context.Context, minion, backupID string, progress minions.Progress) (*maintenance.VerifyResult, error)
}

// Schedules is what `schedule` needs from maintenance.Scheduler.
type Schedules interface {
	List() []maintenance.ScheduleInfo
	Set(name, spec string) (maintenance.ScheduleInfo, error)
	Off(name string) (maintenance.ScheduleInfo, error)
	Reset(name string) (maintenance.ScheduleInfo, error)
}

// MaintenanceCommands dump, restore and schedule. m is nil without a backup
// destination (the commands then say so); sched may be nil (none).
func MaintenanceCommands(m Maintenance, e MinionEngine, repo BackupRepo, sched Schedules) []Definition {
	need := func() error {
		if m == nil {
			return Errorf("No backup destination is configured: add one under `backups.destinations` in the config.")
		}
		return nil
	}
	defs := []Definition{
		{
			Name: "dump", Args: "<minion>|all", Summary: "dump a minion's database (or every one) into the backups, checked whole",
			Help:  "The dump runs inside the database container and streams straight into every backup destination. It counts only if the tool ended well and its output is complete; a failed dump stores nothing.",
			Level: Operator, Mutating: true, Timeout: 2 * time.Hour,
			Run: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				name, err := one(r, "dump <minion>|all")
				if err != nil {
					return "", err
				}
				names := []string{name}
				if name == "all" {
					if names, err = WithDatabase(ctx, e); err != nil {
						return "", err
					}
					if len(names) == 0 {
						return "No summoned minion has a database to dump.", nil
					}
				}
				var lines []string
				failed := 0
				for _, n := range names {
					res, err := m.Dump(ctx, n, func(step string) { r.Progress(ctx, step) })
					if err != nil {
						if len(names) == 1 {
							return "", err
						}
						failed++
						lines = append(lines, fmt.Sprintf("⚠️ %s: %s", n, userText(err)))
						continue
					}
					lines = append(lines, renderDumped(res))
				}
				if failed > 0 {
					lines = append([]string{fmt.Sprintf("⚠️ %d of %d dumps failed; the others are stored.", failed, len(names))}, lines...)
				}
				return strings.Join(lines, "\n"), nil
			},
		},
		{
			Name: "backup", Args: "<minion>", Summary: "take a cold backup: stop the minion, copy its data folders, start it again",
			Help:  "The minion is stopped (app first), its data folders are archived by a short-lived helper container, keeping owners and modes, and it starts again even if the archive failed. `dump` copies a database without stopping anything.",
			Level: Operator, Mutating: true, Timeout: 2 * time.Hour,
			Run: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				name, err := one(r, "backup <minion>")
				if err != nil {
					return "", err
				}
				res, err := m.ColdBackup(ctx, name, func(step string) { r.Progress(ctx, step) })
				if err != nil {
					return "", err
				}
				mf := res.Manifest
				where, missed := Locations(res.Copies)
				text := fmt.Sprintf("Cold backup of %s stored: %s (%s, %s stored) on %s; %s was stopped for %s.",
					name, mf.ID, human.Bytes(mf.Payload.Size), human.Bytes(mf.Stored.Size), strings.Join(where, ", "), name, res.Downtime.Round(time.Second))
				if len(missed) > 0 {
					text += fmt.Sprintf(" ⚠️ %s did not get a copy; `backups %s` shows why.", strings.Join(missed, ", "), name)
				}
				return text, nil
			},
		},
		{
			Name: "restore", Args: "<minion> [backup id]", Summary: "put a minion's data back from a backup (the newest by default)",
			Help:  "Checks the backup first, stores a safety dump of the current data, then restores and checks the app's health. If anything fails, the safety dump is put back. The reply names the safety dump, so `restore <minion> <its id>` undoes a restore.",
			Level: Admin, Mutating: true, Timeout: 2 * time.Hour,
			Confirm: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				name, id, err := restoreArgs(ctx, r, repo)
				if err != nil {
					return "", err
				}
				if isCold(id) {
					return fmt.Sprintf("⚠️ This stops %s and replaces every file of its data folders with the cold backup %s. I store a safety copy of the current files first, so it can be undone.", name, id), nil
				}
				return fmt.Sprintf("⚠️ This replaces the current data of %s with the backup %s. I store a safety dump of the current data first, so it can be undone.", name, id), nil
			},
			Run: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				name, id, err := restoreArgs(ctx, r, repo)
				if err != nil {
					return "", err
				}
				restore := m.Restore
				if isCold(id) {
					restore = m.RestoreCold
				}
				res, err := restore(ctx, name, id, func(step string) { r.Progress(ctx, step) })
				if err != nil {
					return "", err
				}
				return fmt.Sprintf("%s runs on the data of %s again (took %s). The data it had just before are kept as %s: `restore %s %s` undoes this.",
					res.Minion, res.BackupID, res.Took.Round(time.Second), res.SafetyID, res.Minion, res.SafetyID), nil
			},
		},
		{
			Name: "verify-restore", Args: "<minion> [backup id]", Summary: "test-restore a backup (the newest by default) into a throwaway database and compare it",
			Help:  "A dump is restored into a throwaway database container of the same image on a private network, and its row counts are compared with those recorded at dump time; a cold backup is read through entry by entry, writing nothing to disk, and its files, bytes and their hash are compared with those recorded when it was taken. Nothing of the running minion is touched.",
			Level: Operator, Timeout: 2 * time.Hour,
			Run: func(ctx context.Context, r *Request) (string, error) {
				if err := need(); err != nil {
					return "", err
				}
				pos, _, err := Flags(r.Args, nil)
				if err != nil {
					return "", err
				}
				if len(pos) < 1 || len(pos) > 2 {
					return "", Errorf("Usage: `verify-restore <minion> [backup id]`; `backups <minion>` lists the ids.")
				}
				id := ""
				if len(pos) == 2 {
					id = pos[1]
				}
				res, err := m.VerifyRestore(ctx, strings.ToLower(pos[0]), id, func(step string) { r.Progress(ctx, step) })
				if err != nil {
					return "", err
				}
				return res.Text(), nil
			},
		},
	}
	return append(defs, scheduleCommand(sched))
}

// one is the single minion a command names.
func one(r *Request, usage string) (string, error) {
	pos, _, err := Flags(r.Args, nil)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 {
		return "", Errorf("Usage: `%s`", usage)
	}
	return strings.ToLower(pos[0]), nil
}

// WithDatabase lists the summoned minions that have a database.
func WithDatabase(ctx context.Context, e MinionEngine) ([]string, error) {
	st, err := e.Status(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range st {
		if m, ok := e.Catalog().Get(s.Name); ok && m.Database != nil {
			out = append(out, s.Name)
		}
	}
	return out, nil
}

// Summoned lists the summoned minions.
func Summoned(ctx context.Context, e MinionEngine) ([]string, error) {
	st, err := e.Status(ctx, "")
	if err != nil {
		return nil, err
	}
	out := make([]string, len(st))
	for i, s := range st {
		out[i] = s.Name
	}
	return out, nil
}

// restoreArgs are the minion and the backup to restore: the one named, or
// the minion's newest dump.
func restoreArgs(ctx context.Context, r *Request, repo BackupRepo) (name, id string, err error) {
	pos, _, err := Flags(r.Args, nil)
	if err != nil {
		return "", "", err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return "", "", Errorf("Usage: `restore <minion> [backup id]`; `backups <minion>` lists the ids.")
	}
	name = strings.ToLower(pos[0])
	if len(pos) == 2 {
		id = pos[1]
		if !strings.HasPrefix(id, name+"/") {
			return "", "", Errorf("The backup %s is not one of %s's; `backups %s` lists them.", id, name, name)
		}
		return name, id, nil
	}
	list, _ := repo.List(ctx, name)
	if len(list) == 0 {
		return "", "", Errorf("%s has no backup to restore. `dump %s` or `backup %s` takes one.", name, name, name)
	}
	newest := slices.MaxFunc(list, func(a, b storage.Backup) int { return a.Manifest.Created.Compare(b.Manifest.Created) })
	return name, newest.Manifest.ID, nil
}

// isCold tells a cold backup's id (<minion>/<time>-cold) from a dump's.
func isCold(id string) bool { return strings.HasSuffix(id, "-"+storage.KindCold) }

// Locations splits a backup's copies into the destinations that hold one
// and those that missed it, by their config names.
func Locations(cs []storage.Copy) (stored, missed []string) {
	for _, c := range cs {
		if c.Err == nil {
			stored = append(stored, c.Destination)
		} else {
			missed = append(missed, c.Destination)
		}
	}
	return stored, missed
}

func renderDumped(res *maintenance.DumpResult) string {
	m := res.Manifest
	where, missed := Locations(res.Copies)
	text := fmt.Sprintf("Dumped %s: %s (%s, %s stored), checked and stored on %s in %s.",
		m.Minion, m.ID, human.Bytes(m.Payload.Size), human.Bytes(m.Stored.Size), strings.Join(where, ", "), res.Took.Round(100*time.Millisecond))
	if len(missed) > 0 {
		text += fmt.Sprintf(" ⚠️ %s did not get a copy; `backups %s` shows why.", strings.Join(missed, ", "), m.Minion)
	}
	return text
}

func scheduleCommand(sched Schedules) Definition {
	return Definition{
		Name: "schedule", Args: "[set <job> <cron> | off <job> | reset <job>]", Summary: "list the maintenance schedules, or change one (admin)",
		Help: "Jobs: dump, cold_backup, verify_restore, verify_cold_restore, prune, digest. A schedule is a cron expression (`0 3 * * *` is every night at 03:00; a sixth field in front gives seconds), `@daily`, or `off`. Changes are kept across restarts; `reset` goes back to the config's.",
		Run: func(_ context.Context, r *Request) (string, error) {
			if sched == nil {
				return "", Errorf("No maintenance is scheduled here: see `maintenance:` in the config.")
			}
			if len(r.Args) == 0 {
				return renderSchedules(sched.List(), time.Now()), nil
			}
			if r.Level < Admin {
				return "", Errorf("Changing a schedule needs admin rights, and you have %s rights.", r.Level)
			}
			verb := strings.ToLower(r.Args[0])
			var (
				info maintenance.ScheduleInfo
				err  error
			)
			switch {
			case verb == "set" && len(r.Args) >= 3:
				info, err = sched.Set(r.Args[1], strings.Join(r.Args[2:], " "))
			case verb == "off" && len(r.Args) == 2:
				info, err = sched.Off(r.Args[1])
			case verb == "reset" && len(r.Args) == 2:
				info, err = sched.Reset(r.Args[1])
			default:
				return "", Errorf("Usage: `schedule`, `schedule set <job> <cron>`, `schedule off <job>` or `schedule reset <job>`.")
			}
			if err != nil {
				return "", Errorf("%s", err.Error())
			}
			title := strings.ToUpper(info.Title[:1]) + info.Title[1:]
			if info.Spec == "off" {
				return fmt.Sprintf("%s is off.", title), nil
			}
			return fmt.Sprintf("%s now runs at `%s`; next run %s.", title, info.Spec, info.Next.Format("Mon 2 Jan 15:04:05 MST")), nil
		},
	}
}

func renderSchedules(list []maintenance.ScheduleInfo, now time.Time) string {
	if len(list) == 0 {
		return "No maintenance is scheduled."
	}
	var b strings.Builder
	b.WriteString("| job | schedule | next run | last run |\n|---|---|---|---|\n")
	for _, s := range list {
		spec := "`" + s.Spec + "`"
		if s.Changed {
			spec += " (changed from `" + s.Default + "`)"
		}
		next := "-"
		if !s.Next.IsZero() {
			next = "in " + human.Age(s.Next.Sub(now))
		}
		last := "never"
		switch {
		case s.Running:
			last = "running now"
		case !s.LastRun.IsZero():
			last = human.Age(now.Sub(s.LastRun)) + " ago"
			if s.LastFailed {
				last += " ⚠️ failed"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", s.Name, spec, next, last)
	}
	return strings.TrimRight(b.String(), "\n")
}

// userText is an error's message for users, or a pointer to the log.
func userText(err error) string {
	var um userMessage
	if errors.As(err, &um) {
		return um.UserMessage()
	}
	return "an internal error; the details are in the bot's log."
}
