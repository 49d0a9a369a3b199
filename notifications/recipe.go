package notifications

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"text/template"
	"time"
)

// Recipe turns matching events into a chain of actions. Empty filters
// match everything; a filter with several values matches any of them.
type Recipe struct {
	Name   string `yaml:"name"`
	Source string `yaml:"source"` // a configured source's name, or "docker" / "maintenance"

	Events   []string `yaml:"events,omitempty"`   // Event.Type, exact
	Projects []string `yaml:"projects,omitempty"` // path.Match globs: "group/*"
	Branches []string `yaml:"branches,omitempty"` // path.Match globs on Event.Ref: "main", "release/*"
	Statuses []string `yaml:"statuses,omitempty"` // Event.Status, exact
	// StatusChanged keeps only events whose status flipped between success
	// and failed for the same source, project, ref and type; see
	// Engine.Handle for the first event ever.
	StatusChanged bool `yaml:"status_changed,omitempty"`

	Actions []Action `yaml:"actions"`
}

// Action is one step of a recipe's chain: exactly one kind is set.
type Action struct {
	Post    *PostAction    `yaml:"post,omitempty"`
	Command *CommandAction `yaml:"command,omitempty"`
	Forward *ForwardAction `yaml:"forward,omitempty"`
}

// PostAction posts a text/template rendered over the event (Mattermost
// markdown). The template sees the Event's fields and .Data, the decoded
// payload, so provider fields the Event does not name stay reachable.
type PostAction struct {
	Channel  string `yaml:"channel"`
	Template string `yaml:"template"`
}

// CommandAction runs a Summoner command, such as deploy-on-green's
// "update myapp", with the permission level the config grants it: the
// event has no user whose level could be asked.
type CommandAction struct {
	Line  string `yaml:"line"`
	Level string `yaml:"level"` // everyone, operator or admin
	// Channel receives the command's replies; "" only logs them.
	Channel string `yaml:"channel,omitempty"`
}

// ForwardAction POSTs the event as JSON to another URL.
type ForwardAction struct {
	URL     string        `yaml:"url"`
	Timeout time.Duration `yaml:"timeout,omitempty"` // default 10s
}

// Internal sources are always known to Validate: Summoner feeds them itself.
const (
	SourceDocker      = "docker"
	SourceMaintenance = "maintenance"
)

// Permission levels a command action may carry, as commands names them.
var recipeLevels = []string{"everyone", "operator", "admin"}

const (
	defaultForwardTimeout = 10 * time.Second
	defaultPostTimeout    = 30 * time.Second
)

// Poster posts a message in a channel, by name. The daemon wires it to the
// persistent outbox; this package never imports chat. key is unique per
// event, recipe and action: an event handled again after a crash posts
// nothing twice when the Poster keeps its keys.
type Poster interface {
	Post(ctx context.Context, key, channel, text string) error
}

// Commander hands a command over to run at the action's level, as the
// commands router would for a user of that level, with its replies in the
// action's channel. It returns once the command is queued, not when it
// ends: a deploy must not hold up the events behind it. key is unique per
// event, recipe and action, so a command handed over again after a crash
// is recognised and not run twice.
type Commander interface {
	Run(ctx context.Context, key string, c CommandAction) error
}

// StatusMemory remembers the last final status per key (source, project,
// ref and type) for the status-changed filter. Implementations must be safe
// for concurrent use; a persistent one lets a restart keep the history.
type StatusMemory interface {
	// Swap stores status under key and returns what was there before;
	// known is false when the key was never seen.
	Swap(ctx context.Context, key, status string) (previous string, known bool, err error)
}

// MemoryStatus is a StatusMemory in memory, for tests and for a bot that
// accepts forgetting history on restart.
type MemoryStatus struct {
	mu sync.Mutex
	m  map[string]string
}

var _ StatusMemory = (*MemoryStatus)(nil)

// Swap implements StatusMemory.
func (s *MemoryStatus) Swap(_ context.Context, key, status string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]string)
	}
	prev, ok := s.m[key]
	s.m[key] = status
	return prev, ok, nil
}

