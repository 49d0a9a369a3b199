package notifications

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/summoner-bot/summoner/internal/golden"
)

// recipePoster records posts, and fails for the channels in fail.
type recipePoster struct {
	mu    sync.Mutex
	posts []string // "channel: text"
	fail  map[string]bool
}

func (p *recipePoster) Post(ctx context.Context, key, channel, text string) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("post without a deadline")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail[channel] {
		return errors.New("mattermost is down")
	}
	p.posts = append(p.posts, channel+": "+text)
	return nil
}

func (p *recipePoster) got() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.posts...)
}

// recipeCommander records command runs and answers each with one reply.
type recipeCommander struct {
	p    *recipePoster
	fail bool
}

func (c *recipeCommander) Run(ctx context.Context, key string, a CommandAction) error {
	if _, ok := ctx.Deadline(); !ok {
		return errors.New("command without a deadline")
	}
	c.p.mu.Lock()
	c.p.posts = append(c.p.posts, "run("+a.Level+"): "+a.Line)
	c.p.mu.Unlock()
	if c.fail {
		return errors.New("minion not found")
	}
	if a.Channel != "" {
		return c.p.Post(ctx, key+"/reply", a.Channel, "done: "+a.Line)
	}
	return nil
}

func recipeQuiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func recipeEngine(t *testing.T, recipes []Recipe, p *recipePoster) *Engine {
	t.Helper()
	e, err := NewEngine(recipes, EngineOptions{Poster: p, Commander: &recipeCommander{p: p}, Logger: recipeQuiet()})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	return e
}

func recipePost(channel, tmpl string) Action {
	return Action{Post: &PostAction{Channel: channel, Template: tmpl}}
}

