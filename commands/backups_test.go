package commands

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
	"github.com/summoner-bot/summoner/storage"
)

func TestBackupCommands(t *testing.T) {
	ctx := context.Background()
	repo, err := storage.NewRepository(storage.Options{
		Backends:  []storage.Backend{&storage.Local{Root: t.TempDir()}},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		VerifyLog: t.TempDir() + "/verified.json",
	})
	if err != nil {
		t.Fatal(err)
	}
	res, err := repo.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump}, strings.NewReader(strings.Repeat("row\n", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Manifest.ID
	tests := []struct {
		text string
		want []string
	}{
		{"backups", []string{"| id | age | size | where | verified |", "| " + id + " | ", "local:", "at upload"}},
		{"backups ghost", []string{"No backups yet."}},
		{"verify " + id, []string{id + ": all 1 copies are good.", "✓ local:", "both hashes match"}},
		{"backups wekan", []string{"✓ 0s ago"}},
		{"verify wekan/20200101T000000Z-dump", []string{"There is no backup wekan/20200101T000000Z-dump"}},
		{"verify", []string{"Usage: `verify <backup id>`"}},
		{"prune --dry-run", []string{"Nothing to prune"}},
		{"prune --now", []string{"Unknown option `--now`"}},
	}
	rec := &chattest.Recorder{}
	reg, _ := NewRegistry(BackupCommands(repo)...)
	rt, err := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		LevelOf: func(chat.User) Level { return Admin }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			rt.Execute(ctx, chat.Message{ID: tt.text, Text: tt.text, User: chat.User{ID: "u", Username: "alice"}, Channel: chat.Channel{ID: "c", Name: "ops"}})
			for _, w := range tt.want {
				if !strings.Contains(rec.Last(), w) {
					t.Errorf("reply %q lacks %q", rec.Last(), w)
				}
			}
		})
	}
}

func TestBackupCommandsWithoutDestination(t *testing.T) {
	rec := &chattest.Recorder{}
	reg, _ := NewRegistry(BackupCommands(nil)...)
	rt, _ := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rt.Execute(context.Background(), chat.Message{Text: "backups", User: chat.User{ID: "u"}})
	if !strings.Contains(rec.Last(), "No backup destination is configured") {
		t.Fatalf("reply %q", rec.Last())
	}
}