// Validate checks recipes against the configured source names and returns
// every problem at once, each prefixed with its recipe's name, so a bad
// config is refused at start with all that needs fixing.
func Validate(recipes []Recipe, sources []string) error {
	var errs []error
	seen := make(map[string]bool)
	for i, r := range recipes {
		name := r.Name
		if name == "" {
			name = fmt.Sprintf("#%d", i+1)
			errs = append(errs, fmt.Errorf("recipe %s: no name", name))
		} else if seen[name] {
			errs = append(errs, fmt.Errorf("recipe %q: the name is used twice", name))
		}
		seen[r.Name] = true
		for _, p := range recipeProblems(r, sources) {
			errs = append(errs, fmt.Errorf("recipe %q: %s", name, p))
		}
	}
	return errors.Join(errs...)
}

func recipeProblems(r Recipe, sources []string) []string {
	var ps []string
	switch {
	case r.Source == "":
		ps = append(ps, "no source")
	case r.Source != SourceDocker && r.Source != SourceMaintenance && !slices.Contains(sources, r.Source):
		ps = append(ps, fmt.Sprintf("unknown source %q (known: %s)", r.Source,
			strings.Join(append(slices.Clone(sources), SourceDocker, SourceMaintenance), ", ")))
	}
	return append(ps, recipeShapeProblems(r)...)
}

// recipeShapeProblems checks what needs no config beyond the recipe:
// globs and actions. NewEngine checks it too, so an engine never holds a
// recipe it could not run.
func recipeShapeProblems(r Recipe) []string {
	var ps []string
	for _, g := range append(slices.Clone(r.Projects), r.Branches...) {
		if _, err := path.Match(g, ""); err != nil {
			ps = append(ps, fmt.Sprintf("bad glob %q: %v", g, err))
		}
	}
	if len(r.Actions) == 0 {
		ps = append(ps, "no actions")
	}
	for i, a := range r.Actions {
		if p := recipeActionProblem(a); p != "" {
			ps = append(ps, fmt.Sprintf("action %d: %s", i+1, p))
		}
	}
	return ps
}

func recipeActionProblem(a Action) string {
	kinds := recipeKinds(a)
	if len(kinds) == 0 {
		return "no kind (want one of post, command, forward)"
	}
	if len(kinds) > 1 {
		return fmt.Sprintf("two kinds or more (%s): one action does one thing", strings.Join(kinds, ", "))
	}
	switch {
	case a.Post != nil:
		if a.Post.Channel == "" {
			return "post: no channel"
		}
		if _, err := recipeParseTemplate(a.Post.Template); err != nil {
			return fmt.Sprintf("post: template: %v", err)
		}
	case a.Command != nil:
		if strings.TrimSpace(a.Command.Line) == "" {
			return "command: no command line"
		}
		if a.Command.Level == "" {
			return "command: no level (want everyone, operator or admin)"
		}
		if !slices.Contains(recipeLevels, a.Command.Level) {
			return fmt.Sprintf("command: unknown level %q (want everyone, operator or admin)", a.Command.Level)
		}
	case a.Forward != nil:
		u, err := url.Parse(a.Forward.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Sprintf("forward: url %q is not an http(s) URL", a.Forward.URL)
		}
		if a.Forward.Timeout < 0 {
			return "forward: negative timeout"
		}
	}
	return ""
}

func recipeKinds(a Action) []string {
	var k []string
	if a.Post != nil {
		k = append(k, "post")
	}
	if a.Command != nil {
		k = append(k, "command")
	}
	if a.Forward != nil {
		k = append(k, "forward")
	}
	return k
}

