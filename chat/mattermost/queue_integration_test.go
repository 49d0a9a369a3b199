package mattermost_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

// TestBusyBotAnswersAtOnce: with every worker held by a command that
// blocks, a new command is told at once that the bot is busy (queued, or
// refused when the queue is full), and the queued one still gets its
// answer once a worker frees up.
func TestBusyBotAnswersAtOnce(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch := e.NewChannel(t)
	b := startBot(t, e, filepath.Join(t.TempDir(), "state.json"), func(s *botSetup) {
		s.queue = &commands.QueueOptions{Workers: 2, Size: 1}
	})
	member := e.Client(t, e.Member)

	holds := []string{say(t, e, member, ch.Id, "hold").Id, say(t, e, member, ch.Id, "hold").Id}
	waitFor(t, "both workers to be held", func() bool { running, _ := b.queue.Depth(); return running == 2 })

	start := time.Now()
	queued := say(t, e, member, ch.Id, "ping")
	r := mmtest.WaitReply(t, member, queued, wait)
	took := time.Since(start)
	if !strings.Contains(r.Message, "I'm busy: 2 commands are ahead of this one. It is queued") {
		t.Fatalf("the command behind two held workers was told %q", r.Message)
	}
	refused := say(t, e, member, ch.Id, "ping")
	if r := mmtest.WaitReply(t, member, refused, wait); !strings.Contains(r.Message, "I'm busy: 3 commands are ahead of this one (2 running, 1 waiting), and my queue is full") {
		t.Fatalf("the command over the queue's size was told %q", r.Message)
	}
	// Both answers came while the workers were still held.
	if running, _ := b.queue.Depth(); running != 2 {
		t.Fatalf("%d commands running, want the 2 held ones", running)
	}
	t.Logf("busy reply seen by the member %v after posting", took.Round(time.Millisecond))

	close(b.release)
	mmtest.WaitEdited(t, member, r.Id, wait, func(s string) bool { return s == "pong" })
	settle(t, e, member, ch.Id)
	for _, id := range holds {
		p, _, err := member.GetPost(id, "")
		if err != nil {
			t.Fatal(err)
		}
		answeredOnce(t, b, member, p, 1)
	}
	answeredOnce(t, b, member, queued, 1)
	answeredOnce(t, b, member, refused, 1)
}
