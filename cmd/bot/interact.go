package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/mattermost"
	"github.com/summoner-bot/summoner/chat/outbox"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/minions"
)

// interaction is Mattermost's side door into the command tree: the /summon
// slash command, the Confirm and Cancel buttons and the summon dialog. It is
// off (everything goes straight to the outbox) without chat.callback_url.
type interaction struct {
	ix    *mattermost.Interact // nil when off
	ob    *outbox.Outbox
	log   *slog.Logger
	cfg   config.Chat
	rt    *commands.Router // set by use, before the HTTP server starts
	queue *commands.Queue
}

func newInteraction(cfg config.Config, ob *outbox.Outbox, mm *mattermost.Adapter, engine *minions.Engine, levelOf func(chat.User) commands.Level, log *slog.Logger) (*interaction, error) {
	in := &interaction{ob: ob, log: log, cfg: cfg.Chat}
	if cfg.Chat.CallbackURL == "" {
		return in, nil
	}
	var err error
	in.ix, err = mattermost.NewInteract(mattermost.InteractOptions{
		CallbackURL: cfg.Chat.CallbackURL, SlashToken: cfg.Chat.SlashToken.Reveal(),
		Poster: ob, Handler: in, Confirm: in, Adapter: mm, Logger: log,
		Dialog: summonDialog(engine, levelOf),
	})
	return in, err
}

// poster is what the router replies through.
func (in *interaction) poster() chat.Poster {
	if in.ix == nil {
		return in.ob
	}
	return in.ix
}

// journal is the queue's journal; it tells the slash command when its
// command has finished.
func (in *interaction) journal() commands.Journal {
	if in.ix == nil {
		return in.ob
	}
	return finishJournal{Journal: in.ob, ix: in.ix}
}

type finishJournal struct {
	commands.Journal
	ix *mattermost.Interact
}

func (j finishJournal) Finish(id string) error {
	err := j.Journal.Finish(id)
	j.ix.Finished(id)
	return err
}

func (in *interaction) use(rt *commands.Router, queue *commands.Queue) { in.rt, in.queue = rt, queue }

// Handle runs a command from a slash command, a button or a dialog.
func (in *interaction) Handle(ctx context.Context, m chat.Message) { in.queue.Handle(ctx, m) }

func (in *interaction) CheckConfirmation(code, userID string) error {
	return in.rt.CheckConfirmation(code, userID)
}

func (in *interaction) CancelConfirmation(code, userID string) (string, error) {
	return in.rt.CancelConfirmation(code, userID)
}

// mount serves the callbacks on the bot's HTTP server.
func (in *interaction) mount(mux *http.ServeMux) {
	if in.ix != nil {
		mux.Handle("POST /mattermost/", in.ix)
	}
}

// check says at start what the server still needs for the slash command
// and the buttons: problems in the log and in the ops channel, what could
// not be checked in the log only. It never stops the bot.
func (in *interaction) check(ctx context.Context, mm *mattermost.Adapter, ops func(context.Context, string)) {
	if in.ix == nil {
		in.log.Info("chat.callback_url is not set: no /summon slash command and no buttons (confirmations are typed)")
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	problems, notes := mm.CheckSetup(cctx, in.cfg.CallbackURL, in.cfg.SlashToken != "")
	for _, n := range notes {
		in.log.Info("Mattermost set-up not checked", "note", n)
	}
	for _, p := range problems {
		in.log.Warn("Mattermost set-up incomplete", "problem", p)
	}
	if len(problems) > 0 {
		ops(ctx, "⚠️ The `/summon` slash command and the buttons need a few things on Mattermost:\n- "+strings.Join(problems, "\n- "))
	}
}

// summonDialog opens a dialog for `summon <minion>` typed alone, when the
// minion has settings a person fills in, for operators and admins.
func summonDialog(engine *minions.Engine, levelOf func(chat.User) commands.Level) func(context.Context, chat.User, string) (*mattermost.Dialog, bool) {
	return func(_ context.Context, u chat.User, text string) (*mattermost.Dialog, bool) {
		words := strings.Fields(text)
		if len(words) != 2 || !strings.EqualFold(words[0], "summon") || levelOf(u) < commands.Operator {
			return nil, false
		}
		m, ok := engine.Catalog().Get(strings.ToLower(words[1]))
		if !ok {
			return nil, false
		}
		intro := "Empty fields keep their defaults; the settings are remembered for later summons."
		if m.Description != "" {
			intro = strings.TrimSuffix(m.Description, ".") + ". " + intro
		}
		d := &mattermost.Dialog{Command: "summon " + m.Name, Title: "Summon " + m.Name, Intro: intro}
		for _, s := range m.Settings {
			if s.Generate {
				continue
			}
			d.Fields = append(d.Fields, mattermost.DialogField{Name: s.Name, Label: s.Name, Help: s.Description,
				Default: s.Default, Secret: s.Secret, Optional: !s.Required})
		}
		return d, len(d.Fields) > 0
	}
}
