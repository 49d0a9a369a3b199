package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/storage"
)

// reporter posts reports to the ops channel through the chat outbox.
type reporter struct {
	poster  chat.Poster
	channel string
	log     *slog.Logger
}

// newReporter posts to opsChannel (its handle, "ops"); the daemon's
// poster is the persistent outbox, which resolves "~name" and keeps the
// report through a chat outage.
func newReporter(p chat.Poster, opsChannel string, log *slog.Logger) *reporter {
	if log == nil {
		log = slog.Default()
	}
	return &reporter{poster: p, channel: strings.TrimPrefix(opsChannel, "~"), log: log}
}

// errNoOpsChannel: reports are only logged when no ops channel is set.
var errNoOpsChannel = errors.New("no ops channel to report to; set chat.ops_channel")

// Publish posts the report.
func (r *reporter) Publish(ctx context.Context, rep maintenance.Report) error {
	// The report says only what any member may read; the detail of each
	// failure (hosts, paths, a tool's output) goes to the log.
	if rep.Err != nil {
		r.log.Error("a maintenance run failed", "job", rep.Job, "err", rep.Err)
	}
	for _, m := range rep.Results {
		if m.Err != nil {
			r.log.Error("a maintenance action failed", "job", rep.Job, "minion", m.Minion, "action", m.Action, "err", m.Err)
		}
	}
	text := rep.Render()
	if r.channel == "" {
		r.log.Warn("report not posted", "job", rep.Job, "failed", rep.Failed(), "err", errNoOpsChannel, "report", text)
		return errNoOpsChannel
	}
	if _, err := r.poster.Post(ctx, chat.Destination{ChannelID: "~" + r.channel}, text); err != nil {
		return fmt.Errorf("posting the %s report to ~%s: %w", rep.Job, r.channel, err)
	}
	return nil
}

// newScheduler registers the config's maintenance jobs; the daemon runs it.
func newScheduler(cfg config.Config, svc services, pub maintenance.ReportPublisher, log *slog.Logger) (*maintenance.Scheduler, error) {
	loc, err := cfg.Maintenance.Location()
	if err != nil {
		return nil, &configError{msg: "maintenance.timezone: " + err.Error()}
	}
	s, err := maintenance.NewScheduler(maintenance.SchedulerOptions{
		StateFile: cfg.Maintenance.StateFile, Location: loc, Reports: pub, Logger: log,
		RunTimeout: cfg.Maintenance.RunTimeout.D(),
	})
	if err != nil {
		return nil, &configError{msg: "maintenance.state_file: " + err.Error()}
	}
	jobs := map[string]func(ctx context.Context) maintenance.Report{
		"dump":           func(ctx context.Context) maintenance.Report { return dumpAll(ctx, svc) },
		"cold_backup":    func(ctx context.Context) maintenance.Report { return coldBackupAll(ctx, svc) },
		"verify_restore": func(ctx context.Context) maintenance.Report { return verifyRestoreAll(ctx, svc) },
		"verify_cold_restore": func(ctx context.Context) maintenance.Report {
			return verifyColdRestoreAll(ctx, svc)
		},
		"prune":  func(ctx context.Context) maintenance.Report { return pruneAll(ctx, svc) },
		"digest": func(ctx context.Context) maintenance.Report { return digest(ctx, svc) },
	}
	if svc.maint == nil {
		// Every job needs a destination: better one line now than a
		// failure report in ~ops every night.
		log.Info("no backup destination (backups.destinations): the maintenance schedules are off")
		return s, nil
	}
	for _, sc := range cfg.Maintenance.Schedules() {
		run, ok := jobs[sc.Job]
		if !ok {
			continue // a job the config names that this build does not have
		}
		if err := s.Register(maintenance.ScheduledJob{Name: sc.Job, Spec: sc.Spec, Run: run}); err != nil {
			return nil, &configError{msg: fmt.Sprintf("maintenance.%s: %v", sc.Job, err)}
		}
	}
	return s, nil
}

// errNoDestination: maintenance needs somewhere to store backups.
var errNoDestination = maintenance.PublicErrorf("no backup destination is configured (backups.destinations)")

// forEachMinion runs one action per minion (those with a database, or all
// summoned ones), one after the other, and collects a result each.
func forEachMinion(ctx context.Context, svc services, dbOnly bool, do func(ctx context.Context, name string) maintenance.MinionResult) maintenance.Report {
	var rep maintenance.Report
	if svc.maint == nil {
		rep.Err = errNoDestination
		return rep
	}
	var names []string
	var err error
	if dbOnly {
		names, err = commands.WithDatabase(ctx, svc.engine)
	} else {
		names, err = commands.Summoned(ctx, svc.engine)
	}
	if err != nil {
		rep.Err = err
		return rep
	}
	for _, name := range names {
		started := time.Now()
		r := do(ctx, name)
		r.Minion, r.Duration = name, time.Since(started)
		rep.Results = append(rep.Results, r)
	}
	return rep
}

