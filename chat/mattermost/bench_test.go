package mattermost_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/internal/mmtest"
)

// BenchmarkCommandLatency measures, against the real server, the bot's own
// time per command (websocket frame received to reply about to be sent) and
// the member's round trip (post sent to the bot's reply seen on the
// member's websocket). It reports p50 and p99 of both, side by side for
// replies posted directly and for the daemon's path: the command queue and
// the persistent outbox.
func BenchmarkCommandLatency(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchLatency(b, nil) })
	b.Run("outbox", func(b *testing.B) { benchLatency(b, &commands.QueueOptions{}) })
}

func benchLatency(b *testing.B, queue *commands.QueueOptions) {
	e := mmtest.FromEnv(b)
	ch := e.NewChannel(b)
	bot := startBot(b, e, filepath.Join(b.TempDir(), "state.json"), func(s *botSetup) { s.queue = queue })
	member := e.Client(b, e.Member)

	var mu sync.Mutex
	received := map[string]time.Time{}
	own := map[string]time.Duration{}
	bot.onHandle = func(m chat.Message) {
		mu.Lock()
		received[m.ID] = m.Received
		mu.Unlock()
	}
	bot.onReply = func(m chat.Message, sending time.Time) {
		mu.Lock()
		if at, ok := received[m.ID]; ok {
			own[m.ID] = sending.Sub(at)
		}
		mu.Unlock()
	}

	ws, err := model.NewWebSocketClient4(strings.Replace(e.URL, "http", "ws", 1), member.AuthToken)
	if err != nil {
		b.Fatal(err)
	}
	ws.Listen()
	defer ws.Close()
	replies := make(chan string, 16) // IDs of the posts the bot answered
	go func() {
		for {
			select {
			case ev, ok := <-ws.EventChannel:
				if !ok {
					return
				}
				if ev.EventType() != model.WebsocketEventPosted {
					continue
				}
				var p model.Post
				if json.Unmarshal([]byte(ev.GetData()["post"].(string)), &p) == nil {
					if id, ok := p.GetProp(mmtest.ReplyProp).(string); ok {
						replies <- id
					}
				}
			case <-ws.ResponseChannel:
			case <-ws.PingTimeoutChannel:
			}
		}
	}()

	var trips []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		p := mmtest.Post(b, member, ch.Id, "", "@"+e.BotUsername+" ping")
		timeout := time.After(10 * time.Second)
	wait:
		for {
			select {
			case id := <-replies:
				if id == p.Id {
					break wait
				}
			case <-timeout:
				b.Fatal("no reply within 10 s")
			}
		}
		trips = append(trips, time.Since(start))
	}
	b.StopTimer()

	mu.Lock()
	var mine []time.Duration
	for _, d := range own {
		mine = append(mine, d)
	}
	mu.Unlock()
	report := func(name string, ds []time.Duration) {
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, name+"-p50-ms")
		b.ReportMetric(float64(ds[(len(ds)*99)/100].Microseconds())/1000, name+"-p99-ms")
	}
	report("bot", mine)
	report("roundtrip", trips)
}