func TestRecipeFilters(t *testing.T) {
	ev := Event{ID: "1", Source: "gl", Kind: "gitlab", Type: "pipeline", Project: "team/app", Ref: "release/2.1", Status: "failed"}
	tests := []struct {
		name   string
		recipe Recipe
		want   bool
	}{
		{"no filters", Recipe{Source: "gl"}, true},
		{"other source", Recipe{Source: "gh"}, false},
		{"event type matches", Recipe{Source: "gl", Events: []string{"push", "pipeline"}}, true},
		{"event type differs", Recipe{Source: "gl", Events: []string{"push"}}, false},
		{"project exact", Recipe{Source: "gl", Projects: []string{"team/app"}}, true},
		{"project glob", Recipe{Source: "gl", Projects: []string{"team/*"}}, true},
		{"project glob does not cross slashes", Recipe{Source: "gl", Projects: []string{"*"}}, false},
		{"project differs", Recipe{Source: "gl", Projects: []string{"team/web"}}, false},
		{"branch glob", Recipe{Source: "gl", Branches: []string{"main", "release/*"}}, true},
		{"branch differs", Recipe{Source: "gl", Branches: []string{"main"}}, false},
		{"status matches", Recipe{Source: "gl", Statuses: []string{"failed"}}, true},
		{"status differs", Recipe{Source: "gl", Statuses: []string{"success"}}, false},
		{"all filters", Recipe{Source: "gl", Events: []string{"pipeline"}, Projects: []string{"team/app"},
			Branches: []string{"release/*"}, Statuses: []string{"failed", "canceled"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.recipe.Name = "r"
			tt.recipe.Actions = []Action{recipePost("ci", "{{.Status}}")}
			p := &recipePoster{}
			if err := recipeEngine(t, []Recipe{tt.recipe}, p).Handle(t.Context(), ev); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			if got := len(p.got()) == 1; got != tt.want {
				t.Errorf("posted = %v, want %v (posts %q)", got, tt.want, p.got())
			}
		})
	}
}

func TestRecipeStatusChanged(t *testing.T) {
	tests := []struct {
		name     string
		statuses []string // one event each, same source, project, ref and type
		want     []string // what the recipe posted
	}{
		{"first success is no news", []string{"success"}, nil},
		{"first failure is heard", []string{"failed"}, []string{"failed"}},
		{"failed then fixed", []string{"failed", "success"}, []string{"failed", "success"}},
		{"success then success stays quiet", []string{"success", "success"}, nil},
		{"success then failed", []string{"success", "failed"}, []string{"failed"}},
		{"failed twice is said once", []string{"failed", "failed"}, []string{"failed"}},
		{"running in between does not reset", []string{"success", "running", "success", "failed"}, []string{"failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &recipePoster{}
			e := recipeEngine(t, []Recipe{{Name: "changes", Source: "gl", StatusChanged: true,
				Actions: []Action{recipePost("ci", "{{.Status}}")}}}, p)
			for i, s := range tt.statuses {
				ev := Event{ID: string(rune('a' + i)), Source: "gl", Type: "pipeline", Project: "team/app", Ref: "main", Status: s}
				if err := e.Handle(t.Context(), ev); err != nil {
					t.Fatalf("Handle: %v", err)
				}
			}
			var want []string
			for _, s := range tt.want {
				want = append(want, "ci: "+s)
			}
			if got := p.got(); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("posts = %q, want %q", got, want)
			}
		})
	}

	t.Run("keys are per ref", func(t *testing.T) {
		p := &recipePoster{}
		e := recipeEngine(t, []Recipe{{Name: "changes", Source: "gl", StatusChanged: true,
			Actions: []Action{recipePost("ci", "{{.Ref}} {{.Status}}")}}}, p)
		for _, ev := range []Event{
			{Source: "gl", Type: "pipeline", Project: "a", Ref: "main", Status: "success"},
			{Source: "gl", Type: "pipeline", Project: "a", Ref: "dev", Status: "success"},
			{Source: "gl", Type: "pipeline", Project: "a", Ref: "dev", Status: "failed"},
			{Source: "gl", Type: "pipeline", Project: "a", Ref: "main", Status: "success"},
		} {
			if err := e.Handle(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Join(p.got(), "|"); got != "ci: dev failed" {
			t.Errorf("posts = %q", got)
		}
	})

	t.Run("github workflows are apart", func(t *testing.T) {
		p := &recipePoster{}
		e := recipeEngine(t, []Recipe{{Name: "changes", Source: "gh", StatusChanged: true,
			Actions: []Action{recipePost("ci", "{{.Data.workflow_run.name}} {{.Status}}")}}}, p)
		run := func(name, status string) Event {
			return Event{Source: "gh", Type: "workflow_run", Project: "o/r", Ref: "main", Status: status,
				Payload: json.RawMessage(`{"workflow_run":{"name":"` + name + `"}}`)}
		}
		for _, ev := range []Event{run("Build", "success"), run("Lint", "failed"), run("Build", "success"), run("Lint", "success")} {
			if err := e.Handle(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
		if got := strings.Join(p.got(), "|"); got != "ci: Lint failed|ci: Lint success" {
			t.Errorf("posts = %q", got)
		}
	})

	t.Run("two recipes see the same change", func(t *testing.T) {
		p := &recipePoster{}
		e := recipeEngine(t, []Recipe{
			{Name: "a", Source: "gl", StatusChanged: true, Actions: []Action{recipePost("one", "{{.Status}}")}},
			{Name: "b", Source: "gl", StatusChanged: true, Actions: []Action{recipePost("two", "{{.Status}}")}},
		}, p)
		if err := e.Handle(t.Context(), Event{Source: "gl", Type: "pipeline", Status: "failed"}); err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(p.got(), "|"); got != "one: failed|two: failed" {
			t.Errorf("posts = %q", got)
		}
	})

	t.Run("a memory that fails fails only status-changed recipes", func(t *testing.T) {
		p := &recipePoster{}
		e, err := NewEngine([]Recipe{
			{Name: "changes", Source: "gl", StatusChanged: true, Actions: []Action{recipePost("one", "x")}},
			{Name: "all", Source: "gl", Actions: []Action{recipePost("two", "y")}},
		}, EngineOptions{Poster: p, Memory: recipeBrokenMemory{}, Logger: recipeQuiet()})
		if err != nil {
			t.Fatal(err)
		}
		err = e.Handle(t.Context(), Event{Source: "gl", Type: "pipeline", Status: "failed"})
		if err == nil || !strings.Contains(err.Error(), `recipe "changes"`) || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("err = %v", err)
		}
		if got := strings.Join(p.got(), "|"); got != "two: y" {
			t.Errorf("posts = %q", got)
		}
	})
}

type recipeBrokenMemory struct{}

func (recipeBrokenMemory) Swap(context.Context, string, string) (string, bool, error) {
	return "", false, errors.New("disk full")
}

const recipeGitLabPipeline = `{
  "object_kind": "pipeline",
  "object_attributes": {"id": 31, "ref": "main", "sha": "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "status": "failed", "duration": 63},
  "user": {"name": "Administrator", "username": "root"},
  "project": {"id": 1, "name": "Gitlab Test", "path_with_namespace": "gitlab-org/gitlab-test", "web_url": "http://192.168.64.1:3005/gitlab-org/gitlab-test"},
  "commit": {"id": "bcbb5ec396a2c0f828686f14fac9b80b780504f2", "message": "test\n", "title": "test", "author": {"name": "User", "email": "user@gitlab.com"}}
}`

const recipeGitHubWorkflowRun = `{
  "action": "completed",
  "workflow_run": {"id": 30433642, "name": "Build", "head_branch": "main", "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
    "status": "completed", "conclusion": "success", "run_number": 562, "html_url": "https://github.com/octo-org/octo-repo/actions/runs/30433642",
    "head_commit": {"message": "Update README.md [skip deploy]", "author": {"name": "Octo Cat"}}},
  "repository": {"full_name": "octo-org/octo-repo"},
  "sender": {"login": "octocat"}
}`

// The templates a team would write for CI results: the Event's fields for
// what every provider has, .Data for what only one has.
const (
	recipeGitLabTemplate = `{{icon .Status}} Pipeline {{link (printf "#%v" .Data.object_attributes.id) .URL}} **{{.Status}}** on {{.Project}}@{{.Ref}}
{{link (short .Data.commit.id) (printf "%s/-/commit/%s" .Data.project.web_url .Data.commit.id)}} {{.Data.commit.title}} ({{.Data.user.username}})`
	recipeGitHubTemplate = `{{icon .Status}} {{.Data.workflow_run.name}} (run {{.Data.workflow_run.id}}) {{link (printf "#%v" .Data.workflow_run.run_number) .URL}} **{{.Status}}** on {{.Project}}@{{.Ref}}
{{short .Data.workflow_run.head_sha}}{{with .Data.workflow_run.head_commit}} {{.message}}{{end}} by {{.Data.sender.login}}`
)

func TestRecipeTemplatesGolden(t *testing.T) {
	tests := []struct {
		name     string
		template string
		ev       Event
	}{
		{"gitlab_pipeline", recipeGitLabTemplate, Event{ID: "g1", Source: "gl", Kind: "gitlab", Type: "pipeline",
			Project: "gitlab-org/gitlab-test", Ref: "main", Status: "failed",
			URL: "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31", Payload: json.RawMessage(recipeGitLabPipeline)}},
		{"github_workflow_run", recipeGitHubTemplate, Event{ID: "h1", Source: "gh", Kind: "github", Type: "workflow_run",
			Project: "octo-org/octo-repo", Ref: "main", Status: "success",
			URL: "https://github.com/octo-org/octo-repo/actions/runs/30433642", Payload: json.RawMessage(recipeGitHubWorkflowRun)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &recipePoster{}
			r := Recipe{Name: tt.name, Source: tt.ev.Source, Actions: []Action{recipePost("ci", tt.template)}}
			e := recipeEngine(t, []Recipe{r}, p)

			preview, matched, _, err := e.Preview(tt.name, tt.ev)
			if err != nil || !matched || len(preview) != 1 {
				t.Fatalf("Preview = %q, %v, %v", preview, matched, err)
			}
			if err := e.Handle(t.Context(), tt.ev); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			got := p.got()
			if len(got) != 1 || got[0] != "ci: "+preview[0] {
				t.Fatalf("posted %q, preview %q: the preview must be what is posted", got, preview)
			}
			golden.AssertText(t, "recipe_"+tt.name, preview[0])
		})
	}
}

// From the provider's payload to the chat message: the sources' parser
// (source.go) makes the Event, the recipe renders it.
func TestRecipeParsedGolden(t *testing.T) {
	tests := []struct {
		name, kind, event, file, template string
	}{
		{"parsed_gitlab_pipeline", KindGitLab, "Pipeline Hook", "gitlab_pipeline.json", recipeGitLabTemplate},
		{"parsed_github_workflow_run_success", KindGitHub, "workflow_run", "github_workflow_run_success.json", recipeGitHubTemplate},
		{"parsed_github_workflow_run_failure", KindGitHub, "workflow_run", "github_workflow_run_failure.json", recipeGitHubTemplate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			h := http.Header{}
			h.Set("X-Gitlab-Event", tt.event)
			h.Set("X-GitHub-Event", tt.event)
			ev, err := Source{Name: "ci", Kind: tt.kind}.Parse(h, body, time.Unix(0, 0))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			p := &recipePoster{}
			e := recipeEngine(t, []Recipe{{Name: "r", Source: "ci", Statuses: []string{"success", "failed"},
				Actions: []Action{recipePost("ci", tt.template)}}}, p)
			if err := e.Handle(t.Context(), ev); err != nil {
				t.Fatalf("Handle: %v", err)
			}
			got := p.got()
			if len(got) != 1 {
				t.Fatalf("posts = %q (event %+v)", got, ev)
			}
			golden.AssertText(t, "recipe_"+tt.name, strings.TrimPrefix(got[0], "ci: "))
		})
	}
}

func TestRecipeTemplateFailure(t *testing.T) {
	p := &recipePoster{}
	e := recipeEngine(t, []Recipe{{Name: "strict", Source: "gh", Actions: []Action{
		recipePost("ci", "{{.Data.workflow_run.head_commit.message}}"),
		recipePost("ci", "next"),
	}}}, p)
	ev := Event{ID: "x", Source: "gh", Type: "workflow_run", Title: "Workflow Build failed on main",
		URL: "https://ci/1", Payload: json.RawMessage(`{"workflow_run":{}}`)}
	if err := e.Handle(t.Context(), ev); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	got := p.got()
	if len(got) != 2 || !strings.HasPrefix(got[0], "ci: [Workflow Build failed on main](https://ci/1)\n_(the recipe's template failed: ") ||
		got[1] != "ci: next" {
		t.Errorf("posts = %q: the event must still be posted, plainly, and the chain go on", got)
	}
	// Preview shows the failure itself, since that is what the author must fix.
	if _, _, _, err := e.Preview("strict", ev); err == nil || !strings.Contains(err.Error(), "head_commit") {
		t.Errorf("Preview err = %v", err)
	}
}

func TestRecipePreview(t *testing.T) {
	p := &recipePoster{}
	e := recipeEngine(t, []Recipe{{Name: "main only", Source: "gl", Branches: []string{"main"}, Actions: []Action{
		recipePost("ci", "first {{.Ref}}"),
		{Command: &CommandAction{Line: "update app", Level: "operator"}},
		recipePost("ops", "second"),
	}}}, p)
	posts, matched, reason, err := e.Preview("main only", Event{Source: "gl", Ref: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	if matched || !strings.Contains(reason, `ref "dev"`) {
		t.Errorf("matched = %v, reason %q", matched, reason)
	}
	if strings.Join(posts, "|") != "first dev|second" {
		t.Errorf("posts = %q", posts)
	}
	if len(p.got()) != 0 {
		t.Errorf("preview posted or ran: %q", p.got())
	}
	if _, _, _, err := e.Preview("nope", Event{}); !errors.Is(err, ErrNoRecipe) {
		t.Errorf("unknown recipe: err = %v", err)
	}
}

func TestRecipeChains(t *testing.T) {
	ev := Event{Source: "gl", Type: "pipeline", Project: "team/app", Ref: "main", Status: "success"}
	tests := []struct {
		name        string
		recipes     []Recipe
		failChannel string
		failCommand bool
		want        []string
		wantErr     []string
	}{
		{
			name: "deploy on green runs in order",
			recipes: []Recipe{{Name: "deploy", Source: "gl", Actions: []Action{
				recipePost("ci", "deploying {{.Project}}"),
				{Command: &CommandAction{Line: "update app", Level: "operator", Channel: "ops"}},
				recipePost("ci", "deployed"),
			}}},
			want: []string{"ci: deploying team/app", "run(operator): update app", "ops: done: update app", "ci: deployed"},
		},
		{
			name: "a failed action stops its chain, not the next recipe",
			recipes: []Recipe{
				{Name: "first", Source: "gl", Actions: []Action{recipePost("down", "a"), recipePost("ci", "never")}},
				{Name: "second", Source: "gl", Actions: []Action{recipePost("ci", "b")}},
			},
			failChannel: "down",
			want:        []string{"ci: b"},
			wantErr:     []string{`recipe "first": action 1 (post): posting in down: mattermost is down`},
		},
		{
			name: "a failed command is named and the next recipe runs",
			recipes: []Recipe{
				{Name: "deploy", Source: "gl", Actions: []Action{{Command: &CommandAction{Line: "update app", Level: "admin"}}}},
				{Name: "tell", Source: "gl", Actions: []Action{recipePost("ci", "told")}},
			},
			failCommand: true,
			want:        []string{"run(admin): update app", "ci: told"},
			wantErr:     []string{`recipe "deploy": action 1 (command): running "update app": minion not found`},
		},
		{
			name: "every failure is reported",
			recipes: []Recipe{
				{Name: "a", Source: "gl", Actions: []Action{recipePost("down", "x")}},
				{Name: "b", Source: "gl", Actions: []Action{recipePost("ci", "ok"), recipePost("down", "y")}},
			},
			failChannel: "down",
			want:        []string{"ci: ok"},
			wantErr:     []string{`recipe "a": action 1 (post)`, `recipe "b": action 2 (post)`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &recipePoster{fail: map[string]bool{tt.failChannel: true}}
			e, err := NewEngine(tt.recipes, EngineOptions{Poster: p, Commander: &recipeCommander{p: p, fail: tt.failCommand}, Logger: recipeQuiet()})
			if err != nil {
				t.Fatal(err)
			}
			err = e.Handle(t.Context(), ev)
			if got := strings.Join(p.got(), "|"); got != strings.Join(tt.want, "|") {
				t.Errorf("posts = %q, want %q", p.got(), tt.want)
			}
			recipeCheckErr(t, err, tt.wantErr)
		})
	}
}

// recipeCheckErr wants no error when want is empty, else an error holding
// every string in want.
func recipeCheckErr(t *testing.T, err error, want []string) {
	t.Helper()
	if len(want) == 0 {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
		return
	}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error:\n%v\nwant it to contain %q", err, w)
		}
	}
}

func TestRecipeForward(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []Event
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			// Blocks until the client gives up or the test ends: no sleep.
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		case "/broken":
			http.Error(w, "nope", http.StatusBadGateway)
			return
		}
		var ev Event
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "not json", http.StatusUnsupportedMediaType)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, ev)
		mu.Unlock()
	}))
	defer srv.Close()
	defer close(release)

	ev := Event{ID: "f1", Source: "gl", Type: "push", Project: "team/app", Payload: json.RawMessage(`{"x":1}`)}
	tests := []struct {
		name    string
		url     string
		wantErr []string
		wantGot int
	}{
		{"delivered", srv.URL + "/in", nil, 1},
		{"a non-2xx is an error", srv.URL + "/broken", []string{`recipe "fwd": action 1 (forward)`, "502 Bad Gateway"}, 0},
		{"a slow server times out, secret hidden", srv.URL + "/slow?token=s3cret", []string{"/slow:", "deadline exceeded"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			p := &recipePoster{}
			e := recipeEngine(t, []Recipe{
				{Name: "fwd", Source: "gl", Actions: []Action{{Forward: &ForwardAction{URL: tt.url, Timeout: 50 * time.Millisecond}}}},
				{Name: "after", Source: "gl", Actions: []Action{recipePost("ci", "still here")}},
			}, p)
			err := e.Handle(t.Context(), ev)
			recipeCheckErr(t, err, tt.wantErr)
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error reveals the URL's secret: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != tt.wantGot || (tt.wantGot == 1 && (got[0].ID != "f1" || string(got[0].Payload) != `{"x":1}`)) {
				t.Errorf("server got %+v", got)
			}
			if strings.Join(p.got(), "|") != "ci: still here" {
				t.Errorf("the next recipe did not run: %q", p.got())
			}
		})
	}
}

