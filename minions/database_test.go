package minions_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/summoner-bot/summoner/minions"
)

func fakePassword(t *testing.T, fx *fakeFixture) string {
	t.Helper()
	data, err := os.ReadFile(fx.stateFile)
	if err != nil {
		t.Fatal(err)
	}
	var st minions.State
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	pw := st.Secrets["DB_PASSWORD"]
	if len(pw) < 16 {
		t.Fatalf("no generated DB_PASSWORD in the state: %q", pw)
	}
	return pw
}

func TestDatabaseFindsContainerAndCredentials(t *testing.T) {
	fx := newFakeFixture(t, 5*time.Second)
	db, err := fx.e.Database(context.Background(), testMinion)
	if err != nil {
		t.Fatal(err)
	}
	st := fx.f.state()
	want := minions.RunningDatabase{
		Minion: testMinion, Kind: "postgres", Service: "db", ContainerID: st[fakeDB].ID, Container: fakeDB,
		Image: "postgres:15.10", Name: "appdb", User: "app", Password: fakePassword(t, fx),
	}
	got := *db
	got.Images, got.Secrets = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Database = %s (id %s, image %s, user %s), want %s (id %s, image %s, user %s)", got, got.ContainerID, got.Image, got.User, want, want.ContainerID, want.Image, want.User)
	}
	if got.Password != want.Password {
		t.Error("Database did not give the generated password")
	}
	if db.Images["web"] == "" || db.Images["db"] == "" {
		t.Errorf("images of the last deployment missing: %v", db.Images)
	}
	if len(db.Secrets) == 0 || db.Secrets[0] != want.Password {
		t.Errorf("the password is not among the secrets to redact")
	}

	// Whatever prints it, the password stays out.
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("dumping", "db", db, "value", *db)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("dumping", "db", db)
	for _, s := range []string{fmt.Sprint(db), fmt.Sprintf("%v %+v %#v %s", *db, *db, *db, *db), logged.String(), fmt.Errorf("dumping %v: %w", db, errors.New("x")).Error()} {
		if strings.Contains(s, want.Password) {
			t.Errorf("the password shows in %q", s)
		}
	}
}

func TestDatabaseRefusals(t *testing.T) {
	fx := newFakeFixture(t, 5*time.Second)
	ctx := context.Background()
	for _, tc := range []struct {
		name, minion, want string
		setup              func()
	}{
		{name: "unknown minion", minion: "nope", want: "no minion called"},
		{name: "database stopped", minion: testMinion, want: "The database of testmin is not running", setup: func() {
			if err := fx.f.ContainerStop(ctx, fakeDB, container.StopOptions{}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			_, err := fx.e.Database(ctx, tc.minion)
			var ue *minions.Error
			if !errors.As(err, &ue) || !strings.Contains(ue.UserMessage(), tc.want) {
				t.Fatalf("err = %v, want a user error with %q", err, tc.want)
			}
		})
	}
}

func TestStopAndStartAppLeaveTheDatabaseRunning(t *testing.T) {
	fx := newFakeFixture(t, 5*time.Second)
	ctx := context.Background()
	var steps []string
	progress := func(s string) { steps = append(steps, s) }

	if err := fx.e.StopApp(ctx, testMinion, progress); err != nil {
		t.Fatal(err)
	}
	st := fx.f.state()
	if st[fakeWeb].Status != container.StateExited || st[fakeDB].Status != container.StateRunning {
		t.Fatalf("after StopApp: web %s, db %s; want exited, running", st[fakeWeb].Status, st[fakeDB].Status)
	}
	if err := fx.e.StartApp(ctx, testMinion, progress); err != nil {
		t.Fatal(err)
	}
	st = fx.f.state()
	if st[fakeWeb].Status != container.StateRunning || st[fakeDB].Status != container.StateRunning {
		t.Fatalf("after StartApp: web %s, db %s; want both running", st[fakeWeb].Status, st[fakeDB].Status)
	}
	joined := strings.Join(steps, "\n")
	for _, w := range []string{"Stopping " + fakeWeb, "Starting " + fakeWeb, fakeWeb + " answers"} {
		if !strings.Contains(joined, w) {
			t.Errorf("progress lacks %q:\n%s", w, joined)
		}
	}
	if strings.Contains(joined, fakeDB) {
		t.Errorf("the database was touched:\n%s", joined)
	}
	// Starting an app that already runs only checks it.
	if err := fx.e.StartApp(ctx, testMinion, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLockRefusesASecondChange(t *testing.T) {
	fx := newFakeFixture(t, 5*time.Second)
	release, err := fx.e.Lock(testMinion, "restore")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fx.e.Summon(context.Background(), testMinion, "", nil, nil); !errors.Is(err, minions.ErrBusy) || !strings.Contains(err.Error(), "restore of testmin is already in progress") {
		t.Fatalf("summon during a restore: %v", err)
	}
	release()
	if _, err := fx.e.Summon(context.Background(), testMinion, "", nil, nil); err != nil {
		t.Fatalf("summon after the restore: %v", err)
	}
}
