package mattermost_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/internal/mmtest"
)

// A busy channel while the bot is down: 1,500 posts, one command among
// them, after the first 1,100 and before the last 399. The server answers
// "?since=" with 1,000 of the posts (in practice the oldest), and its
// newest page holds 200, so only reading every page finds it. It is
// answered once, and a second start answers nothing again.
func TestCatchUpFindsACommandAmongThousandsOfMissedPosts(t *testing.T) {
	e := mmtest.FromEnv(t)
	ch, state, member, _ := away(t, e)
	chatter := func(from, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("chatter %d while the bot is away", from+i)
		}
		return out
	}
	began := time.Now()
	mmtest.PostMany(t, member, ch.Id, chatter(0, 1100), 8)
	cmd := say(t, e, member, ch.Id, "whoami")
	mmtest.PostMany(t, member, ch.Id, chatter(1101, 399), 8)
	t.Logf("posted 1,500 posts in %v", time.Since(began).Round(time.Millisecond))
	answeredOnceOverRestarts(t, e, ch, state, member, cmd)
}