func TestRecipeValidate(t *testing.T) {
	ok := recipePost("ci", "{{.Title}}")
	tests := []struct {
		name    string
		recipes []Recipe
		want    []string // every line must appear; nil means valid
	}{
		{"valid", []Recipe{
			{Name: "a", Source: "gl", Branches: []string{"release/*"}, Actions: []Action{ok}},
			{Name: "b", Source: "docker", Actions: []Action{{Forward: &ForwardAction{URL: "https://example.org/x"}}}},
			{Name: "c", Source: "maintenance", Actions: []Action{{Command: &CommandAction{Line: "update app", Level: "operator"}}}},
		}, nil},
		{"unknown source", []Recipe{{Name: "a", Source: "gitlub", Actions: []Action{ok}}},
			[]string{`recipe "a": unknown source "gitlub" (known: gl, gh, docker, maintenance)`}},
		{"bad template", []Recipe{{Name: "t", Source: "gl", Actions: []Action{recipePost("ci", "{{.Title")}}},
			[]string{`recipe "t": action 1: post: template:`}},
		{"unknown template func", []Recipe{{Name: "t", Source: "gl", Actions: []Action{recipePost("ci", "{{shorten .Title}}")}}},
			[]string{`recipe "t": action 1: post: template:`, `"shorten" not defined`}},
		{"no kind", []Recipe{{Name: "k", Source: "gl", Actions: []Action{{}}}},
			[]string{`recipe "k": action 1: no kind`}},
		{"two kinds", []Recipe{{Name: "k", Source: "gl", Actions: []Action{{Post: ok.Post, Forward: &ForwardAction{URL: "http://x"}}}}},
			[]string{`recipe "k": action 1: two kinds or more (post, forward)`}},
		{"bad glob", []Recipe{{Name: "g", Source: "gl", Branches: []string{"release/[a"}, Actions: []Action{ok}}},
			[]string{`recipe "g": bad glob "release/[a"`}},
		{"forward not http", []Recipe{{Name: "f", Source: "gl", Actions: []Action{{Forward: &ForwardAction{URL: "ftp://x/y"}}}}},
			[]string{`recipe "f": action 1: forward: url "ftp://x/y" is not an http(s) URL`}},
		{"command without level", []Recipe{{Name: "c", Source: "gl", Actions: []Action{{Command: &CommandAction{Line: "update app"}}}}},
			[]string{`recipe "c": action 1: command: no level`}},
		{"command with unknown level", []Recipe{{Name: "c", Source: "gl", Actions: []Action{{Command: &CommandAction{Line: "update app", Level: "root"}}}}},
			[]string{`recipe "c": action 1: command: unknown level "root"`}},
		{"no actions, no name, duplicate", []Recipe{
			{Name: "d", Source: "gl", Actions: []Action{ok}},
			{Name: "d", Source: "gl"},
			{Source: "gl", Actions: []Action{ok}},
		}, []string{`recipe "d": the name is used twice`, `recipe "d": no actions`, `recipe #3: no name`}},
		{"all problems at once", []Recipe{
			{Name: "x", Source: "nope", Branches: []string{"["}, Actions: []Action{{}, recipePost("", "{{")}},
			{Name: "y", Source: "gl", Actions: []Action{{Forward: &ForwardAction{URL: "example.org"}}}},
		}, []string{`recipe "x": unknown source`, `recipe "x": bad glob "["`, `recipe "x": action 1: no kind`,
			`recipe "x": action 2: post: no channel`, `recipe "y": action 1: forward: url "example.org"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recipeCheckErr(t, Validate(tt.recipes, []string{"gl", "gh"}), tt.want)
		})
	}
}

// The config is YAML read strictly; a recipe must decode as documented.
func TestRecipeYAML(t *testing.T) {
	const doc = `
- name: deploy on green
  source: gitlab-main
  events: [pipeline]
  projects: ["team/*"]
  branches: [main]
  statuses: [success]
  status_changed: true
  actions:
    - post: {channel: ci, template: "{{.Title}}"}
    - command: {line: update myapp, level: operator, channel: ops}
    - forward: {url: "https://example.org/hook", timeout: 5s}
`
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	var rs []Recipe
	if err := dec.Decode(&rs); err != nil {
		t.Fatalf("decoding: %v", err)
	}
	if err := Validate(rs, []string{"gitlab-main"}); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	r := rs[0]
	if !r.StatusChanged || r.Projects[0] != "team/*" || r.Actions[1].Command.Level != "operator" ||
		r.Actions[2].Forward.Timeout != 5*time.Second || r.Actions[0].Post.Channel != "ci" {
		t.Errorf("decoded %+v", r)
	}
}

// FuzzRecipeFilter checks that no event makes matching panic, and that
// matching agrees with its definition: a recipe filtering on exactly the
// event's own values always matches, and the status-changed filter never
// fires on a status that is not final.
func FuzzRecipeFilter(f *testing.F) {
	f.Add("gl", "pipeline", "team/app", "main", "failed", "release/*")
	f.Add("gh", "workflow_run", "octo-org/octo-repo", "refs/heads/x", "success", "*")
	f.Add("", "", "", "", "", "[")
	f.Add("docker", "container_died", "app", "", "running", "\\")
	f.Fuzz(func(t *testing.T, source, typ, project, ref, status, glob string) {
		ev := Event{Source: source, Type: typ, Project: project, Ref: ref, Status: status}
		r := Recipe{Name: "f", Source: source, Events: []string{typ}, Projects: []string{"x", glob},
			Branches: []string{glob}, Statuses: []string{status}}
		recipeMatch(&r, &ev) // must not panic whatever the glob

		exact := Recipe{Name: "e", Source: source, Events: []string{typ}, Statuses: []string{status}}
		if ok, why := recipeMatch(&exact, &ev); !ok {
			t.Fatalf("a recipe on the event's own values refused it: %s", why)
		}

		p := &recipePoster{}
		e, err := NewEngine([]Recipe{{Name: "c", Source: source, StatusChanged: true,
			Actions: []Action{recipePost("ci", "{{.Status}}")}}}, EngineOptions{Poster: p, Logger: recipeQuiet()})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := e.Handle(t.Context(), ev); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(p.got()); n > 1 || (n == 1 && status != "failed") {
			t.Fatalf("status %q posted %d times over two identical events", status, n)
		}
	})
}

func TestFileStatusSurvivesARestart(t *testing.T) {
	path := t.TempDir() + "/statuses.json"
	s, err := OpenFileStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, known, err := s.Swap(t.Context(), "k", "failed"); known || err != nil {
		t.Fatalf("first swap: known=%v err=%v", known, err)
	}
	s, err = OpenFileStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	prev, known, err := s.Swap(t.Context(), "k", "success")
	if prev != "failed" || !known || err != nil {
		t.Fatalf("after reopening: prev=%q known=%v err=%v, want failed", prev, known, err)
	}
}

// The keys a recipe's actions carry are the same each time the same event
// is handled, so a re-run after a crash is recognised, and differ between
// actions and events.
func TestActionKeysAreStable(t *testing.T) {
	p := &keyPoster{}
	e, err := NewEngine([]Recipe{{Name: "r", Source: "gl", Actions: []Action{recipePost("a", "x"), recipePost("b", "y")}}}, EngineOptions{Poster: p, Logger: recipeQuiet()})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"ev1", "ev1", "ev2"} {
		if err := e.Handle(t.Context(), Event{ID: id, Source: "gl"}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"hook/ev1/r/1", "hook/ev1/r/2", "hook/ev1/r/1", "hook/ev1/r/2", "hook/ev2/r/1", "hook/ev2/r/2"}
	if !slices.Equal(p.keys, want) {
		t.Fatalf("keys %v, want %v", p.keys, want)
	}
}

type keyPoster struct{ keys []string }

func (p *keyPoster) Post(_ context.Context, key, _, _ string) error {
	p.keys = append(p.keys, key)
	return nil
}
