package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/internal/human"
)

// Hooks is the webhook centre as the hooks commands see it.
type Hooks interface {
	Overview(ctx context.Context) HooksOverview
	// Test renders what recipe would do with a sample event (a built-in
	// sample's name, or a JSON payload), doing nothing.
	Test(ctx context.Context, recipe, sample string) (HookPreview, error)
}

// HooksOverview lists sources and recipes.
type HooksOverview struct {
	Sources []HookSourceInfo
	Recipes []HookRecipeInfo
}

// HookSourceInfo is one webhook source and its last delivery.
type HookSourceInfo struct {
	Name, Kind string
	URL        string // where the provider sends (secrets masked)
	Last       time.Time
	LastStatus int    // HTTP status of the last delivery; 0: none yet
	LastReason string // "accepted", "signature check failed", ...
	Internal   bool   // fed by Summoner itself (docker, maintenance)
}

// HookRecipeInfo is one recipe and its last run.
type HookRecipeInfo struct {
	Name, Source string
	Filters      string   // "events pipeline, branches main, only on change"
	Actions      []string // "post to ~dev", "run `update shop` as operator", "forward to https://…"
	Last         time.Time
	LastEvent    string       // what the last event was, in a few words
	LastErr      string       // "" when it ran through
	LastState    HookRunState // when LastErr is ""
	Waiting      []HookWaiting
	Replaced     *HookReplaced // the latest waiting run a newer one replaced
	Builtin      bool
}

// HookRunState is where a recipe's last run is, when it did not fail.
type HookRunState int

const (
	// HookDone: every action ran, and its commands finished.
	HookDone HookRunState = iota
	// HookQueueFull: its command waits for a free place in the command queue.
	HookQueueFull
	// HookHandedOver: its command is in the queue or running.
	HookHandedOver
)

// HookWaiting is a recipe's run waiting for a free place in the command
// queue.
type HookWaiting struct {
	Command     string // the line it waits to hand over
	Event       string
	Since, Next time.Time
	Tries       int // hand-overs refused so far
	GiveUp      time.Time
}

// HookReplaced is a waiting run that a newer run of the same recipe, for
// the same minions, replaced.
type HookReplaced struct {
	Command, Event, By string // the events' titles
	At                 time.Time
}

// HookPreview is what a recipe would do with a sample event.
type HookPreview struct {
	Event   string   // the sample event in a few words
	Matched bool     // the recipe's filters let it through
	Reason  string   // why not, when not matched
	Posts   []string // "~channel" + rendered text, per post action
	Others  []string // what the other actions would do
}

// HooksCommands are `hooks` and `hooks test`.
func HooksCommands(h Hooks, now func() time.Time) []Definition {
	if now == nil {
		now = time.Now
	}
	return []Definition{{
		Name: "hooks", Args: "[test <recipe> <sample>|<json>]", Summary: "list webhook sources and recipes, or show what a recipe would post",
		Help: "`hooks` lists the webhook sources with their URLs and last delivery, and the recipes with their last run.\n" +
			"`hooks test <recipe> <sample>` shows, without posting anything, what the recipe would do with a sample event: " +
			"a built-in sample (`hooks test ci x` lists them) or a JSON payload pasted after the recipe's name.",
		Level: Operator, Timeout: 20 * time.Second,
		Run: func(ctx context.Context, r *Request) (string, error) {
			if h == nil {
				// Only the running bot receives webhooks; the terminal has
				// no deliveries to show.
				return "Webhooks are received by the running bot (`summoner run`): ask it `hooks` in chat. Sources and recipes are set under `notifications` in the config.", nil
			}
			if len(r.Args) == 0 {
				return renderHooks(h.Overview(ctx), now()), nil
			}
			if r.Args[0] != "test" {
				return "", Errorf("Usage: `hooks` or `hooks test <recipe> <sample>`.")
			}
			if len(r.Args) < 3 {
				return "", Errorf("Usage: `hooks test <recipe> <sample>`: a sample's name (for example `pipeline-failed`), or a JSON payload.")
			}
			sample := r.Args[2]
			// A pasted payload is taken from the raw text: splitting it
			// into words would have eaten its quotes.
			if i := strings.Index(r.Message.Text, "{"); i >= 0 && (strings.HasPrefix(sample, "{") || strings.HasPrefix(sample, "`")) {
				sample = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(r.Message.Text[i:]), "`"))
			}
			p, err := h.Test(ctx, r.Args[1], sample)
			if err != nil {
				return "", Errorf("%s", err.Error())
			}
			return renderPreview(r.Args[1], p), nil
		},
	}}
}

