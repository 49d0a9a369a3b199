package commands

import (
	"context"
	"crypto/rand"
	"math/big"
	"sync"
	"time"

	"github.com/summoner-bot/summoner/chat"
)

// pendingRun is a destructive command waiting for "confirm <code>".
type pendingRun struct {
	req     *Request
	expires time.Time
}

type confirmations struct {
	mu      sync.Mutex
	pending map[string]*pendingRun
}

// add stores r under a fresh code. Codes are six digits: easy to type on a
// phone, and only guessable by the one user they are bound to anyway.
func (c *confirmations) add(r *Request, expires time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for code, p := range c.pending {
		if !expires.Before(p.expires.Add(time.Hour)) { // forget long-expired codes
			delete(c.pending, code)
		}
	}
	for {
		n, _ := rand.Int(rand.Reader, big.NewInt(900000))
		code := big.NewInt(0).Add(n, big.NewInt(100000)).String()
		if _, taken := c.pending[code]; !taken {
			c.pending[code] = &pendingRun{req: r, expires: expires}
			return code
		}
	}
}

// take returns the pending run for code if userID may confirm it now, and
// removes it so it cannot run twice. A code is only consumed by its owner.
func (c *confirmations) take(code, userID string, now time.Time) (*pendingRun, error) {
	return c.check(code, userID, now, true)
}

// check is take that, unless consume, leaves the code in place.
func (c *confirmations) check(code, userID string, now time.Time, consume bool) (*pendingRun, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pending[code]
	switch {
	case !ok:
		return nil, Errorf("No command is waiting for the code `%s`. Codes work once; run the command again to get a new one.", code)
	case p.req.Message.User.ID != userID:
		return nil, Errorf("The code `%s` belongs to @%s's command; only they can confirm it.", code, p.req.Message.User.Username)
	case now.After(p.expires):
		delete(c.pending, code)
		return nil, Errorf("The code `%s` expired. Run `%s` again to get a new one.", code, p.req.Command.Name)
	}
	if consume {
		delete(c.pending, code)
	}
	return p, nil
}

func (rt *Router) confirm(ctx context.Context, r *Request) (string, error) {
	if len(r.Args) != 1 {
		return "", Errorf("Usage: `confirm <code>`, with the code I gave you.")
	}
	p, err := rt.confirms.take(r.Args[0], r.Message.User.ID, rt.o.Now())
	if err != nil {
		return "", err
	}
	// The confirmed command replies here, in the thread of "confirm", and
	// is checked again: rights or channel rules may have changed meanwhile.
	run := &Request{Message: r.Message, Command: p.req.Command, Args: p.req.Args, router: rt}
	rt.log.Info("audit", "user", r.Message.User.Username, "channel", channelLabel(r.Message.Channel),
		"command", auditLine(run.Command.Name, run.Args), "result", "confirmed")
	// The progress note of the confirm, if any, becomes the command's.
	r.mu.Lock()
	run.progress, run.hasProgress = r.progress, r.hasProgress
	r.mu.Unlock()
	r.inner = rt.run(ctx, run, true)
	return "", errAlreadyReplied
}

// ConfirmPoster is a chat.Poster that can put Confirm and Cancel buttons
// under a confirmation request (the Mattermost integration does). When the
// router's Poster has it, confirmation requests go through it; the typed
// `confirm <code>` works either way, so the code stays in text.
type ConfirmPoster interface {
	ReplyConfirm(ctx context.Context, m chat.Message, text, code string) (chat.PostRef, error)
}

// askConfirm posts the confirmation request, with buttons when the Poster
// can show them. A request that already has a post (the queue's "busy"
// note) edits it, as any final reply does, and gets no buttons.
func (r *Request) askConfirm(ctx context.Context, text, code string) {
	cp, ok := r.router.o.Poster.(ConfirmPoster)
	r.mu.Lock()
	if !ok || r.hasProgress {
		r.mu.Unlock()
		r.finish(ctx, text, nil)
		return
	}
	r.finished = true
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if _, err := cp.ReplyConfirm(ctx, r.Message, text, code); err != nil {
		r.router.log.Warn("posting a confirmation with buttons; posting it as text", "err", err)
		if _, err := r.router.o.Poster.Reply(ctx, r.Message, text); err != nil {
			r.router.log.Error("posting reply", "command", r.commandName(), "err", err)
		}
	}
}

// CheckConfirmation tells whether userID may confirm code now, without
// using the code; the error, for users, says why not.
func (rt *Router) CheckConfirmation(code, userID string) error {
	_, err := rt.confirms.check(code, userID, rt.o.Now(), false)
	return err
}

// CancelConfirmation drops the command waiting for code, if it is
// userID's, and returns the command's name.
func (rt *Router) CancelConfirmation(code, userID string) (string, error) {
	p, err := rt.confirms.check(code, userID, rt.o.Now(), true)
	if err != nil {
		return "", err
	}
	m := p.req.Message
	rt.log.Info("audit", "user", m.User.Username, "channel", channelLabel(m.Channel),
		"command", auditLine(p.req.Command.Name, p.req.Args), "result", "cancelled")
	return p.req.Command.Name, nil
}
