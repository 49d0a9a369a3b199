package outbox

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
)

// A caller that posts, crashes before recording it, and posts again after
// the restart must not double the message.
func TestPostOnceAcrossARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.db")
	s := &server{}
	s.setDown(true)
	ob := open(t, path, s)
	to := chat.Destination{ChannelID: "c1"}
	ref1, fresh, err := ob.PostOnce(ctx, "ev1/recipe/0", to, "pipeline failed")
	if err != nil || !fresh {
		t.Fatalf("first PostOnce = %v, %v", fresh, err)
	}
	if _, fresh, _ := ob.PostOnce(ctx, "ev1/recipe/0", to, "pipeline failed"); fresh {
		t.Fatal("the same key was posted twice")
	}
	if err := ob.Close(20 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	s.setDown(false)
	ob = open(t, path, s)
	defer ob.Close(time.Second)
	ref2, fresh, err := ob.PostOnce(ctx, "ev1/recipe/0", to, "pipeline failed")
	if err != nil || fresh || ref2 != ref1 {
		t.Fatalf("after restart PostOnce = %v, %v, %v; want the first post back", ref2, fresh, err)
	}
	if _, fresh, _ := ob.PostOnce(ctx, "ev2/recipe/0", to, "fixed"); !fresh {
		t.Fatal("a new key was not posted")
	}
	waitUntil(t, "delivery", drained(ob))
	if got := strings.Join(s.texts("c1"), "|"); got != "pipeline failed|fixed" {
		t.Fatalf("posts %q, want each once, in order", got)
	}
}