func renderHooks(o HooksOverview, now time.Time) string {
	var b strings.Builder
	b.WriteString("**Webhook sources**\n")
	if len(o.Sources) == 0 {
		b.WriteString("None yet: add them under `notifications.sources`.\n")
	}
	for _, s := range o.Sources {
		if s.Internal {
			fmt.Fprintf(&b, "- `%s` (built in): %s\n", s.Name, lastSeen(s.Last, now, s.LastReason))
			continue
		}
		fmt.Fprintf(&b, "- `%s` (%s) at `%s`: %s\n", s.Name, s.Kind, s.URL, lastDelivery(s, now))
	}
	b.WriteString("\n**Recipes**\n")
	for _, r := range o.Recipes {
		name := "`" + r.Name + "`"
		if r.Builtin {
			name += " (built in)"
		}
		filters := ""
		if r.Filters != "" {
			filters = ", " + r.Filters
		}
		fmt.Fprintf(&b, "- %s: from `%s`%s → %s. ", name, r.Source, filters, strings.Join(r.Actions, ", then "))
		switch ago := human.Age(now.Sub(r.Last)); {
		case r.Last.IsZero():
			b.WriteString("Not run yet.")
		case r.LastErr != "":
			fmt.Fprintf(&b, "⚠️ Last run %s ago on %s failed: %s", ago, r.LastEvent, r.LastErr)
		case r.LastState == HookQueueFull:
			fmt.Fprintf(&b, "⏳ Last run %s ago on %s: waiting for a free place in my command queue.", ago, r.LastEvent)
		case r.LastState == HookHandedOver:
			fmt.Fprintf(&b, "Last run %s ago on %s: its command is queued or running.", ago, r.LastEvent)
		default:
			fmt.Fprintf(&b, "Last run %s ago on %s: done.", ago, r.LastEvent)
		}
		for _, w := range r.Waiting {
			fmt.Fprintf(&b, "\n  - ⏳ `%s` for %s has waited %s for a free place in my command queue (%s); next try in %s, given up in %s.",
				w.Command, w.Event, human.Age(now.Sub(w.Since)), tries(w.Tries), human.Age(max(w.Next.Sub(now), 0)), human.Age(max(w.GiveUp.Sub(now), 0)))
		}
		if x := r.Replaced; x != nil {
			fmt.Fprintf(&b, "\n  - ↪️ `%s` for “%s” was superseded %s ago by the newer run for “%s”.", x.Command, x.Event, human.Age(now.Sub(x.At)), x.By)
		}
		b.WriteString("\n")
	}
	if len(o.Recipes) == 0 {
		b.WriteString("None: add them under `notifications.recipes`.\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func tries(n int) string {
	switch n {
	case 0:
		return "behind an older run, not tried yet"
	case 1:
		return "refused once"
	}
	return fmt.Sprintf("refused %d times", n)
}

func lastSeen(at, now time.Time, what string) string {
	if at.IsZero() {
		return "nothing yet"
	}
	return fmt.Sprintf("last event %s ago (%s)", human.Age(now.Sub(at)), what)
}

func lastDelivery(s HookSourceInfo, now time.Time) string {
	switch {
	case s.Last.IsZero():
		return "no delivery since I started"
	case s.LastStatus >= 200 && s.LastStatus < 300:
		return fmt.Sprintf("last delivery %s ago, %s (%d)", human.Age(now.Sub(s.Last)), s.LastReason, s.LastStatus)
	}
	return fmt.Sprintf("⚠️ last delivery %s ago was refused: %s (%d)", human.Age(now.Sub(s.Last)), s.LastReason, s.LastStatus)
}

func renderPreview(recipe string, p HookPreview) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Recipe `%s` with %s", recipe, p.Event)
	if !p.Matched {
		fmt.Fprintf(&b, ": its filters skip it (%s), so it would do nothing. Had it matched:", p.Reason)
	} else {
		b.WriteString(": nothing was posted; this is what it would do:")
	}
	for _, post := range p.Posts {
		b.WriteString("\n\n" + post)
	}
	for _, o := range p.Others {
		b.WriteString("\n\n" + o)
	}
	if len(p.Posts)+len(p.Others) == 0 {
		b.WriteString("\n\n(no action)")
	}
	return b.String()
}
