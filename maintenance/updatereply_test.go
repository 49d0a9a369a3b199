package maintenance_test

import (
	"context"
	"errors"
	"regexp"
	"testing"

	"github.com/summoner-bot/summoner/internal/golden"
	"github.com/summoner-bot/summoner/minions"
)

// rollingBack is an update that fails and is rolled back to 1.0.
type rollingBack struct{}

func (rollingBack) Update(_ context.Context, name, _ string, _ minions.Progress) (*minions.Result, error) {
	res := &minions.Result{Minion: name, Version: "1.0", Previous: "1.0", RolledBack: true}
	return res, &minions.UpdateError{Result: res, Cause: &minions.Error{Msg: "testmin-x.test stopped right after starting (exit code 1)"}}
}

// backupTime is the time in a backup's id, which the clock sets, and the
// suffix of a second backup within the same second.
var backupTime = regexp.MustCompile(`/[0-9]{8}T[0-9]{6}Z-(dump|cold)(-[0-9]+)?`)

// What update says when it took a dump first and the update failed: the
// data put back, putting them back failed too, or the dump itself failed
// and nothing was updated (commands/testdata/reply_update_* has the
// replies without a dump).
func TestSafeUpdateReplies(t *testing.T) {
	tests := []struct {
		golden string
		answer func(cmd []string) fakeRun
	}{
		{"update_rolled_back_data_put_back", (&pgScript{outs: [][]byte{dumpN(0), dumpN(1)}}).answer},
		{"update_rolled_back_put_back_failed", (&pgScript{outs: [][]byte{dumpN(0), dumpN(1)}, restoreExits: []int{1, 1}}).answer},
		{"update_dump_failed", answerFor("pg_dump", fakeRun{exitCode: 1, stderr: "pg_dump: error: connection to server failed\n"})},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			f := newFixture(t, "postgres", tt.answer)
			_, err := f.s.Update(context.Background(), rollingBack{}, "testmin", "1.1", true, nil)
			if err == nil {
				t.Fatal("the update succeeded")
			}
			var um interface{ UserMessage() string }
			if !errors.As(err, &um) {
				t.Fatalf("error %v (%T) has no message for the user", err, err)
			}
			golden.AssertText(t, tt.golden, backupTime.ReplaceAllString(um.UserMessage(), "/<time>-$1"))
		})
	}
}
