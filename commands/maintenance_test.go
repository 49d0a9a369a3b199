package commands

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
	"github.com/summoner-bot/summoner/internal/golden"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

// fakeMaintenance records calls; the service itself is tested on Docker.
type fakeMaintenance struct {
	calls   []string
	failFor string
}

func (f *fakeMaintenance) Dump(_ context.Context, minion string, progress minions.Progress) (*maintenance.DumpResult, error) {
	f.calls = append(f.calls, "dump "+minion)
	if minion == f.failFor {
		return nil, userErr{"the dump of " + minion + " failed: pg_dump exited with code 1"}
	}
	progress("Dumping…")
	return &maintenance.DumpResult{StoreResult: &storage.StoreResult{
		Manifest: &storage.Manifest{ID: minion + "/20261130T030000Z-dump", Minion: minion, Payload: storage.Sum{Size: 3 << 20}, Stored: storage.Sum{Size: 1 << 20}},
		Copies:   []storage.Copy{{Location: storage.Location{Destination: "disk"}}, {Location: storage.Location{Destination: "offsite"}, Err: errors.New("down")}},
	}, Took: 1200 * time.Millisecond}, nil
}

func (f *fakeMaintenance) ColdBackup(_ context.Context, minion string, _ minions.Progress) (*maintenance.ColdResult, error) {
	f.calls = append(f.calls, "backup "+minion)
	return &maintenance.ColdResult{StoreResult: &storage.StoreResult{
		Manifest: &storage.Manifest{ID: minion + "/20261130T040000Z-cold", Minion: minion, Payload: storage.Sum{Size: 40 << 20}, Stored: storage.Sum{Size: 10 << 20}},
		Copies:   []storage.Copy{{Location: storage.Location{Destination: "disk"}}},
	}, Took: 9 * time.Second, Downtime: 7 * time.Second}, nil
}

func (f *fakeMaintenance) RestoreCold(_ context.Context, minion, id string, _ minions.Progress) (*maintenance.RestoreResult, error) {
	f.calls = append(f.calls, "restore-cold "+minion+" "+id)
	return &maintenance.RestoreResult{Minion: minion, BackupID: id, SafetyID: minion + "/20261130T100000Z-cold", Took: 9 * time.Second}, nil
}

func (f *fakeMaintenance) VerifyRestore(_ context.Context, minion, id string, _ minions.Progress) (*maintenance.VerifyResult, error) {
	f.calls = append(f.calls, "verify-restore "+minion+" "+id)
	return nil, userErr{"❌ The test restore of " + minion + " FAILED at the checksum."}
}

func (f *fakeMaintenance) Restore(_ context.Context, minion, id string, _ minions.Progress) (*maintenance.RestoreResult, error) {
	f.calls = append(f.calls, "restore "+minion+" "+id)
	return &maintenance.RestoreResult{Minion: minion, BackupID: id, SafetyID: minion + "/20261130T100000Z-dump", Took: 4 * time.Second}, nil
}

// backupsOf lists two dumps and a cold backup of wekan.
type backupsOf struct{ BackupRepo }

func (backupsOf) List(_ context.Context, minion string) ([]storage.Backup, []error) {
	at := func(h int) time.Time { return time.Date(2026, 11, 29, h, 0, 0, 0, time.UTC) }
	if minion != "wekan" {
		return nil, nil
	}
	return []storage.Backup{
		{Manifest: &storage.Manifest{ID: "wekan/20261129T010000Z-dump", Kind: storage.KindDump, Created: at(1)}},
		{Manifest: &storage.Manifest{ID: "wekan/20261129T030000Z-dump", Kind: storage.KindDump, Created: at(3)}},
		{Manifest: &storage.Manifest{ID: "wekan/20261129T050000Z-cold", Kind: storage.KindCold, Created: at(5)}},
	}, nil
}

// statusEngine: wekan (with a database) and statik (without) run.
type statusEngine struct{ MinionEngine }

func (statusEngine) Status(context.Context, string) ([]minions.MinionStatus, error) {
	return []minions.MinionStatus{{Name: "statik"}, {Name: "wekan"}}, nil
}

func (statusEngine) Catalog() *minions.Catalog {
	cat, err := minions.LoadCatalog("")
	if err != nil {
		panic(err)
	}
	return cat
}

