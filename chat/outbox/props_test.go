package outbox

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
)

// A reply with buttons keeps them through an outage and a restart; an edit
// changes its text only.
func TestReplyWithPropsSurvivesARestart(t *testing.T) {
	s := &server{}
	s.setDown(true)
	path := filepath.Join(t.TempDir(), "out.db")
	ob := open(t, path, s)
	m := chat.Message{ID: "cmd1", Channel: chat.Channel{ID: "c1"}}
	props := map[string]any{"attachments": []any{map[string]any{"text": "sure?"}}}
	ref, err := ob.ReplyWithProps(ctx, m, "⚠️ This deletes everything.", props)
	if err != nil {
		t.Fatal(err)
	}
	if err := ob.Update(ctx, ref, "⚠️ This deletes everything, really."); err != nil {
		t.Fatal(err)
	}
	if err := ob.Close(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}

	s.setDown(false)
	ob = open(t, path, s)
	defer ob.Close(time.Second)
	waitUntil(t, "delivery", drained(ob))
	p := s.first("c1")
	if p.Text != "⚠️ This deletes everything, really." || p.ReplyTo != "cmd1" {
		t.Fatalf("delivered %+v", p)
	}
	att, _ := p.Props["attachments"].([]any)
	if len(att) != 1 {
		t.Fatalf("the buttons were lost: props %v", p.Props)
	}
	plain, _ := ob.Reply(ctx, m, "plain")
	_ = plain
	waitUntil(t, "delivery", drained(ob))
	if ps := s.posts; len(ps) != 2 || ps[1].Props != nil {
		t.Fatalf("a plain reply got props: %+v", ps[len(ps)-1])
	}
}
