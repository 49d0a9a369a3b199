package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/summoner-bot/summoner/chat"
)

// Options configure a Router.
type Options struct {
	Registry *Registry
	Poster   chat.Poster
	// LevelOf tells a user's permission level.
	LevelOf func(chat.User) Level
	// MutatingChannels lists the channel names where mutating commands run;
	// empty means everywhere. "direct" stands for direct messages.
	MutatingChannels []string
	ConfirmTTL       time.Duration // default 5 minutes
	// ProgressEvery is the least time between two progress edits.
	ProgressEvery time.Duration // default 1 second
	Now           func() time.Time
	Logger        *slog.Logger
	Version       string
}

// Router turns messages into command runs and their replies.
type Router struct {
	o        Options
	reg      *Registry
	log      *slog.Logger
	confirms *confirmations
}

// Outcome says how a command ended, for the audit log and exit codes.
type Outcome string

// The outcomes of a command.
const (
	OK       Outcome = "ok"
	Failed   Outcome = "failed"  // the command ran and reported a problem to the user
	Refused  Outcome = "refused" // permissions, channel, confirmation
	Unknown  Outcome = "unknown" // no such command, or unparsable
	Internal Outcome = "internal-error"
	Pending  Outcome = "awaiting-confirmation"
)

// NewRouter makes a router and adds the built-in commands (help, whoami,
// version, ping, confirm) to the registry.
func NewRouter(o Options) (*Router, error) {
	if o.Registry == nil {
		o.Registry, _ = NewRegistry()
	}
	if o.LevelOf == nil {
		o.LevelOf = func(chat.User) Level { return Everyone }
	}
	if o.ConfirmTTL <= 0 {
		o.ConfirmTTL = 5 * time.Minute
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	rt := &Router{o: o, reg: o.Registry, log: o.Logger, confirms: &confirmations{pending: map[string]*pendingRun{}}}
	for _, d := range rt.builtins() {
		if err := rt.reg.Add(d); err != nil {
			return nil, err
		}
	}
	return rt, nil
}

// Registry is the router's command registry.
func (rt *Router) Registry() *Registry { return rt.reg }

// Handle runs the command in m and posts the reply; it implements chat.Handler.
func (rt *Router) Handle(ctx context.Context, m chat.Message) { rt.Execute(ctx, m) }

// Execute runs the command in m, posts the reply, and tells how it ended.
func (rt *Router) Execute(ctx context.Context, m chat.Message) Outcome {
	return rt.execute(ctx, m, false, nil)
}

// ExecuteConfirmed runs m as if its confirmation had been given: the
// one-shot CLI's --yes, for scripts. Rights and channel rules still apply.
func (rt *Router) ExecuteConfirmed(ctx context.Context, m chat.Message) Outcome {
	return rt.execute(ctx, m, true, nil)
}

// execute runs m; progress, when set, is a post already made for it (the
// queue's "queued" note) that progress and the final reply edit.
func (rt *Router) execute(ctx context.Context, m chat.Message, confirmed bool, progress *chat.PostRef) Outcome {
	start := rt.o.Now()
	r := &Request{Message: m, router: rt}
	if progress != nil {
		r.progress, r.hasProgress = *progress, true
	}
	out, cmdLine := rt.dispatch(ctx, r, confirmed)
	rt.log.Info("audit",
		"user", m.User.Username, "channel", channelLabel(m.Channel),
		"command", cmdLine, "result", string(out),
		"duration_ms", float64(rt.o.Now().Sub(start).Microseconds())/1000)
	return out
}

func (rt *Router) dispatch(ctx context.Context, r *Request, confirmed bool) (Outcome, string) {
	words, err := Split(r.Message.Text)
	if err != nil {
		r.finish(ctx, "", err)
		return Unknown, "(unparsable)"
	}
	if len(words) == 0 {
		r.finish(ctx, "Hi! Type `help` to see what I can do.", nil)
		return OK, ""
	}
	name := strings.ToLower(words[0])
	cmdLine := auditLine(name, words[1:])
	def, ok := rt.reg.Lookup(name)
	if !ok {
		r.finish(ctx, "", rt.unknown(words[0]))
		return Unknown, cmdLine
	}
	r.Command, r.Args = def, words[1:]
	return rt.run(ctx, r, confirmed), cmdLine
}

// run checks permissions, asks for confirmation when needed, then runs.
func (rt *Router) run(ctx context.Context, r *Request, confirmed bool) Outcome {
	def := r.Command
	r.Level = rt.o.LevelOf(r.Message.User)
	if r.Level < def.Level {
		r.finish(ctx, "", Errorf("`%s` needs %s rights, and you have %s rights. An admin can add you to `permissions.%ss` in the config.",
			def.Name, def.Level, r.Level, def.Level))
		return Refused
	}
	if def.Mutating && !rt.mutatingAllowed(r.Message.Channel) {
		r.finish(ctx, "", Errorf("`%s` changes things, so it only runs in %s.", def.Name, rt.allowedChannels()))
		return Refused
	}
	if def.Confirm != nil && !confirmed {
		what, err := rt.guard(func() (string, error) { return def.Confirm(ctx, r) })
		if err != nil {
			return r.finish(ctx, "", err)
		}
		if what != "" {
			code := rt.confirms.add(r, rt.o.Now().Add(rt.o.ConfirmTTL))
			r.askConfirm(ctx, fmt.Sprintf("%s\nTo go ahead, answer `confirm %s` within %s. Only you can confirm it, once.",
				what, code, humanDuration(rt.o.ConfirmTTL)), code)
			return Pending
		}
	}
	text, err := rt.runTimed(ctx, r)
	return r.finish(ctx, text, err)
}

// afterDeadline is how long a handler that ignores its context may take to
// return before the user is told it ran out of time anyway.
const afterDeadline = 2 * time.Second

// runTimed runs the command under its deadline. A command that runs out of
// time is answered as such, even if its handler does not notice.
func (rt *Router) runTimed(ctx context.Context, r *Request) (string, error) {
	def := r.Command
	timeout := def.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		text string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		text, err := rt.guard(func() (string, error) { return def.Run(rctx, r) })
		done <- result{text, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-rctx.Done():
		select {
		case res = <-done:
		case <-time.After(afterDeadline):
			res.err = rctx.Err()
			rt.log.Warn("command still running after its deadline", "command", def.Name)
		}
	}
	switch {
	case res.err == nil || rctx.Err() == nil:
		return res.text, res.err
	case ctx.Err() != nil:
		return "", Errorf("⚠️ I was stopped while `%s` ran, so it was cut short. Check with `status` and run it again if needed.", def.Name)
	}
	why := ""
	var um userMessage
	if errors.As(res.err, &um) {
		why = " " + um.UserMessage()
	}
	return "", &explained{msg: fmt.Sprintf("⏱️ `%s` ran out of time: it did not finish within %s, so I stopped it.%s", def.Name, humanDuration(timeout), why), cause: res.err}
}

// guard turns a panic in a handler into an internal error, so one bad
// command never takes the bot down.
func (rt *Router) guard(f func() (string, error)) (text string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return f()
}

func (rt *Router) unknown(name string) error {
	if s := rt.reg.Suggest(name); len(s) > 0 {
		return Errorf("I don't know `%s`. Did you mean `%s`?", name, strings.Join(s, "` or `"))
	}
	return Errorf("I don't know `%s`. Type `help` to see what I can do.", name)
}

func (rt *Router) mutatingAllowed(c chat.Channel) bool {
	if len(rt.o.MutatingChannels) == 0 {
		return true
	}
	name := c.Name
	if c.Direct {
		name = "direct"
	}
	return slices.Contains(rt.o.MutatingChannels, name)
}

func (rt *Router) allowedChannels() string {
	var names []string
	for _, c := range rt.o.MutatingChannels {
		if c == "direct" {
			names = append(names, "direct messages")
		} else {
			names = append(names, "~"+c)
		}
	}
	return strings.Join(names, ", ")
}

// Request is one command run, as its handler sees it.
type Request struct {
	Message chat.Message
	Command *Definition
	Args    []string
	Level   Level

	router *Router
	inner  Outcome // how a confirmed command ended, for "confirm"

	mu           sync.Mutex
	progress     chat.PostRef
	hasProgress  bool
	lastProgress time.Time
	finished     bool // the final reply is out: later progress is dropped
}

// Progress shows text in one message that later calls edit in place; the
// final reply replaces it. Calls closer together than ProgressEvery are
// skipped, so a chatty handler cannot flood the chat server.
func (r *Request) Progress(ctx context.Context, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.router.o.Now()
	if r.finished || r.hasProgress && now.Sub(r.lastProgress) < r.router.o.ProgressEvery {
		return
	}
	r.lastProgress = now
	if r.hasProgress {
		if err := r.router.o.Poster.Update(ctx, r.progress, text); err != nil {
			r.router.log.Warn("updating progress", "err", err)
		}
		return
	}
	ref, err := r.router.o.Poster.Reply(ctx, r.Message, text)
	if err != nil {
		r.router.log.Warn("posting progress", "err", err)
		return
	}
	r.progress, r.hasProgress = ref, true
}

// finish posts the final reply (editing the progress message if there is
// one) and classifies the result.
func (r *Request) finish(ctx context.Context, text string, err error) Outcome {
	out := OK
	var (
		ue *UserError
		um userMessage
	)
	switch {
	case errors.Is(err, errAlreadyReplied):
		return r.inner
	case errors.As(err, &ue):
		text, out = ue.Error(), Failed
	case errors.As(err, &um):
		text, out = um.UserMessage(), Failed
		if cause := errors.Unwrap(err); cause != nil {
			r.router.log.Info("command failed", "command", r.commandName(), "user", r.Message.User.Username, "err", cause)
		}
	case err != nil:
		ref := newRef()
		r.router.log.Error("command failed", "ref", ref, "command", r.commandName(), "user", r.Message.User.Username, "err", err)
		text = fmt.Sprintf("Something went wrong on my side (ref `%s`). An admin can find the details in the bot's log under that reference.", ref)
		out = Internal
	}
	if text == "" {
		text = "Done."
	}
	// The answer must go out even when shutdown cancelled the command.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finished = true
	if r.hasProgress {
		if perr := r.router.o.Poster.Update(ctx, r.progress, text); perr == nil {
			return out
		}
	}
	if _, perr := r.router.o.Poster.Reply(ctx, r.Message, text); perr != nil {
		r.router.log.Error("posting reply", "command", r.commandName(), "err", perr)
	}
	return out
}

func (r *Request) commandName() string {
	if r.Command == nil {
		return ""
	}
	return r.Command.Name
}

// auditLine renders the command for the audit log with the values of
// key=value words hidden, since those can be passwords: the name's too, for
// a line that starts with one ("DB_PASSWORD=x" sent without its command).
func auditLine(name string, args []string) string {
	parts := make([]string, 0, 1+len(args))
	for _, a := range append([]string{name}, args...) {
		if k, _, ok := strings.Cut(a, "="); ok {
			a = k + "=***"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

func channelLabel(c chat.Channel) string {
	if c.Direct {
		return "direct"
	}
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

func newRef() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func humanDuration(d time.Duration) string {
	switch {
	case d%time.Minute == 0 && d >= time.Minute:
		n := int(d / time.Minute)
		if n == 1 {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", n)
	case d%time.Second == 0:
		return fmt.Sprintf("%d seconds", int(d/time.Second))
	}
	return d.String()
}
