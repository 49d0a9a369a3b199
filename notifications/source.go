package notifications

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/go-playground/webhooks/v6/gitea"
	"github.com/go-playground/webhooks/v6/github"
	"github.com/go-playground/webhooks/v6/gitlab"
)

// Kinds of source a webhook can come from.
const (
	KindGitLab    = "gitlab"
	KindGitHub    = "github"
	KindGitea     = "gitea"
	KindNextcloud = "nextcloud"
	KindGeneric   = "generic"
	KindSlack     = "slack"
)

var kinds = map[string]bool{KindGitLab: true, KindGitHub: true, KindGitea: true, KindNextcloud: true, KindGeneric: true, KindSlack: true}

// Source is one configured sender of webhooks, reached at /hooks/<Name>
// (slack: /hooks/<Name>/<Secret>).
type Source struct {
	Name   string `yaml:"name"`
	Kind   string `yaml:"kind"`
	Secret string `yaml:"secret"` // token or HMAC key; never logged
}

// String never shows the secret, so a source can be logged as is.
func (s Source) String() string { return fmt.Sprintf("%s (%s, secret ***)", s.Name, s.Kind) }

var sourceName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$`)

// minSecret is short enough for GitLab's token field, long enough not to be
// guessed.
const minSecret = 16

// Validate reports every problem of s, naming the source.
func (s Source) Validate() error {
	var errs []error
	name := s.Name
	if name == "" {
		name = "(unnamed)"
	}
	if !sourceName.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("source %q: name must be 1-64 letters, digits, '.', '_' or '-' (it is a URL path element)", s.Name))
	}
	if !kinds[s.Kind] {
		errs = append(errs, fmt.Errorf("source %s: unknown kind %q (want gitlab, github, gitea, nextcloud, generic or slack)", name, s.Kind))
	}
	if len(s.Secret) < minSecret {
		errs = append(errs, fmt.Errorf("source %s: secret must be at least %d characters", name, minSecret))
	}
	if s.Kind == KindSlack && strings.ContainsAny(s.Secret, "/?#%") {
		errs = append(errs, fmt.Errorf("source %s: a slack secret is part of the URL and must not contain '/', '?', '#' or '%%'", name))
	}
	return errors.Join(errs...)
}

// ParseError says a verified body could not be understood (HTTP 400).
type ParseError struct {
	Source string
	Err    error
}

func (e *ParseError) Error() string { return fmt.Sprintf("parsing a %s webhook: %v", e.Source, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// Parse turns a verified body into an Event. It reads only headers that
// name the event and the delivery; verification is Verify's job and must
// come first.
func (s Source) Parse(h http.Header, body []byte, now time.Time) (Event, error) {
	return s.parse(h, body, now, true)
}

// parse is Parse; the server passes copy=false for a body it owns, so the
// event's Payload keeps that buffer instead of a copy.
func (s Source) parse(h http.Header, body []byte, now time.Time, copyBody bool) (Event, error) {
	ev := Event{Source: s.Name, Kind: s.Kind, Received: now.UTC()}
	if s.Kind == KindSlack {
		body = slackForm(h, body)
	}
	if !json.Valid(body) {
		return ev, &ParseError{Source: s.Name, Err: errors.New("body is not JSON")}
	}
	ev.Payload = json.RawMessage(body)
	if copyBody {
		ev.Payload = json.RawMessage(append([]byte(nil), body...))
	}
	var err error
	switch s.Kind {
	case KindGitLab:
		ev.ID = h.Get("X-Gitlab-Event-UUID")
		err = parseGitLab(&ev, body)
	case KindGitHub:
		ev.ID = h.Get("X-GitHub-Delivery")
		err = parseGitHub(&ev, h.Get("X-GitHub-Event"), body)
	case KindGitea:
		ev.ID = h.Get("X-Gitea-Delivery")
		err = parseGitea(&ev, h.Get("X-Gitea-Event"), body)
	case KindNextcloud:
		err = parseNextcloud(&ev, body)
	case KindGeneric:
		err = parseGeneric(&ev, body)
	case KindSlack:
		err = parseSlack(&ev, body)
	default:
		err = fmt.Errorf("unknown kind %q", s.Kind)
	}
	if err != nil {
		return ev, &ParseError{Source: s.Name, Err: err}
	}
	switch {
	case s.Kind == KindGeneric:
		// The signed timestamp is part of the ID: the same alert sent
		// again later is a new event, and only the same signed request
		// (refused anyway once its timestamp is past MaxSkew) is a replay.
		ev.ID = s.Kind + ":" + hashHex(s.Name, []byte(h.Get(HeaderTimestamp)), body)
	case s.Kind == KindSlack || s.Kind == KindNextcloud:
		// Neither sends a delivery id nor a signed time, and their secret
		// is static: whoever holds it can send anything, so refusing a
		// repeated body would protect nothing and drop a genuine second
		// "disk full" alert. Each request is its own event.
		ev.ID = s.Kind + ":" + rand.Text()
	case ev.ID == "" || len(ev.ID) > 128:
		// No (usable) delivery id: the same body from the same source is
		// the same event, so a retry still de-duplicates.
		ev.ID = bodyKey(s.Name, body)
	default:
		ev.ID = s.Kind + ":" + ev.ID
	}
	return ev, nil
}

// ReplayKeys are the keys besides ev.ID that mark a repeat of this
// request as a replay (Store.Accept takes them). GitHub, Gitea and GitLab
// send their delivery id in a header their signature does not cover
// (GitLab's token is static), so a captured body resent under a new
// delivery id is recognised by the body's hash; two genuine events never
// share a body, since each names its own delivery, commit or time.
func (s Source) ReplayKeys(ev Event, body []byte) []string {
	switch s.Kind {
	case KindGitHub, KindGitea, KindGitLab:
		if k := bodyKey(s.Name, body); k != ev.ID {
			return []string{k}
		}
	}
	return nil
}

// bodyKey is the ID of a body from a source without a delivery id; the
// same form as before ReplayKeys, so a store written earlier still knows
// the bodies it saw.
func bodyKey(source string, body []byte) string {
	return "sha256:" + hashHex(source, body)
}

// hashHex is the SHA-256 of the source's name, then of each part after a
// NUL (no name or timestamp holds one, so no two lists hash alike).
func hashHex(source string, parts ...[]byte) string {
	h := sha256.New()
	h.Write([]byte(source))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func shortRef(ref string) string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if r, ok := strings.CutPrefix(ref, p); ok {
			return r
		}
	}
	return ref
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// GitLab, GitHub and Gitea payloads are decoded into the payload types of
// github.com/go-playground/webhooks/v6 (its structs only: its HTTP Parse
// would verify and read the request itself, while here Verify runs first in
// constant time and Event.Payload keeps the raw body for templates). The
// structs are decoded leniently (decodeLenient): a field of a type or
// format the library did not expect is left zero instead of refusing the
// event.

// decodeLenient fills v, a pointer to a payload struct, from body as
// json.Unmarshal does, except that a value json.Unmarshal refuses (a time
// in a layout the library does not know, a number sent as a string) leaves
// only that field zero. The caller has checked that body is valid JSON.
func decodeLenient(body []byte, v any) {
	if json.Unmarshal(body, v) == nil {
		return
	}
	lenientValue(body, reflect.ValueOf(v).Elem())
}

func lenientValue(raw []byte, v reflect.Value) {
	if json.Unmarshal(raw, v.Addr().Interface()) == nil {
		return
	}
	v.SetZero()
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		lenientValue(raw, p.Elem())
		v.Set(p)
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) == nil {
			lenientFields(obj, v)
		}
	case reflect.Slice:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) == nil {
			s := reflect.MakeSlice(v.Type(), len(items), len(items))
			for i, item := range items {
				lenientValue(item, s.Index(i))
			}
			v.Set(s)
		}
	}
}

// lenientFields decodes each field of the struct v from its key in obj.
func lenientFields(obj map[string]json.RawMessage, v reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-":
		case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
			lenientFields(obj, v.Field(i))
		default:
			if name == "" {
				name = f.Name
			}
			if raw, ok := obj[name]; ok {
				lenientValue(raw, v.Field(i))
			}
		}
	}
}

func parseGitLab(ev *Event, body []byte) error {
	var head struct {
		ObjectKind string `json:"object_kind"`
	}
	decodeLenient(body, &head)
	ev.Type = head.ObjectKind
	switch head.ObjectKind {
	case "pipeline":
		var p gitlab.PipelineEventPayload
		decodeLenient(body, &p)
		a := p.ObjectAttributes
		ev.Project = p.Project.PathWithNamespace
		ev.Ref = shortRef(a.Ref)
		ev.Status = gitlabStatus(a.Status)
		ev.URL = a.Url
		if ev.URL == "" && p.Project.WebURL != "" {
			ev.URL = fmt.Sprintf("%s/-/pipelines/%d", p.Project.WebURL, a.ID)
		}
		ev.Title = fmt.Sprintf("Pipeline #%d %s on %s: %s", a.ID, ev.Status, ev.Ref, firstLine(p.Commit.Message))
	case "push", "tag_push":
		// The tag push payload has the same shape.
		var p gitlab.PushEventPayload
		decodeLenient(body, &p)
		ev.Project = p.Project.PathWithNamespace
		ev.Ref = shortRef(p.Ref)
		ev.URL = p.Project.WebURL
		if n := len(p.Commits); n > 0 {
			ev.URL = p.Commits[n-1].URL
		}
		if head.ObjectKind == "tag_push" {
			ev.Title = fmt.Sprintf("%s pushed tag %s", p.UserName, ev.Ref)
		} else {
			ev.Title = fmt.Sprintf("%s pushed %d commit(s) to %s", p.UserName, p.TotalCommitsCount, ev.Ref)
		}
	case "build":
		// Job events: GitLab's object_kind is still "build".
		var p gitlab.JobEventPayload
		decodeLenient(body, &p)
		ev.Project = p.ProjectName
		ev.Ref = shortRef(p.Ref)
		ev.Status = gitlabStatus(p.BuildStatus)
		if p.Repository.Homepage != "" {
			ev.URL = fmt.Sprintf("%s/-/jobs/%d", p.Repository.Homepage, p.BuildID)
		}
		ev.Title = fmt.Sprintf("Job %s %s on %s", p.BuildName, ev.Status, ev.Ref)
	case "merge_request":
		var p gitlab.MergeRequestEventPayload
		decodeLenient(body, &p)
		a := p.ObjectAttributes
		ev.Project = p.Project.PathWithNamespace
		ev.Ref = a.TargetBranch
		ev.URL = a.URL
		ev.Title = fmt.Sprintf("Merge request !%d %s: %s", a.IID, a.Action, a.Title)
	case "":
		return errors.New("no object_kind")
	default:
		var p struct {
			Ref     string         `json:"ref"`
			Project gitlab.Project `json:"project"`
		}
		decodeLenient(body, &p)
		ev.Project = p.Project.PathWithNamespace
		ev.Ref = shortRef(p.Ref)
		ev.URL = p.Project.WebURL
		ev.Title = head.ObjectKind + " on " + ev.Project
	}
	return nil
}

// gitlabStatus maps GitLab's pipeline statuses onto the shared words;
// the others (failed, success, running, ...) are already the same.
func gitlabStatus(s string) string {
	if s == "cancelled" {
		return "canceled"
	}
	return s
}

// githubRepo is what every GitHub event says of its repository.
type githubRepo struct {
	Ref        string `json:"ref"`
	Repository struct {
		FullName string `json:"full_name"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
	WorkflowRun json.RawMessage `json:"workflow_run"`
}