// recipeFuncs are the helpers templates may call.
var recipeFuncs = template.FuncMap{
	// short cuts a commit SHA to the 8 characters people read.
	"short": func(sha string) string {
		if len(sha) > 8 {
			return sha[:8]
		}
		return sha
	},
	"link": recipeLink,
	// icon gives an emoji for a status, so a channel reads at a glance.
	"icon": func(status string) string {
		switch status {
		case "success":
			return ":white_check_mark:"
		case "failed":
			return ":x:"
		case "running", "pending":
			return ":hourglass:"
		case "canceled":
			return ":no_entry_sign:"
		}
		return ":grey_question:"
	},
}

// recipeLink writes a Mattermost markdown link; brackets in the text are
// escaped so a commit title cannot break it.
func recipeLink(text, u string) string {
	if u == "" {
		return text
	}
	text = strings.NewReplacer("[", `\[`, "]", `\]`).Replace(text)
	return "[" + text + "](" + u + ")"
}

func recipeParseTemplate(text string) (*template.Template, error) {
	if strings.TrimSpace(text) == "" {
		return nil, errors.New("empty")
	}
	return template.New("post").Funcs(recipeFuncs).Option("missingkey=zero").Parse(text)
}

// recipeTemplateData is what a post template sees: the Event's fields, and
// .Data, the payload decoded as generic JSON.
type recipeTemplateData struct {
	Event
	Data map[string]any
}

// recipeCompiled is a validated recipe with its templates parsed once.
type recipeCompiled struct {
	Recipe
	templates []*template.Template // by action index; nil for non-post actions
}

// EngineOptions configure an Engine. Poster is required; Commander is
// required when a recipe runs commands.
type EngineOptions struct {
	Poster      Poster
	Commander   Commander
	HTTPClient  *http.Client  // default: a client without its own timeout (each call gets one)
	Memory      StatusMemory  // default: MemoryStatus
	PostTimeout time.Duration // default 30s; also the deadline of a command's hand-over
	// OnRun, when set, hears each recipe that ran on an event and how it
	// ended (nil: every action done), for the hooks command.
	// A run whose command the queue refuses (ErrQueueFull) waits: err is
	// a *WaitingError then, and a *GaveUpError if it never got a place.
	OnRun func(recipe string, ev Event, err error)
	// OnReplaced, when set, hears each waiting run a newer one replaced.
	OnReplaced func(Replaced)
	// Waiting keeps runs waiting for the command queue (default: in
	// memory). The runs of one recipe go in order; other recipes go on.
	Waiting WaitingStore
	// GiveUpAfter: a run waiting longer is dropped and reported in
	// OpsChannel (default DefaultGiveUpAfter). RetryMin and RetryMax
	// bound the backoff between tries (default 1s and 30s).
	GiveUpAfter, RetryMin, RetryMax time.Duration
	// OpsChannel receives the report of a command given up on; "": the
	// command's own channel.
	OpsChannel string
	Now        func() time.Time // default time.Now
	Logger     *slog.Logger
}

// Engine runs every recipe matching an event. One recipe's failure never
// stops the others, as diun's notifier fan-out never stops at the first
// failing notifier.
type Engine struct {
	o       EngineOptions
	recipes []recipeCompiled
	log     *slog.Logger
	waits   waitList
}