func TestMaintenanceCommands(t *testing.T) {
	tests := []struct {
		text  string
		level Level
		calls string
		reply string
	}{
		{"dump wekan", Operator, "dump wekan", "Dumped wekan: wekan/20261130T030000Z-dump (3 MiB, 1 MiB stored), checked and stored on disk in 1.2s. ⚠️ offsite did not get a copy; `backups wekan` shows why."},
		{"dump all", Operator, "dump wekan", "Dumped wekan"},
		{"dump ghost", Operator, "dump ghost", "the dump of ghost failed: pg_dump exited with code 1"},
		{"dump", Operator, "", "Usage: `dump <minion>|all`"},
		{"verify-restore wekan", Operator, "verify-restore wekan ", "❌ The test restore of wekan FAILED at the checksum."},
		{"verify-restore", Operator, "", "Usage: `verify-restore <minion> [backup id]`"},
		{"restore wekan", Operator, "", "`restore` needs admin rights"},
		{"restore wekan", Admin, "", "⚠️ This stops wekan and replaces every file of its data folders with the cold backup wekan/20261129T050000Z-cold."},
		{"backup wekan", Operator, "backup wekan", "Cold backup of wekan stored: wekan/20261130T040000Z-cold (40 MiB, 10 MiB stored) on disk; wekan was stopped for 7s."},
		{"restore wekan wekan/20261129T010000Z-dump", Admin, "", "⚠️ This replaces the current data of wekan with the backup wekan/20261129T010000Z-dump."},
		{"restore wekan ghost/x", Admin, "", "The backup ghost/x is not one of wekan's"},
		{"restore ghost", Admin, "", "ghost has no backup to restore. `dump ghost` or `backup ghost` takes one."},
	}
	for _, tt := range tests {
		t.Run(tt.text+" as "+tt.level.String(), func(t *testing.T) {
			fm := &fakeMaintenance{failFor: "ghost"}
			rec := &chattest.Recorder{}
			reg, err := NewRegistry(MaintenanceCommands(fm, statusEngine{}, backupsOf{}, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			rt, err := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
				LevelOf: func(chat.User) Level { return tt.level }})
			if err != nil {
				t.Fatal(err)
			}
			rt.Execute(context.Background(), chat.Message{ID: "m", Text: tt.text, User: chat.User{ID: "u", Username: "alice"}, Channel: chat.Channel{ID: "c", Name: "ops"}})
			if got := strings.Join(fm.calls, ";"); got != tt.calls {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			if !strings.Contains(rec.Last(), tt.reply) {
				t.Errorf("reply %q, want it to contain %q", rec.Last(), tt.reply)
			}
		})
	}
}

func TestRestoreAfterConfirmationNamesTheSafetyDump(t *testing.T) {
	fm := &fakeMaintenance{}
	rec := &chattest.Recorder{}
	reg, _ := NewRegistry(MaintenanceCommands(fm, statusEngine{}, backupsOf{}, nil)...)
	rt, _ := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		LevelOf: func(chat.User) Level { return Admin }})
	m := chat.Message{ID: "m", Text: "restore wekan wekan/20261129T030000Z-dump", User: chat.User{ID: "u", Username: "alice"}, Channel: chat.Channel{ID: "c", Name: "ops"}}
	if out := rt.ExecuteConfirmed(context.Background(), m); out != OK {
		t.Fatalf("outcome %s: %q", out, rec.Last())
	}
	want := "wekan runs on the data of wekan/20261129T030000Z-dump again (took 4s). The data it had just before are kept as wekan/20261130T100000Z-dump: `restore wekan wekan/20261130T100000Z-dump` undoes this."
	if rec.Last() != want || strings.Join(fm.calls, ";") != "restore wekan wekan/20261129T030000Z-dump" {
		t.Fatalf("reply %q after %v", rec.Last(), fm.calls)
	}
}

func TestRenderSchedules(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	got := renderSchedules([]maintenance.ScheduleInfo{
		{Name: "dump", Spec: "0 3 * * *", Default: "0 3 * * *", Next: now.Add(15 * time.Hour), LastRun: now.Add(-9 * time.Hour)},
		{Name: "prune", Spec: "*/30 * * * * *", Default: "30 4 * * *", Changed: true, Next: now.Add(30 * time.Second), LastRun: now.Add(-time.Hour), LastFailed: true},
		{Name: "digest", Spec: "off", Default: "0 8 * * 1"},
	}, now)
	golden.AssertText(t, "schedule_list", got)
}

func TestRestoreOfAColdBackupUsesTheColdRestore(t *testing.T) {
	fm := &fakeMaintenance{}
	rec := &chattest.Recorder{}
	reg, _ := NewRegistry(MaintenanceCommands(fm, statusEngine{}, backupsOf{}, nil)...)
	rt, _ := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		LevelOf: func(chat.User) Level { return Admin }})
	m := chat.Message{ID: "m", Text: "restore wekan", User: chat.User{ID: "u", Username: "alice"}, Channel: chat.Channel{ID: "c", Name: "ops"}}
	if out := rt.ExecuteConfirmed(context.Background(), m); out != OK {
		t.Fatalf("outcome %s: %q", out, rec.Last())
	}
	if got := strings.Join(fm.calls, ";"); got != "restore-cold wekan wekan/20261129T050000Z-cold" {
		t.Fatalf("calls %q: the newest backup is the cold one", got)
	}
}
