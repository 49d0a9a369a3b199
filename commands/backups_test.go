package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
	"github.com/summoner-bot/summoner/internal/golden"
	"github.com/summoner-bot/summoner/storage"
)

// levels gives the test users of router_test.go their rights.
func levels(u chat.User) Level {
	switch u.ID {
	case alice.ID:
		return Admin
	case olga.ID:
		return Operator
	}
	return Everyone
}

// backupRouter serves the backup commands over repo with a fixed clock.
func backupRouter(t *testing.T, repo BackupRepo, now time.Time) (*Router, *chattest.Recorder) {
	t.Helper()
	rec := &chattest.Recorder{}
	reg, err := NewRegistry(backupCommands(repo, func() time.Time { return now })...)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		LevelOf: levels, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return rt, rec
}

func say(ctx context.Context, rt *Router, rec *chattest.Recorder, u chat.User, text string) (Outcome, string) {
	out := rt.Execute(ctx, chat.Message{ID: text, Text: text, User: u, Channel: ops})
	return out, rec.Last()
}

func TestBackupCommands(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	root := t.TempDir()
	repo, err := storage.NewRepository(storage.Options{
		Backends:  []storage.Backend{&storage.Local{Root: root}},
		Names:     []string{"home"},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:       func() time.Time { return now },
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
		user    chat.User
		text    string
		out     Outcome
		want    []string
		notWant []string
	}{
		{mel, "backups", OK, []string{"| id | age | size | where | verified |", "| " + id + " | 0s | ", "| home | at upload |"}, []string{root}},
		{mel, "backups ghost", OK, []string{"No backups yet."}, nil},
		{mel, "backups a b", Failed, []string{"Usage: `backups [minion]`"}, nil},
		{mel, "verify " + id, Refused, []string{"`verify` needs operator rights"}, nil},
		{olga, "verify " + id, OK, []string{id + ": all 1 copies are good.", "✓ home:", "both hashes match"}, []string{root}},
		{mel, "backups wekan", OK, []string{"| home | home ✓ 0s ago |"}, nil},
		{olga, "verify wekan/20200101T000000Z-dump", Failed, []string{"There is no backup wekan/20200101T000000Z-dump"}, nil},
		{olga, "verify", Failed, []string{"Usage: `verify <backup id>`"}, nil},
		{olga, "prune", Refused, []string{"`prune` needs admin rights, and you have operator rights"}, nil},
		{olga, "prune --dry-run", Refused, []string{"`prune` needs admin rights"}, nil},
		{alice, "prune --dry-run", OK, []string{"Nothing to prune"}, []string{"confirm"}},
		{alice, "prune", OK, []string{"Nothing to prune"}, []string{"confirm"}},
		{alice, "prune --now", Failed, []string{"Unknown option `--now`"}, nil},
		{alice, "prune now", Failed, []string{"Usage: `prune [--dry-run]`"}, nil},
	}
	rt, rec := backupRouter(t, repo, now)
	for _, tt := range tests {
		t.Run(tt.user.Username+" "+tt.text, func(t *testing.T) {
			out, reply := say(ctx, rt, rec, tt.user, tt.text)
			if out != tt.out {
				t.Errorf("outcome %s, want %s (reply %q)", out, tt.out, reply)
			}
			for _, w := range tt.want {
				if !strings.Contains(reply, w) {
					t.Errorf("reply %q lacks %q", reply, w)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(reply, w) {
					t.Errorf("reply %q shows %q", reply, w)
				}
			}
		})
	}
}

func TestPruneAsksFirstAndListsWhatGoes(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	o := storage.Options{
		Backends: []storage.Backend{&storage.Local{Root: t.TempDir()}},
		Names:    []string{"home"},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:      func() time.Time { return clock },
	}
	writer, err := storage.NewRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 3 {
		res, err := writer.Store(ctx, storage.Meta{Minion: "wekan", Kind: storage.KindDump}, strings.NewReader("rows"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.Manifest.ID)
		clock = clock.Add(24 * time.Hour)
	}
	o.Retention = storage.Retention{KeepLast: 1}
	repo, err := storage.NewRepository(o)
	if err != nil {
		t.Fatal(err)
	}
	listed := func() int {
		list, errs := repo.List(ctx, "")
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return len(list)
	}
	rt, rec := backupRouter(t, repo, clock)

	out, reply := say(ctx, rt, rec, alice, "prune --dry-run")
	if out != OK || !strings.Contains(reply, "Would remove 2 backup copies") {
		t.Fatalf("dry run: %s %q", out, reply)
	}
	out, reply = say(ctx, rt, rec, alice, "prune")
	if out != Pending {
		t.Fatalf("prune did not ask first: %s %q", out, reply)
	}
	for _, w := range []string{"This removes 2 backup copies for good; it cannot be undone", ids[0] + " on home", ids[1] + " on home"} {
		if !strings.Contains(reply, w) {
			t.Errorf("confirmation %q lacks %q", reply, w)
		}
	}
	if strings.Contains(reply, ids[2]) {
		t.Errorf("confirmation %q lists the newest backup, which stays", reply)
	}
	if n := listed(); n != 3 {
		t.Fatalf("%d backups left before the confirmation, want 3", n)
	}
	out, reply = say(ctx, rt, rec, alice, "confirm "+codeIn(t, reply))
	if out != OK || !strings.Contains(reply, "Removed 2 backup copies") {
		t.Fatalf("confirm: %s %q", out, reply)
	}
	if n := listed(); n != 1 {
		t.Fatalf("%d backups left after prune, want 1", n)
	}
	// With nothing to remove there is nothing to confirm.
	if out, reply = say(ctx, rt, rec, alice, "prune"); out != OK || !strings.Contains(reply, "Nothing to prune") {
		t.Fatalf("second prune: %s %q", out, reply)
	}
}

func TestBackupCommandsWithoutDestination(t *testing.T) {
	for _, text := range []string{"backups", "verify x", "prune", "prune --dry-run"} {
		t.Run(text, func(t *testing.T) {
			rt, rec := backupRouter(t, nil, time.Now())
			if out, reply := say(context.Background(), rt, rec, alice, text); out != Failed || !strings.Contains(reply, "No backup destination is configured") {
				t.Fatalf("%s %q", out, reply)
			}
		})
	}
}

// sftpHost, sftpUser and sftpPath are what a second server's errors show
// and members must never see.
const (
	sftpHost = "vault.example.org"
	sftpUser = "backup@"
	sftpPath = "/srv/backups"
	sftpName = "sftp:backup@vault.example.org:2222/srv/backups"
)

// backendErr is an error as the SFTP backend writes it.
func backendErr(doing string) error {
	return fmt.Errorf("%s /srv/backups/wekan on %s: ssh: handshake failed: dial tcp 10.0.0.5:2222: connect: connection refused", doing, sftpName)
}

// fakeRepo answers with fixed backups, checks and removals.
type fakeRepo struct {
	list     []storage.Backup
	listErrs []error
	manifest *storage.Manifest
	checks   []storage.CopyCheck
	verified storage.Verifications
	would    []storage.Removal // what a dry run lists
	removed  int               // how many of would a real prune removes before pruneErr
	pruneErr error
}

func (f *fakeRepo) List(context.Context, string) ([]storage.Backup, []error) {
	return f.list, f.listErrs
}

func (f *fakeRepo) Verify(context.Context, string) (*storage.Manifest, []storage.CopyCheck, error) {
	return f.manifest, f.checks, nil
}

func (f *fakeRepo) Prune(_ context.Context, _ string, dry bool) ([]storage.Removal, error) {
	if dry {
		return f.would, nil
	}
	return f.would[:f.removed], f.pruneErr
}

func (f *fakeRepo) Verifications() storage.Verifications { return f.verified }

var (
	home   = storage.Location{Destination: "home", Backend: "local:/var/backups"}
	second = storage.Location{Destination: "second-server", Backend: sftpName}
	box    = storage.Location{Destination: "dropbox", Backend: "dropbox:/summoner"}
)

// brokenSecond is three destinations where second-server's listing and
// reading fail, and dropbox holds a damaged copy.
func brokenSecond(now time.Time) *fakeRepo {
	m1 := &storage.Manifest{ID: "wekan/20261126T031500Z-dump", Created: now.Add(-6*time.Hour - 45*time.Minute),
		Stored: storage.Sum{Size: 3 << 20}, Payload: storage.Sum{Size: 41 << 20}, Encryption: []string{"age1…"}}
	m2 := &storage.Manifest{ID: "wiki/20261123T031500Z-cold", Created: now.Add(-75 * time.Hour), Stored: storage.Sum{Size: 788 << 10}}
	f := &fakeRepo{
		list: []storage.Backup{
			{Manifest: m1, Copies: []storage.Location{home, box}},
			{Manifest: m2, Copies: []storage.Location{home}},
		},
		listErrs: []error{&storage.DestinationError{Destination: "second-server", Op: storage.OpList, Err: backendErr("listing")}},
		verified: storage.Verifications{
			m1.ID + "@" + home.Backend: {At: now.Add(-2 * time.Hour), OK: true},
			m1.ID + "@" + box.Backend:  {At: now.Add(-2 * time.Hour), OK: false},
		},
		manifest: m1,
		checks: []storage.CopyCheck{
			{Location: home, Decrypted: true},
			{Location: second, Err: &storage.DestinationError{Destination: "second-server", Op: storage.OpRead, Err: backendErr("opening")}},
			{Location: box, Err: &storage.DestinationError{Destination: "dropbox", Op: storage.OpRead,
				Err: fmt.Errorf("stored bytes differ from the manifest: %w", storage.ErrDamaged)}},
		},
		removed:  2,
		pruneErr: &storage.DestinationError{Destination: "second-server", Op: storage.OpRemove, Err: backendErr("removing")},
	}
	for i := range 23 {
		at := []storage.Location{home, second}[i%2]
		reason := "retention"
		if i == 4 {
			reason = "incomplete"
		}
		f.would = append(f.would, storage.Removal{Location: at, ID: fmt.Sprintf("wekan/202610%02dT031500Z-dump", i+1), Reason: reason})
	}
	return f
}

// TestBackupRepliesKeepInternalsFromMembers renders every reply that can
// show a storage error, for a member and for an operator or admin, and
// compares them with testdata/backups_*.golden (go test ./commands -update
// rewrites them; review the diff).
func TestBackupRepliesKeepInternalsFromMembers(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	codeRE := regexp.MustCompile("`confirm [0-9]{6}`")
	// send runs one command and returns the reply; confirm also answers
	// the confirmation, so the reply is the prune's own.
	send := func(u chat.User, text string, confirm bool) string {
		rt, rec := backupRouter(t, brokenSecond(now), now)
		_, reply := say(ctx, rt, rec, u, text)
		if confirm {
			_, reply = say(ctx, rt, rec, u, "confirm "+codeIn(t, reply))
		}
		return codeRE.ReplaceAllString(reply, "`confirm 000000`")
	}
	f := brokenSecond(now)
	tests := []struct {
		name   string
		member bool
		reply  string
	}{
		{"list_member", true, send(mel, "backups", false)},
		{"list_operator", false, send(olga, "backups", false)},
		{"verify_operator", false, send(olga, "verify wekan/20261126T031500Z-dump", false)},
		// Members cannot run verify or prune; their replies are rendered
		// directly, so a change of rights can never leak.
		{"verify_member", true, renderVerify(f.manifest.ID, f.manifest, f.checks, Everyone)},
		{"prune_confirm", false, send(alice, "prune", false)},
		{"prune_stopped_admin", false, send(alice, "prune", true)},
		{"prune_stopped_member", true, pruneFailed(f.would[:2], f.pruneErr, Everyone).Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.AssertText(t, "backups_"+tt.name, tt.reply)
			for _, s := range []string{sftpHost, sftpUser, sftpPath, "10.0.0.5", "local:", "dropbox:/"} {
				if tt.member && strings.Contains(tt.reply, s) {
					t.Errorf("a member's reply shows %q:\n%s", s, tt.reply)
				}
			}
			if !tt.member && strings.Contains(tt.name, "stopped") && !strings.Contains(tt.reply, sftpHost) {
				t.Errorf("an admin's reply hides the cause:\n%s", tt.reply)
			}
		})
	}
}

// TestTroubleWithoutDestinationError covers an error that does not come
// from the repository's wrapping: members still see no detail.
func TestTroubleWithoutDestinationError(t *testing.T) {
	err := backendErr("listing")
	tests := []struct {
		lvl        Level
		what, want string
	}{
		{Everyone, "a backup destination failed", "An operator can see why."},
		{Operator, "a backup destination failed", "Cause: `" + err.Error() + "`"},
		{Admin, "a backup destination failed", "Cause: `" + err.Error() + "`"},
	}
	for _, tt := range tests {
		t.Run(tt.lvl.String(), func(t *testing.T) {
			what, detail := trouble(err, tt.lvl)
			if what != tt.what || detail != tt.want {
				t.Errorf("trouble = %q, %q; want %q, %q", what, detail, tt.what, tt.want)
			}
		})
	}
	if _, detail := trouble(errors.New("a `quoted` cause"), Admin); detail != "Cause: `a 'quoted' cause`" {
		t.Errorf("backticks in a cause break the code span: %q", detail)
	}
}
