package maintenance

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/golden"
	"github.com/summoner-bot/summoner/storage"
)

func TestReportRender(t *testing.T) {
	at := time.Date(2025, 3, 10, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rep  Report
	}{
		{
			name: "all_good",
			rep: Report{Job: "dump", Title: "the nightly dump", Started: at, Duration: 83 * time.Second, Results: []MinionResult{
				{Minion: "wekan", Action: ActionDump, Size: 12 << 20, Duration: 41 * time.Second, StoredOn: []string{"disk", "dropbox"}, Verified: true},
				{Minion: "ghost", Action: ActionDump, Size: 788 << 10, Duration: 300 * time.Millisecond, StoredOn: []string{"disk", "dropbox"}, Verified: true},
			}},
		},
		{
			name: "failures_first",
			rep: Report{Job: "dump", Title: "the nightly dump", Started: at, Duration: 5 * time.Minute, SkippedMore: 2, Results: []MinionResult{
				{Minion: "ghost", Action: ActionDump, Size: 3 << 20, Duration: 9 * time.Second, StoredOn: []string{"disk", "dropbox"}, Verified: true},
				{Minion: "wekan", Action: ActionDump, Duration: 2 * time.Second, Err: errors.New("mongodump exited with code 1:\nFailed: error connecting to db server: no reachable servers")},
				{Minion: "nextcloud", Action: ActionDump, Size: 40 << 20, Duration: 20 * time.Second, StoredOn: []string{"disk"}, MissedOn: []string{"dropbox"}, Verified: true},
			}},
		},
		{
			// Reports go to channels whose members may be plain members:
			// destination names and Summoner's words only, never a host, a
			// user, a path, a tool's output or a backend's message.
			name: "redacted",
			rep: Report{Job: "dump", Title: "the nightly dump", Started: at, Duration: 3 * time.Minute, Results: []MinionResult{
				{Minion: "wekan", Action: ActionDump, Err: fmt.Errorf("storing a dump of wekan: %w", fmt.Errorf("storing backup wekan/20250310T030000Z-dump: no destination got a good copy: %w",
					errors.Join(&storage.DestinationError{Destination: "offsite", Op: storage.OpSave, Err: errors.New("sftp: put /srv/backups/summoner/wekan/20250310T030000Z-dump/data.zst on summoner@backup.example.com:22: ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey]")})))},
				{Minion: "ghost", Action: ActionDump, Err: &DumpError{Op: "dump", DB: "mysql database ghost of ghost", Tool: "mysqldump", Reason: "mysqldump exited with code 2",
					Output: "mysqldump: Got error: 1045: Access denied for user 'ghost'@'172.18.0.3' (using password: YES)"}},
				{Minion: "nextcloud", Action: ActionColdBackup, Err: &ColdError{Minion: "nextcloud", Step: StepArchive, Cause: &userError{msg: "the data folder /srv/summoner/volumes/nextcloud/data is not a folder", pub: `its data folder "data" is not a folder`}}},
				{Minion: "shop", Action: ActionTestRestore, Err: &VerifyError{Minion: "shop", BackupID: "shop/20250309T020000Z-cold", Check: CheckChecksum,
					Cause: damaged("shop/20250309T020000Z-cold", &storage.DestinationError{Destination: "offsite", Op: storage.OpRead, Err: errors.New("sftp: open /srv/backups/summoner/shop/data.zst: no such file")})}},
				{Minion: "wiki", Action: ActionTestRestore, Err: &NoRoomError{Minion: "wiki", BackupID: "wiki/20250310T030000Z-dump", Where: "the disk of Docker's data root", Need: 5 << 30, Free: 2 << 30}},
				{Minion: "blog", Action: ActionDump, Err: errors.New("inspecting container abc123 on unix:///var/run/docker.sock: permission denied")},
				{Minion: "notes", Action: ActionDump, Size: 3 << 20, Duration: 9 * time.Second, StoredOn: []string{"disk"}, MissedOn: []string{"offsite"}, Verified: true},
			}},
		},
		{
			name: "run_failed",
			rep:  Report{Job: "prune", Title: "the prune of old backups", Started: at, Duration: time.Second, Err: errors.New("listing backups on disk: permission denied")},
		},
		{
			name: "nothing_to_do",
			rep:  Report{Job: "verify_restore", Title: "the weekly test restore", Started: at, Duration: 10 * time.Millisecond},
		},
		{
			name: "catch_up_prune",
			rep: Report{Job: "prune", Title: "the prune of old backups", Started: at, Duration: 2 * time.Second, CatchUpOf: at.Add(-90 * time.Minute), Results: []MinionResult{
				{Minion: "wekan", Action: ActionPrune, Detail: "removed 3 old backups", Duration: time.Second, StoredOn: []string{"disk"}},
			}},
		},
		{
			name: "skipped",
			rep:  Report{Job: "dump", Title: "the nightly dump", Started: at, Skipped: true},
		},
		{
			name: "missed",
			rep:  Report{Job: "cold_backup", Title: "the weekly cold backup", Started: at, MissedAt: at.Add(-50 * time.Hour), NextRun: at.Add(6 * 24 * time.Hour)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := tt.rep.Render()
			for _, leak := range []string{"example.com", "summoner@", "/srv/", "/var/", "ssh:", "Access denied", "172.18", "permission denied", "no such file", "abc123"} {
				if strings.Contains(out, leak) {
					t.Errorf("the report shows %q:\n%s", leak, out)
				}
			}
			golden.AssertText(t, "report_"+tt.name, out)
		})
	}
}