// dumpAll dumps every summoned minion that has a database.
func dumpAll(ctx context.Context, svc services) maintenance.Report {
	return forEachMinion(ctx, svc, true, func(ctx context.Context, name string) maintenance.MinionResult {
		res, err := svc.maint.Dump(ctx, name, nil)
		r := maintenance.MinionResult{Action: maintenance.ActionDump, Err: err}
		if err == nil {
			r.BackupID, r.Size, r.Verified = res.Manifest.ID, res.Manifest.Stored.Size, true
			r.StoredOn, r.MissedOn = commands.Locations(res.Copies)
		}
		return r
	})
}

// coldBackupAll takes a cold backup of every summoned minion, one after the
// other: each is stopped only while its own folders are copied.
func coldBackupAll(ctx context.Context, svc services) maintenance.Report {
	return forEachMinion(ctx, svc, false, func(ctx context.Context, name string) maintenance.MinionResult {
		res, err := svc.maint.ColdBackup(ctx, name, nil)
		r := maintenance.MinionResult{Action: maintenance.ActionColdBackup, Err: err}
		if err == nil {
			r.BackupID, r.Size, r.Verified = res.Manifest.ID, res.Manifest.Stored.Size, true
			r.StoredOn, r.MissedOn = commands.Locations(res.Copies)
			r.Detail = fmt.Sprintf("stopped for %s", res.Downtime.Round(time.Second))
		}
		return r
	})
}

// verifyRestoreAll test-restores every summoned minion's newest dump, or
// its newest backup when it has no database (a cold backup then).
func verifyRestoreAll(ctx context.Context, svc services) maintenance.Report {
	var withDB []string
	if svc.maint != nil {
		var err error
		if withDB, err = commands.WithDatabase(ctx, svc.engine); err != nil {
			return maintenance.Report{Err: err}
		}
	}
	return forEachMinion(ctx, svc, false, func(ctx context.Context, name string) maintenance.MinionResult {
		kind := ""
		if slices.Contains(withDB, name) {
			kind = storage.KindDump
		}
		res, err := svc.maint.VerifyRestoreNewest(ctx, name, kind, nil)
		return testRestored(res, err)
	})
}

// verifyColdRestoreAll test-restores the newest cold backup of every
// minion that also has a database, whose dumps verify_restore tests.
func verifyColdRestoreAll(ctx context.Context, svc services) maintenance.Report {
	return forEachMinion(ctx, svc, true, func(ctx context.Context, name string) maintenance.MinionResult {
		res, err := svc.maint.VerifyRestoreNewest(ctx, name, storage.KindCold, nil)
		if errors.Is(err, maintenance.ErrNoBackup) {
			// Cold backups may be off for it: nothing to test is no failure.
			return maintenance.MinionResult{Action: maintenance.ActionTestRestore, Detail: "no cold backup to test yet"}
		}
		return testRestored(res, err)
	})
}

// testRestored is one test restore as a report line.
func testRestored(res *maintenance.VerifyResult, err error) maintenance.MinionResult {
	r := maintenance.MinionResult{Action: maintenance.ActionTestRestore, Err: err}
	if err == nil {
		r.BackupID, r.Size, r.Verified = res.BackupID, res.Size, true
		r.Detail = fmt.Sprintf("%d tables checked", len(res.Checks))
		if res.Kind == storage.KindCold {
			r.Detail = "cold backup, files checked"
		}
	}
	return r
}

// pruneAll applies the retention policy to every minion's backups.
func pruneAll(ctx context.Context, svc services) maintenance.Report {
	var rep maintenance.Report
	if svc.repo == nil {
		rep.Err = errNoDestination
		return rep
	}
	started := time.Now()
	removed, err := svc.repo.Prune(ctx, "", false)
	rep.Results = append(rep.Results, maintenance.MinionResult{
		Minion: "all", Action: maintenance.ActionPrune, Duration: time.Since(started), Err: err,
		Detail: fmt.Sprintf("removed %d old backup copies", len(removed)),
	})
	return rep
}

// digest is the weekly summary of every minion's backups.
func digest(ctx context.Context, svc services) maintenance.Report {
	var rep maintenance.Report
	if svc.repo == nil {
		rep.Err = errNoDestination
		return rep
	}
	list, errs := svc.repo.List(ctx, "")
	if len(errs) > 0 && len(list) == 0 {
		rep.Err = errors.Join(errs...)
		return rep
	}
	names, err := commands.WithDatabase(ctx, svc.engine)
	if err != nil {
		rep.Err = err
		return rep
	}
	rep.Digest = &maintenance.Digest{Now: time.Now(), Minions: names, Backups: maintenance.DigestBackupsOf(list)}
	return rep
}
