package commands

import (
	"context"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
)

// buttonPoster records the confirmation requests that would get buttons.
type buttonPoster struct {
	*chattest.Recorder
	asked []string // codes
}

func (b *buttonPoster) ReplyConfirm(ctx context.Context, m chat.Message, text, code string) (chat.PostRef, error) {
	b.asked = append(b.asked, code)
	return b.Reply(ctx, m, text)
}

func TestConfirmationButtons(t *testing.T) {
	f := newFixture(t)
	bp := &buttonPoster{Recorder: f.rec}
	f.rt.o.Poster = bp

	out, reply := f.say(olga, ops, "purge wekan")
	if out != Pending || len(bp.asked) != 1 || !strings.Contains(reply, "`confirm "+bp.asked[0]+"`") {
		t.Fatalf("%s %q, buttons for %v", out, reply, bp.asked)
	}
	code := bp.asked[0]

	t.Run("check does not use the code", func(t *testing.T) {
		if err := f.rt.CheckConfirmation(code, alice.ID); err == nil || !strings.Contains(err.Error(), "belongs to @olga") {
			t.Fatalf("a stranger's check: %v", err)
		}
		for range 2 {
			if err := f.rt.CheckConfirmation(code, olga.ID); err != nil {
				t.Fatal(err)
			}
		}
		if len(f.ran) != 0 {
			t.Fatalf("ran: %v", f.ran)
		}
	})
	t.Run("only the owner cancels", func(t *testing.T) {
		if _, err := f.rt.CancelConfirmation(code, alice.ID); err == nil {
			t.Fatal("a stranger cancelled")
		}
		name, err := f.rt.CancelConfirmation(code, olga.ID)
		if err != nil || name != "purge" {
			t.Fatalf("cancel: %q %v", name, err)
		}
		if out, reply := f.say(olga, ops, "confirm "+code); out != Failed || !strings.Contains(reply, "No command is waiting") {
			t.Fatalf("confirm after cancel: %s %q", out, reply)
		}
		if len(f.ran) != 0 || !strings.Contains(f.logs.String(), "result=cancelled") {
			t.Fatalf("ran %v; log:\n%s", f.ran, f.logs)
		}
	})
}