// NewEngine compiles recipes. It refuses a recipe it could not run (a bad
// glob, template or action); names and sources are Validate's job, which
// the daemon calls first against its config.
func NewEngine(recipes []Recipe, o EngineOptions) (*Engine, error) {
	if o.Poster == nil {
		return nil, errors.New("notifications engine: no poster")
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Memory == nil {
		o.Memory = &MemoryStatus{}
	}
	if o.PostTimeout <= 0 {
		o.PostTimeout = defaultPostTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Waiting == nil {
		o.Waiting = &MemoryWaiting{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.GiveUpAfter <= 0 {
		o.GiveUpAfter = DefaultGiveUpAfter
	}
	if o.RetryMin <= 0 {
		o.RetryMin = defaultRetryMin
	}
	if o.RetryMax < o.RetryMin {
		o.RetryMax = max(defaultRetryMax, o.RetryMin)
	}
	var errs []error
	e := &Engine{o: o, log: o.Logger.With("component", "recipes")}
	for _, r := range recipes {
		for _, p := range recipeShapeProblems(r) {
			errs = append(errs, fmt.Errorf("recipe %q: %s", r.Name, p))
		}
		c := recipeCompiled{Recipe: r, templates: make([]*template.Template, len(r.Actions))}
		for j, a := range r.Actions {
			if a.Post != nil {
				// A template that does not parse is already reported above.
				c.templates[j], _ = recipeParseTemplate(a.Post.Template)
			}
			if a.Command != nil && o.Commander == nil {
				errs = append(errs, fmt.Errorf("recipe %q: action %d: commands are not available here", r.Name, j+1))
			}
		}
		e.recipes = append(e.recipes, c)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return e, nil
}

// recipeMatch tells whether ev passes r's filters, except StatusChanged,
// which needs the engine's memory; reason says which filter refused it.
func recipeMatch(r *Recipe, ev *Event) (ok bool, reason string) {
	switch {
	case r.Source != ev.Source:
		return false, fmt.Sprintf("source %q is not %q", ev.Source, r.Source)
	case len(r.Events) > 0 && !slices.Contains(r.Events, ev.Type):
		return false, fmt.Sprintf("event type %q is not one of %s", ev.Type, strings.Join(r.Events, ", "))
	case len(r.Projects) > 0 && !recipeGlobAny(r.Projects, ev.Project):
		return false, fmt.Sprintf("project %q matches none of %s", ev.Project, strings.Join(r.Projects, ", "))
	case len(r.Branches) > 0 && !recipeGlobAny(r.Branches, ev.Ref):
		return false, fmt.Sprintf("ref %q matches none of %s", ev.Ref, strings.Join(r.Branches, ", "))
	case len(r.Statuses) > 0 && !slices.Contains(r.Statuses, ev.Status):
		return false, fmt.Sprintf("status %q is not one of %s", ev.Status, strings.Join(r.Statuses, ", "))
	}
	return true, ""
}

func recipeGlobAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, err := path.Match(g, s); err == nil && ok {
			return true
		}
	}
	return false
}

// recipeFinal reports whether a status takes part in the status-changed
// filter: running or canceled says nothing about whether the build is fixed.
func recipeFinal(status string) bool { return status == "success" || status == "failed" }

// Handle runs the actions of every recipe matching ev, recipe after
// recipe, in config order. Within a recipe the chain stops at its first
// failed action, since a later step may rely on an earlier one (announce,
// then deploy); the other recipes still run. The error joins every
// failure, each naming its recipe and action.
//
// Status changed: every success or failed event is remembered per source,
// project, ref and type (and workflow, for GitHub), whatever the recipes. The first such event ever
// counts as a change when it is a failure and not when it is a success:
// with no history (a new project, a lost state file) a broken build must
// still be heard, and a green one is no news.
//
// A command the queue refuses (ErrQueueFull) is no failure: the run waits
// at that action, kept in the WaitingStore, and Retry resumes it. While a
// recipe has a run waiting, its next runs wait behind it, and one that
// runs commands for the same minions replaces it.
func (e *Engine) Handle(ctx context.Context, ev Event) error {
	if err := e.load(); err != nil {
		return fmt.Errorf("%w: %w", ErrNotHandled, err)
	}
	changed, memErr := e.statusChanged(ctx, &ev)
	var errs []error
	for i := range e.recipes {
		r := &e.recipes[i]
		if ok, why := recipeMatch(&r.Recipe, &ev); !ok {
			e.log.Debug("recipe skipped", "recipe", r.Name, "event", ev.ID, "why", why)
			continue
		}
		if r.StatusChanged {
			if memErr != nil {
				errs = append(errs, fmt.Errorf("recipe %q: %w", r.Name, memErr))
				continue
			}
			if !changed {
				e.log.Debug("recipe skipped", "recipe", r.Name, "event", ev.ID, "why", "status did not change")
				continue
			}
		}
		if len(e.waits.of(r.Name)) > 0 {
			if err := e.queueBehind(ctx, r, ev); err != nil {
				e.log.Error("running recipe", "recipe", r.Name, "event", ev.ID, "err", err)
				errs = append(errs, err)
			}
			continue
		}
		at, err := e.run(ctx, r, &ev, 0)
		if errors.Is(err, ErrQueueFull) {
			now := e.now()
			w := Waiting{Recipe: r.Name, Action: at, Event: ev, Since: now, Tries: 1, Next: now.Add(e.backoff(1))}
			if perr := e.o.Waiting.PutWaiting(&w); perr != nil {
				err = fmt.Errorf("recipe %q: keeping the run for later: %w", r.Name, perr)
			} else {
				e.waits.put(w)
				e.waitingNow(r, w)
				continue
			}
		}
		e.ran(r, ev, err)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ran reports how a run of r on ev ended.
func (e *Engine) ran(r *recipeCompiled, ev Event, err error) {
	if err != nil {
		e.log.Error("running recipe", "recipe", r.Name, "event", ev.ID, "err", err)
	}
	if e.o.OnRun != nil {
		e.o.OnRun(r.Name, ev, err)
	}
}

func (e *Engine) statusChanged(ctx context.Context, ev *Event) (bool, error) {
	if !recipeFinal(ev.Status) {
		return false, nil
	}
	key := strings.Join([]string{ev.Source, ev.Project, ev.Ref, ev.Type, recipeWorkflow(ev)}, "\x00")
	prev, known, err := e.o.Memory.Swap(ctx, key, ev.Status)
	if err != nil {
		return false, fmt.Errorf("remembering the status of %s %s: %w", ev.Project, ev.Ref, err)
	}
	if !known || !recipeFinal(prev) {
		return ev.Status == "failed", nil
	}
	return prev != ev.Status, nil
}

// recipeWorkflow names the workflow of a GitHub workflow_run, since one
// repository runs several (Build, Lint) on the same branch: keyed only by
// project and ref, a red Lint after a green Build would read as a change.
func recipeWorkflow(ev *Event) string {
	if ev.Type != "workflow_run" || len(ev.Payload) == 0 {
		return ""
	}
	var p struct {
		WorkflowRun struct {
			WorkflowID json.Number `json:"workflow_id"`
			Name       string      `json:"name"`
		} `json:"workflow_run"`
	}
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		return ""
	}
	if p.WorkflowRun.WorkflowID != "" {
		return p.WorkflowRun.WorkflowID.String()
	}
	return p.WorkflowRun.Name
}

// run runs r's actions on ev from action from on, and returns the index
// of the action that failed.
func (e *Engine) run(ctx context.Context, r *recipeCompiled, ev *Event, from int) (int, error) {
	data := recipeData(ev)
	for j, a := range r.Actions {
		if j < from {
			continue
		}
		var err error
		switch {
		case a.Post != nil:
			err = e.post(ctx, actionKey(ev, r, j), r.templates[j], a.Post.Channel, data)
		case a.Command != nil:
			err = e.command(ctx, actionKey(ev, r, j), a.Command)
		case a.Forward != nil:
			err = e.forward(ctx, a.Forward, ev)
		}
		if err != nil {
			return j, fmt.Errorf("recipe %q: action %d (%s): %w", r.Name, j+1, recipeKinds(a)[0], err)
		}
	}
	return len(r.Actions), nil
}

// actionKey names one action of one recipe for one event.
func actionKey(ev *Event, r *recipeCompiled, j int) string {
	return fmt.Sprintf("hook/%s/%s/%d", ev.ID, r.Name, j+1)
}

func recipeData(ev *Event) recipeTemplateData {
	d := recipeTemplateData{Event: *ev}
	// A payload that is not a JSON object leaves .Data empty rather than
	// failing the post: the Event's own fields are still worth posting.
	// UseNumber keeps ids such as 30433642 as written, not 3.0433642e+07.
	if len(ev.Payload) > 0 {
		dec := json.NewDecoder(bytes.NewReader(ev.Payload))
		dec.UseNumber()
		if err := dec.Decode(&d.Data); err != nil {
			d.Data = nil
		}
	}
	return d
}

func recipeRender(t *template.Template, data recipeTemplateData) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("rendering the template: %w", err)
	}
	// A payload field the sender left out prints as "<no value>" (missingkey
	// does not apply to JSON's map[string]any); an empty string reads better.
	return strings.TrimSpace(strings.ReplaceAll(b.String(), "<no value>", "")), nil
}

// recipeFallback is posted when a template fails on an event (a field
// missing from this provider's payload): the event still reaches the
// channel, with why it looks plain.
func recipeFallback(data recipeTemplateData, err error) string {
	title := data.Title
	if title == "" {
		title = strings.TrimSpace(data.Type + " " + data.Project + " " + data.Ref + " " + data.Status)
	}
	return recipeLink(title, data.URL) +
		"\n_(the recipe's template failed: " + err.Error() + ")_"
}

func (e *Engine) post(ctx context.Context, key string, t *template.Template, channel string, data recipeTemplateData) error {
	text, err := recipeRender(t, data)
	if err != nil {
		e.log.Error("rendering a recipe template; posting the plain event", "event", data.ID, "err", err)
		text = recipeFallback(data, err)
	}
	ctx, cancel := context.WithTimeout(ctx, e.o.PostTimeout)
	defer cancel()
	if err := e.o.Poster.Post(ctx, key, channel, text); err != nil {
		return fmt.Errorf("posting in %s: %w", channel, err)
	}
	return nil
}

func (e *Engine) command(ctx context.Context, key string, c *CommandAction) error {
	ctx, cancel := context.WithTimeout(ctx, e.o.PostTimeout)
	defer cancel()
	if err := e.o.Commander.Run(ctx, key, *c); err != nil {
		return fmt.Errorf("running %q: %w", c.Line, err)
	}
	return nil
}

func (e *Engine) forward(ctx context.Context, f *ForwardAction, ev *Event) error {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = defaultForwardTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding the event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("forwarding to %s: %w", RedactURL(f.URL), err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.o.HTTPClient.Do(req)
	if err != nil {
		// url.Error repeats the URL, query secrets included; say only where.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("forwarding to %s: %w", RedactURL(f.URL), err)
	}
	defer resp.Body.Close()
	// Drain a little so the connection can be reused, never a whole body.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("forwarding to %s: %s", RedactURL(f.URL), resp.Status)
	}
	return nil
}

// RedactURL keeps a URL's scheme, host and path: forward URLs often
// carry a token in the query or the user info.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(bad url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}

// Recipes lists the engine's recipes in config order.
func (e *Engine) Recipes() []Recipe {
	out := make([]Recipe, len(e.recipes))
	for i, r := range e.recipes {
		out[i] = r.Recipe
	}
	return out
}

// ErrNoRecipe is returned by Preview for a name no recipe has.
var ErrNoRecipe = errors.New("no such recipe")

// Preview renders what the named recipe's post actions would post for ev,
// without posting, running or forwarding anything, and without touching
// the status memory. It renders even when ev does not pass the filters;
// then matched is false and reason says which filter refused it, so
// `hooks test` can show both.
func (e *Engine) Preview(name string, ev Event) (posts []string, matched bool, reason string, err error) {
	for i := range e.recipes {
		r := &e.recipes[i]
		if r.Name != name {
			continue
		}
		matched, reason = recipeMatch(&r.Recipe, &ev)
		data := recipeData(&ev)
		for j, a := range r.Actions {
			if a.Post == nil {
				continue
			}
			text, err := recipeRender(r.templates[j], data)
			if err != nil {
				return nil, matched, reason, fmt.Errorf("recipe %q: action %d (post): %w", name, j+1, err)
			}
			posts = append(posts, text)
		}
		return posts, matched, reason, nil
	}
	return nil, false, "", fmt.Errorf("previewing %q: %w", name, ErrNoRecipe)
}