func parseGitHub(ev *Event, event string, body []byte) error {
	var r githubRepo
	decodeLenient(body, &r)
	ev.Project = r.Repository.FullName
	if event == "" {
		// Without the header, tell the two we know by their shape.
		switch {
		case len(r.WorkflowRun) > 0 && string(r.WorkflowRun) != "null":
			event = "workflow_run"
		case r.Ref != "":
			event = "push"
		default:
			return errors.New("no X-GitHub-Event header")
		}
	}
	ev.Type = event
	switch event {
	case "workflow_run":
		var p github.WorkflowRunPayload
		decodeLenient(body, &p)
		run := p.WorkflowRun
		if run.ID == 0 && run.HTMLURL == "" && run.Status == "" {
			return errors.New("workflow_run event without workflow_run")
		}
		ev.Ref = run.HeadBranch
		ev.URL = run.HTMLURL
		// The conclusion is the outcome once completed; before that the
		// status (queued, in_progress) is all there is.
		ev.Status = githubStatus(run.Status, run.Conclusion)
		name := run.Name
		if name == "" {
			name = p.Workflow.Name
		}
		ev.Title = fmt.Sprintf("Workflow %s %s on %s", name, ev.Status, ev.Ref)
	case "workflow_job":
		var p github.WorkflowJobPayload
		decodeLenient(body, &p)
		// The library's struct names neither the branch nor the workflow.
		var more struct {
			WorkflowJob struct {
				HeadBranch   string `json:"head_branch"`
				WorkflowName string `json:"workflow_name"`
			} `json:"workflow_job"`
		}
		decodeLenient(body, &more)
		job := p.WorkflowJob
		ev.Ref = more.WorkflowJob.HeadBranch
		ev.URL = job.HTMLURL
		ev.Status = githubStatus(job.Status, job.Conclusion)
		ev.Title = strings.TrimSpace(fmt.Sprintf("Job %s %s %s on %s", more.WorkflowJob.WorkflowName, job.Name, ev.Status, ev.Ref))
	case "push":
		var p github.PushPayload
		decodeLenient(body, &p)
		ev.Ref = shortRef(p.Ref)
		ev.URL = p.Compare
		if ev.URL == "" {
			ev.URL = p.HeadCommit.URL
		}
		ev.Title = fmt.Sprintf("%s pushed %d commit(s) to %s", p.Pusher.Name, len(p.Commits), ev.Ref)
	case "pull_request":
		// Ref is the branch the pull request would merge into, so a
		// branch filter on main hears the pull requests aimed at main.
		var p github.PullRequestPayload
		decodeLenient(body, &p)
		pr := p.PullRequest
		ev.Ref = pr.Base.Ref
		ev.URL = pr.HTMLURL
		ev.Title = fmt.Sprintf("Pull request #%d %s: %s", p.Number, p.Action, pr.Title)
	default:
		ev.Ref = shortRef(r.Ref)
		ev.URL = r.Repository.HTMLURL
		ev.Title = event + " on " + ev.Project
	}
	return nil
}

