package notifications

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
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
	ev := Event{Source: s.Name, Kind: s.Kind, Received: now.UTC()}
	if s.Kind == KindSlack {
		body = slackForm(h, body)
	}
	if !json.Valid(body) {
		return ev, &ParseError{Source: s.Name, Err: errors.New("body is not JSON")}
	}
	ev.Payload = json.RawMessage(append([]byte(nil), body...))
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
	if ev.ID == "" || len(ev.ID) > 128 {
		// No (usable) delivery id: the same body from the same source is
		// the same event, so a retry still de-duplicates.
		sum := sha256.Sum256(append([]byte(s.Name+"\x00"), body...))
		ev.ID = "sha256:" + hex.EncodeToString(sum[:])
	} else {
		ev.ID = s.Kind + ":" + ev.ID
	}
	return ev, nil
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

// The structs below name only the fields Event needs; templates reach the
// rest through Event.Payload.

type gitlabHook struct {
	ObjectKind string `json:"object_kind"`
	Ref        string `json:"ref"`
	UserName   string `json:"user_name"`
	Attrs      struct {
		ID     int64  `json:"id"`
		Ref    string `json:"ref"`
		Status string `json:"status"`
		URL    string `json:"url"`
	} `json:"object_attributes"`
	Project struct {
		PathWithNamespace string `json:"path_with_namespace"`
		WebURL            string `json:"web_url"`
	} `json:"project"`
	Commit struct {
		Message string `json:"message"`
	} `json:"commit"`
	Commits []struct {
		Message string `json:"message"`
		URL     string `json:"url"`
	} `json:"commits"`
	TotalCommits int `json:"total_commits_count"`
}

func parseGitLab(ev *Event, body []byte) error {
	var p gitlabHook
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	ev.Project = p.Project.PathWithNamespace
	switch p.ObjectKind {
	case "pipeline":
		ev.Type = "pipeline"
		ev.Ref = shortRef(p.Attrs.Ref)
		ev.Status = gitlabStatus(p.Attrs.Status)
		ev.URL = p.Attrs.URL
		if ev.URL == "" && p.Project.WebURL != "" {
			ev.URL = fmt.Sprintf("%s/-/pipelines/%d", p.Project.WebURL, p.Attrs.ID)
		}
		ev.Title = fmt.Sprintf("Pipeline #%d %s on %s: %s", p.Attrs.ID, ev.Status, ev.Ref, firstLine(p.Commit.Message))
	case "push", "tag_push":
		ev.Type = p.ObjectKind
		ev.Ref = shortRef(p.Ref)
		ev.URL = p.Project.WebURL
		if n := len(p.Commits); n > 0 {
			ev.URL = p.Commits[n-1].URL
		}
		ev.Title = fmt.Sprintf("%s pushed %d commit(s) to %s", p.UserName, p.TotalCommits, ev.Ref)
	case "":
		return errors.New("no object_kind")
	default:
		ev.Type = p.ObjectKind
		ev.Ref = shortRef(p.Ref)
		ev.URL = p.Project.WebURL
		ev.Title = p.ObjectKind + " on " + ev.Project
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

type githubHook struct {
	Ref         string `json:"ref"`
	Compare     string `json:"compare"`
	WorkflowRun *struct {
		ID         int64  `json:"id"`
		Name       string `json:"name"`
		HeadBranch string `json:"head_branch"`
		Status     string `json:"status"`
		Conclusion string `json:"conclusion"`
		HTMLURL    string `json:"html_url"`
	} `json:"workflow_run"`
	Repository struct {
		FullName string `json:"full_name"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
	Pusher struct {
		Name string `json:"name"`
	} `json:"pusher"`
	Commits    []json.RawMessage `json:"commits"`
	HeadCommit *struct {
		Message string `json:"message"`
		URL     string `json:"url"`
	} `json:"head_commit"`
}

func parseGitHub(ev *Event, event string, body []byte) error {
	var p githubHook
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	ev.Project = p.Repository.FullName
	if event == "" {
		// Without the header, tell the two we know by their shape.
		switch {
		case p.WorkflowRun != nil:
			event = "workflow_run"
		case p.Ref != "":
			event = "push"
		default:
			return errors.New("no X-GitHub-Event header")
		}
	}
	ev.Type = event
	switch event {
	case "workflow_run":
		if p.WorkflowRun == nil {
			return errors.New("workflow_run event without workflow_run")
		}
		r := p.WorkflowRun
		ev.Ref = r.HeadBranch
		ev.URL = r.HTMLURL
		// The conclusion is the outcome once completed; before that the
		// status (queued, in_progress) is all there is.
		ev.Status = githubStatus(r.Status, r.Conclusion)
		ev.Title = fmt.Sprintf("Workflow %s %s on %s", r.Name, ev.Status, ev.Ref)
	case "push":
		ev.Ref = shortRef(p.Ref)
		ev.URL = p.Compare
		if ev.URL == "" && p.HeadCommit != nil {
			ev.URL = p.HeadCommit.URL
		}
		ev.Title = fmt.Sprintf("%s pushed %d commit(s) to %s", p.Pusher.Name, len(p.Commits), ev.Ref)
	default:
		ev.Ref = shortRef(p.Ref)
		ev.URL = p.Repository.HTMLURL
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

type giteaHook struct {
	Ref        string `json:"ref"`
	CompareURL string `json:"compare_url"`
	Commits    []struct {
		Message string `json:"message"`
		URL     string `json:"url"`
	} `json:"commits"`
	Repository struct {
		FullName string `json:"full_name"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
	Pusher struct {
		Login string `json:"login"`
	} `json:"pusher"`
}

func parseGitea(ev *Event, event string, body []byte) error {
	var p giteaHook
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	if event == "" {
		event = "push"
	}
	ev.Type = event
	ev.Project = p.Repository.FullName
	ev.Ref = shortRef(p.Ref)
	ev.URL = p.CompareURL
	if ev.URL == "" {
		ev.URL = p.Repository.HTMLURL
	}
	if event == "push" {
		ev.Title = fmt.Sprintf("%s pushed %d commit(s) to %s", p.Pusher.Login, len(p.Commits), ev.Ref)
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
