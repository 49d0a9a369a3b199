package notifications

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/summoner-bot/summoner/internal/golden"
)

// The Docker alerts as they reach chat: each golden file holds the
// alert's title, a blank line, then its text (what the default recipe
// posts).
func TestWatcherAlertTexts(t *testing.T) {
	const id, name, minion = "c0ffee0123456789abcdef", "testmin-web", "testmin"
	tests := []struct {
		golden string
		tune   func(o *WatcherOptions)
		// alert sends the events and returns the alert they give.
		alert func(h *watchHarness) Event
	}{
		{"alert_died", nil, func(h *watchHarness) Event {
			h.send(h.msg(events.ActionStart, id, name, minion), h.msg(events.ActionDie, id, name, minion, "exitCode=1"))
			return only(h, h.settle())
		}},
		{"alert_died_out_of_memory", nil, func(h *watchHarness) Event {
			h.send(h.msg(events.ActionOOM, id, name, minion), h.msg(events.ActionDie, id, name, minion, "exitCode=137"))
			return only(h, h.settle())
		}},
		{"alert_unhealthy", nil, func(h *watchHarness) Event {
			h.fd.setInspect(id, true, container.Unhealthy, false)
			h.send(h.msg(events.ActionHealthStatusUnhealthy, id, name, minion))
			return only(h, h.settle())
		}},
		{"alert_crash_loop", func(o *WatcherOptions) { o.Window = 10 * time.Minute }, func(h *watchHarness) Event {
			for range 5 {
				h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"), h.msg(events.ActionStart, id, name, minion))
				h.clock.Advance(time.Second)
			}
			only(h, h.settle())
			h.clock.Advance(10 * time.Minute)
			return h.next() // the window's summary
		}},
		{"alert_recovered", nil, func(h *watchHarness) Event {
			h.fd.setInspect(id, true, "", false)
			h.send(h.msg(events.ActionDie, id, name, minion, "exitCode=1"), h.msg(events.ActionStart, id, name, minion))
			only(h, h.sync())
			h.timers.fire(testStable)
			return only(h, h.sync())
		}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			h := startWatch(t, tt.tune)
			h.fd.setLogs(id, false, "testapp 1.0 starting", "testapp 1.0: config error: APP_MODE is not set")
			ev := tt.alert(h)
			golden.AssertText(t, tt.golden, ev.Title+"\n\n"+ev.Text)
		})
	}
}

// only is the one alert of evs.
func only(h *watchHarness, evs []Event) Event {
	h.t.Helper()
	if len(evs) != 1 {
		h.t.Fatalf("alerts %v (%q), want one", types(evs), titles(evs))
	}
	return evs[0]
}