func githubStatus(status, conclusion string) string {
	switch {
	case status != "completed":
		if status == "in_progress" {
			return "running"
		}
		return status
	case conclusion == "failure", conclusion == "timed_out", conclusion == "startup_failure":
		return "failed"
	case conclusion == "cancelled":
		return "canceled"
	}
	return conclusion
}

func parseGitea(ev *Event, event string, body []byte) error {
	if event == "" {
		event = "push"
	}
	ev.Type = event
	// Every Gitea event names its repository; a push also its commits.
	var p gitea.PushPayload
	decodeLenient(body, &p)
	if p.Repo != nil {
		ev.Project = p.Repo.FullName
		ev.URL = p.Repo.HTMLURL
	}
	ev.Ref = shortRef(p.Ref)
	if p.CompareURL != "" {
		ev.URL = p.CompareURL
	}
	if event == "push" {
		pusher := ""
		if p.Pusher != nil {
			pusher = p.Pusher.UserName
		}
		ev.Title = fmt.Sprintf("%s pushed %d commit(s) to %s", pusher, len(p.Commits), ev.Ref)
	} else {
		ev.Title = event + " on " + ev.Project
	}
	return nil
}

// nextcloudHook is what the webhook_listeners app posts: the user, the
// time and the serialised event.
type nextcloudHook struct {
	User struct {
		UID string `json:"uid"`
	} `json:"user"`
	Event struct {
		Class string `json:"class"`
		Node  struct {
			Path string `json:"path"`
		} `json:"node"`
	} `json:"event"`
}