func TestReportFailuresComeFirst(t *testing.T) {
	rep := Report{Title: "the nightly dump", Results: []MinionResult{
		{Minion: "a", Action: ActionDump, StoredOn: []string{"disk"}},
		{Minion: "b", Action: ActionDump, Err: errors.New("boom")},
	}}
	out := rep.Render()
	if !rep.Failed() || !strings.HasPrefix(out, "⚠️") || strings.Index(out, "boom") > strings.Index(out, "| a |") {
		t.Fatalf("the failure is not first and loud:\n%s", out)
	}
}

func TestDigestRender(t *testing.T) {
	now := time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	dump := func(minion string, ago time.Duration, size int64) DigestBackup {
		return DigestBackup{Minion: minion, Kind: storage.KindDump, Created: now.Add(-ago), Size: size}
	}
	tests := []struct {
		name string
		d    Digest
	}{
		{
			name: "digest_healthy",
			d: Digest{Now: now, Minions: []string{"wekan"}, Backups: []DigestBackup{
				dump("wekan", 3*day+5*time.Hour, 10<<20), dump("wekan", 2*day+5*time.Hour, 11<<20), dump("wekan", day+5*time.Hour, 11<<20), dump("wekan", 5*time.Hour, 12<<20),
			}},
		},
		{
			name: "digest_warnings",
			d: Digest{Now: now, Minions: []string{"ghost", "wekan", "nextcloud"}, Backups: []DigestBackup{
				// wekan's newest dump is under half the one before.
				dump("wekan", 6*day, 9<<20), dump("wekan", 5*day, 10<<20), dump("wekan", 4*day, 11<<20), dump("wekan", 2*day, 12<<20), dump("wekan", 5*time.Hour, 5<<20),
				// nextcloud's newest backup is a cold one, four days old.
				dump("nextcloud", 5*day, 300<<20),
				{Minion: "nextcloud", Kind: storage.KindCold, Created: now.Add(-4 * day), Size: 3 << 30},
				// ghost has none.
			}},
		},
		{
			name: "digest_empty",
			d:    Digest{Now: now},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.AssertText(t, "report_"+tt.name, tt.d.Render())
		})
	}
}

func TestDigestShrinkFlag(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name  string
		sizes []int64 // oldest first
		flag  bool
	}{
		{"just under half", []int64{1000, 499}, true},
		{"exactly half", []int64{1000, 500}, false},
		{"grew", []int64{1000, 3000}, false},
		{"one dump", []int64{10}, false},
		{"shrank earlier, recovered", []int64{1000, 100, 900}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Digest{Now: now}
			for i, s := range tt.sizes {
				d.Backups = append(d.Backups, DigestBackup{Minion: "m", Kind: storage.KindDump, Created: now.Add(time.Duration(i-len(tt.sizes)) * time.Hour), Size: s})
			}
			if got := strings.Contains(d.Render(), "less than half"); got != tt.flag {
				t.Errorf("flagged = %v, want %v:\n%s", got, tt.flag, d.Render())
			}
		})
	}
}

func TestDigestBackupsOf(t *testing.T) {
	created := time.Date(2025, 3, 9, 3, 0, 0, 0, time.UTC)
	bs := []storage.Backup{
		{Manifest: &storage.Manifest{Minion: "wekan", Kind: storage.KindDump, Created: created, Payload: storage.Sum{Size: 42}}, Copies: []storage.Location{{Destination: "disk"}}},
		{Manifest: &storage.Manifest{Minion: "ghost", Kind: storage.KindDump, Created: created}}, // no copy left: not good
	}
	got := DigestBackupsOf(bs)
	if len(got) != 1 || got[0] != (DigestBackup{Minion: "wekan", Kind: storage.KindDump, Created: created, Size: 42}) {
		t.Fatalf("got %+v", got)
	}
}
