package maintenance

import (
	"errors"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/golden"
	"github.com/summoner-bot/summoner/storage"
)

// The report of each scheduled job as it lands in the ops channel, under
// the scheduler's own titles, with the lines cmd/bot's job bodies write
// (Detail, sizes, destinations).
func TestJobReports(t *testing.T) {
	at := time.Date(2025, 3, 10, 3, 0, 0, 0, time.UTC)
	report := func(job string, took time.Duration, results ...MinionResult) Report {
		return Report{Job: job, Title: schedTitle(job), Started: at, Duration: took, Results: results}
	}
	stored := []string{"disk", "dropbox"}
	tests := []struct {
		name string
		rep  Report
	}{
		{"dump", report("dump", 95*time.Second,
			MinionResult{Minion: "wekan", Action: ActionDump, BackupID: "wekan/20250310T030000Z-dump", Size: 4 << 20, Duration: 41 * time.Second, StoredOn: stored, Verified: true},
			MinionResult{Minion: "ghost", Action: ActionDump, BackupID: "ghost/20250310T030041Z-dump", Size: 300 << 10, Duration: 3 * time.Second, StoredOn: []string{"disk"}, MissedOn: []string{"dropbox"}, Verified: true},
		)},
		{"cold_backup", report("cold_backup", 12*time.Minute,
			MinionResult{Minion: "nextcloud", Action: ActionColdBackup, BackupID: "nextcloud/20250310T030000Z-cold", Size: 3 << 30, Duration: 11 * time.Minute, StoredOn: stored, Verified: true, Detail: "stopped for 10m42s"},
			MinionResult{Minion: "statik", Action: ActionColdBackup, BackupID: "statik/20250310T031100Z-cold", Size: 2 << 20, Duration: 4 * time.Second, StoredOn: stored, Verified: true, Detail: "stopped for 2s"},
		)},
		{"cold_backup_failed", report("cold_backup", 40*time.Second,
			MinionResult{Minion: "nextcloud", Action: ActionColdBackup, Duration: 30 * time.Second, Err: &ColdError{Minion: "nextcloud", Step: StepArchive, Cause: errors.New("tar: write error: No space left on device")}},
			MinionResult{Minion: "statik", Action: ActionColdBackup, BackupID: "statik/20250310T030030Z-cold", Size: 2 << 20, Duration: 4 * time.Second, StoredOn: stored, Verified: true, Detail: "stopped for 2s"},
		)},
		{"test_restore", report("verify_restore", 3*time.Minute,
			MinionResult{Minion: "wekan", Action: ActionTestRestore, BackupID: "wekan/20250310T030000Z-dump", Size: 4 << 20, Duration: 70 * time.Second, Verified: true, Detail: "12 tables checked"},
			MinionResult{Minion: "statik", Action: ActionTestRestore, BackupID: "statik/20250309T030000Z-cold", Size: 2 << 20, Duration: time.Second, Verified: true, Detail: "cold backup, files checked"},
			MinionResult{Minion: "ghost", Action: ActionTestRestore, Duration: 50 * time.Second, Err: &VerifyError{Minion: "ghost", BackupID: "ghost/20250310T030041Z-dump", Check: CheckCounts,
				Result: &VerifyResult{Minion: "ghost", DBKind: "mysql", Recorded: true, Checks: []CountCheck{{Name: "posts", Expected: 120, Found: 118}, {Name: "users", Expected: 3, Found: 3}}},
				Cause:  errors.New("1 table has other row counts than at dump time")}},
			MinionResult{Minion: "wiki", Action: ActionTestRestore, Err: &NoRoomError{Minion: "wiki", BackupID: "wiki/20250310T030000Z-dump", Where: "the disk of Docker's data root", Need: 5 << 30, Free: 2 << 30}},
		)},
		{"test_restore_cold", report("verify_cold_restore", 8*time.Minute,
			MinionResult{Minion: "nextcloud", Action: ActionTestRestore, BackupID: "nextcloud/20250309T030000Z-cold", Size: 3 << 30, Duration: 8 * time.Minute, Verified: true, Detail: "cold backup, files checked"},
			MinionResult{Minion: "wekan", Action: ActionTestRestore, Detail: "no cold backup to test yet"},
		)},
		{"prune", report("prune", 2*time.Second,
			MinionResult{Minion: "all", Action: ActionPrune, Duration: 2 * time.Second, Detail: "removed 4 old backup copies"},
		)},
		{"prune_failed", report("prune", 2*time.Second,
			MinionResult{Minion: "all", Action: ActionPrune, Duration: 2 * time.Second, Detail: "removed 0 old backup copies",
				Err: &storage.DestinationError{Destination: "dropbox", Op: storage.OpRemove, Err: errors.New("dropbox: 503 Service Unavailable")}},
		)},
		{"digest_job", Report{Job: "digest", Title: schedTitle("digest"), Started: at, Digest: &Digest{Now: at, Minions: []string{"wekan"}, Backups: []DigestBackup{
			{Minion: "wekan", Kind: storage.KindDump, Created: at.Add(-24 * time.Hour), Size: 4 << 20},
			{Minion: "wekan", Kind: storage.KindCold, Created: at.Add(-72 * time.Hour), Size: 9 << 20},
		}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.AssertText(t, "report_job_"+tt.name, tt.rep.Render())
		})
	}
}

// The chat reply of verify-restore: a passed test restore of a dump and of
// a cold backup, and one that failed at the row counts.
func TestVerifyRestoreReplies(t *testing.T) {
	created := time.Date(2025, 3, 10, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		text func() string
	}{
		{"passed_dump", (&VerifyResult{Minion: "wekan", BackupID: "wekan/20250310T030000Z-dump", Kind: storage.KindDump, DBKind: "mongodb", Created: created,
			Size: 4 << 20, Recorded: true, Took: 70 * time.Second, Checks: []CountCheck{{Name: "boards", Expected: 12, Found: 12}, {Name: "cards", Expected: 480, Found: 480}}}).Text},
		{"passed_old_dump", (&VerifyResult{Minion: "ghost", BackupID: "ghost/20250110T030000Z-dump", Kind: storage.KindDump, DBKind: "mysql", Created: created.AddDate(0, -2, 0),
			Size: 300 << 10, Took: 20 * time.Second, Checks: []CountCheck{{Name: "posts", Expected: -1, Found: 118}}}).Text},
		{"passed_cold", (&VerifyResult{Minion: "statik", BackupID: "statik/20250309T030000Z-cold", Kind: storage.KindCold, Created: created.Add(-24 * time.Hour),
			Size: 2 << 20, Recorded: true, Hashed: true, Took: time.Second, Checks: []CountCheck{{Name: "files", Expected: 42, Found: 42}, {Name: "bytes", Expected: 2 << 20, Found: 2 << 20}}}).Text},
		{"failed_counts", (&VerifyError{Minion: "ghost", BackupID: "ghost/20250310T030041Z-dump", Check: CheckCounts,
			Result: &VerifyResult{Minion: "ghost", DBKind: "mysql", Recorded: true, Checks: []CountCheck{{Name: "posts", Expected: 120, Found: 118}, {Name: "users", Expected: 3, Found: -1}}},
			Cause:  errors.New("2 tables differ from the dump's counts")}).UserMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.AssertText(t, "verify_restore_"+tt.name, tt.text())
		})
	}
}