func parseNextcloud(ev *Event, body []byte) error {
	var p nextcloudHook
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	if p.Event.Class == "" {
		return errors.New("no event.class")
	}
	// OCP\Files\Events\Node\NodeCreatedEvent -> NodeCreatedEvent
	cls := p.Event.Class
	ev.Type = cls[strings.LastIndex(cls, `\`)+1:]
	ev.Project = p.User.UID
	ev.Title = ev.Type
	if p.Event.Node.Path != "" {
		ev.Title += " " + p.Event.Node.Path
	}
	return nil
}

type genericHook struct {
	Type    string `json:"type"`
	Project string `json:"project"`
	Ref     string `json:"ref"`
	Status  string `json:"status"`
	URL     string `json:"url"`
	Title   string `json:"title"`
	Text    string `json:"text"`
}

func parseGeneric(ev *Event, body []byte) error {
	var p genericHook
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	if p.Type == "" {
		return errors.New(`no "type" field`)
	}
	ev.Type, ev.Project, ev.Ref, ev.Status, ev.URL, ev.Title, ev.Text = p.Type, p.Project, shortRef(p.Ref), p.Status, p.URL, p.Title, p.Text
	return nil
}

type slackHook struct {
	Text        string `json:"text"`
	Channel     string `json:"channel"`
	Username    string `json:"username"`
	IconURL     string `json:"icon_url"`
	Attachments []struct {
		Fallback  string `json:"fallback"`
		Title     string `json:"title"`
		TitleLink string `json:"title_link"`
		Text      string `json:"text"`
	} `json:"attachments"`
}

// slackForm unwraps the form Slack's incoming webhooks also accept
// (payload=<json>), which some tools send instead of a JSON body.
func slackForm(h http.Header, body []byte) []byte {
	if !strings.HasPrefix(h.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return body
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		return body
	}
	return []byte(form.Get("payload"))
}

func parseSlack(ev *Event, body []byte) error {
	var p slackHook
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	if p.Text == "" && len(p.Attachments) == 0 {
		return errors.New(`neither "text" nor "attachments"`)
	}
	ev.Type = "message"
	ev.Text = p.Text
	ev.Channel = p.Channel
	ev.Project = p.Username
	ev.Title = firstLine(p.Text)
	for _, a := range p.Attachments {
		if ev.Title == "" {
			ev.Title = firstLine(a.Title + " " + a.Fallback)
		}
		if ev.URL == "" {
			ev.URL = a.TitleLink
		}
		if ev.Text == "" {
			ev.Text = a.Text
		}
	}
	return nil
}
