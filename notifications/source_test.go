package notifications

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-playground/webhooks/v6/gitea"
	"github.com/go-playground/webhooks/v6/github"
	"github.com/go-playground/webhooks/v6/gitlab"
)

func TestSourceValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  Source
		want []string // substrings of the error; none means valid
	}{
		{"good", Source{Name: "gl", Kind: KindGitLab, Secret: testSecret}, nil},
		{"unknown kind", Source{Name: "x", Kind: "bitbucket", Secret: testSecret}, []string{"source x", "bitbucket"}},
		{"short secret", Source{Name: "gh", Kind: KindGitHub, Secret: "short"}, []string{"source gh", "at least"}},
		{"bad name", Source{Name: "a/b", Kind: KindGitHub, Secret: testSecret}, []string{`"a/b"`, "name"}},
		{"slack secret with slash", Source{Name: "sl", Kind: KindSlack, Secret: testSecret + "/x"}, []string{"source sl", "'/'"}},
		{"all at once", Source{Kind: "?"}, []string{"name", "unknown kind", "secret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.src.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if tc.src.Secret != "" && strings.Contains(err.Error(), tc.src.Secret) {
				t.Errorf("error reveals the secret: %q", err)
			}
		})
	}
	if s := (Source{Name: "n", Kind: KindGitLab, Secret: testSecret}).String(); strings.Contains(s, testSecret) {
		t.Errorf("String reveals the secret: %q", s)
	}
}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		file, kind string
		header     map[string]string
		want       Event // Source, Kind, Received and Payload are checked apart
	}{
		{"gitlab_pipeline.json", KindGitLab, map[string]string{"X-Gitlab-Event-UUID": "u-1", "X-Gitlab-Event": "Pipeline Hook"},
			Event{ID: "gitlab:u-1", Type: "pipeline", Project: "gitlab-org/gitlab-test", Ref: "master", Status: "success",
				URL: "http://example.com/gitlab-org/gitlab-test/-/pipelines/31", Title: "Pipeline #31 success on master: test"}},
		{"gitlab_push.json", KindGitLab, map[string]string{"X-Gitlab-Event-UUID": "u-2"},
			Event{ID: "gitlab:u-2", Type: "push", Project: "mike/diaspora", Ref: "master",
				URL: "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Title: "John Smith pushed 1 commit(s) to master"}},
		{"github_workflow_run_success.json", KindGitHub, map[string]string{"X-GitHub-Delivery": "d-1", "X-GitHub-Event": "workflow_run"},
			Event{ID: "github:d-1", Type: "workflow_run", Project: "octo-org/octo-repo", Ref: "main", Status: "success",
				URL: "https://github.com/octo-org/octo-repo/actions/runs/30433642", Title: "Workflow Build success on main"}},
		{"github_workflow_run_failure.json", KindGitHub, map[string]string{"X-GitHub-Delivery": "d-2", "X-GitHub-Event": "workflow_run"},
			Event{ID: "github:d-2", Type: "workflow_run", Project: "octo-org/octo-repo", Ref: "main", Status: "failed",
				URL: "https://github.com/octo-org/octo-repo/actions/runs/30433642", Title: "Workflow Build failed on main"}},
		{"github_push.json", KindGitHub, map[string]string{"X-GitHub-Delivery": "d-3", "X-GitHub-Event": "push"},
			Event{ID: "github:d-3", Type: "push", Project: "Codertocat/Hello-World", Ref: "main",
				URL: "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...000000000000", Title: "Codertocat pushed 1 commit(s) to main"}},
		{"gitea_push.json", KindGitea, map[string]string{"X-Gitea-Delivery": "g-1", "X-Gitea-Event": "push"},
			Event{ID: "gitea:g-1", Type: "push", Project: "gitea/webhooks", Ref: "develop",
				URL: "http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a", Title: "gitea pushed 1 commit(s) to develop"}},
		{"nextcloud_node_created.json", KindNextcloud, nil,
			Event{Type: "NodeCreatedEvent", Project: "admin", Title: "NodeCreatedEvent /admin/files/Reports/q2.pdf"}},
		{"slack_message.json", KindSlack, nil,
			Event{Type: "message", Project: "backup-bot", Channel: "ops", Text: "Backup of *wiki* finished\nin 42 s",
				Title: "Backup of *wiki* finished", URL: "https://example.com/reports/1"}},
		{"generic_deploy.json", KindGeneric, nil,
			Event{Type: "deploy", Project: "shop", Ref: "main", Status: "success", URL: "https://ci.example.com/runs/7", Title: "Deployed shop", Text: "version 1.4.2"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body := readSample(t, tc.file)
			h := http.Header{}
			for k, v := range tc.header {
				h.Set(k, v)
			}
			src := Source{Name: "src", Kind: tc.kind, Secret: testSecret}
			got, err := src.Parse(h, body, testNow)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Source != "src" || got.Kind != tc.kind || !got.Received.Equal(testNow) || string(got.Payload) != string(body) {
				t.Errorf("source/kind/received/payload not kept: %+v", got)
			}
			if tc.want.ID == "" {
				if !strings.HasPrefix(got.ID, tc.kind+":") {
					t.Errorf("ID = %q, want %s:...", got.ID, tc.kind)
				}
				tc.want.ID = got.ID
			}
			got.Source, got.Kind, got.Received, got.Payload = "", "", tc.want.Received, nil
			if !reflect.DeepEqual(got, tc.want) {
				gj, _ := json.MarshalIndent(got, "", " ")
				t.Errorf("got\n%s\nwant %+v", gj, tc.want)
			}
		})
	}
}

// Which repeats of a request are replays: for generic sources only the
// same signed request; for slack and nextcloud none; for github, gitea and
// gitlab also the same body under a new delivery id.
func TestParseReplayIDs(t *testing.T) {
	body := readSample(t, "generic_deploy.json")
	other := []byte(`{"type":"deploy","title":"another"}`)
	type req struct {
		source, delivery string
		body             []byte
		at               time.Time
	}
	for _, tc := range []struct {
		kind   string
		a, b   req
		replay bool // b is a replay of a
	}{
		{KindGeneric, req{"a", "", body, testNow}, req{"a", "", body, testNow}, true},
		{KindGeneric, req{"a", "", body, testNow}, req{"a", "", body, testNow.Add(time.Second)}, false},
		{KindGeneric, req{"a", "", body, testNow}, req{"b", "", body, testNow}, false},
		{KindGeneric, req{"a", "", body, testNow}, req{"a", "", other, testNow}, false},
		{KindSlack, req{"a", "", []byte(`{"text":"disk full on db1"}`), testNow}, req{"a", "", []byte(`{"text":"disk full on db1"}`), testNow}, false},
		{KindNextcloud, req{"a", "", readSample(t, "nextcloud_node_created.json"), testNow}, req{"a", "", readSample(t, "nextcloud_node_created.json"), testNow}, false},
		{KindGitHub, req{"a", "d-1", readSample(t, "github_push.json"), testNow}, req{"a", "d-1", readSample(t, "github_push.json"), testNow}, true},
		{KindGitHub, req{"a", "d-1", readSample(t, "github_push.json"), testNow}, req{"a", "d-2", readSample(t, "github_push.json"), testNow}, true},
		{KindGitHub, req{"a", "d-1", readSample(t, "github_push.json"), testNow}, req{"a", "d-1", readSample(t, "github_workflow_run_success.json"), testNow}, true},
		{KindGitHub, req{"a", "d-1", readSample(t, "github_push.json"), testNow}, req{"a", "d-2", readSample(t, "github_workflow_run_success.json"), testNow}, false},
		{KindGitHub, req{"a", "", readSample(t, "github_push.json"), testNow}, req{"a", "", readSample(t, "github_push.json"), testNow}, true},
		{KindGitea, req{"a", "g-1", readSample(t, "gitea_push.json"), testNow}, req{"a", "g-2", readSample(t, "gitea_push.json"), testNow}, true},
		{KindGitLab, req{"a", "u-1", readSample(t, "gitlab_push.json"), testNow}, req{"a", "u-2", readSample(t, "gitlab_push.json"), testNow}, true},
		{KindGitLab, req{"a", "u-1", readSample(t, "gitlab_push.json"), testNow}, req{"b", "u-2", readSample(t, "gitlab_push.json"), testNow}, false},
	} {
		name := fmt.Sprintf("%s/%s %s %d→%s %s %d", tc.kind, tc.a.source, tc.a.delivery, tc.a.at.Unix(), tc.b.source, tc.b.delivery, tc.b.at.Unix())
		t.Run(name, func(t *testing.T) {
			keys := func(r req) []string {
				src := Source{Name: r.source, Kind: tc.kind, Secret: testSecret}
				h := Sign(testSecret, r.body, r.at)
				for _, k := range []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gitlab-Event-UUID"} {
					h.Set(k, r.delivery)
				}
				h.Set("X-GitHub-Event", "push")
				ev, err := src.Parse(h, r.body, testNow)
				if err != nil {
					t.Fatal(err)
				}
				return append([]string{ev.ID}, src.ReplayKeys(ev, r.body)...)
			}
			a, b := keys(tc.a), keys(tc.b)
			shared := slices.ContainsFunc(b, func(k string) bool { return slices.Contains(a, k) })
			if shared != tc.replay {
				t.Fatalf("keys %q and %q: replay = %v, want %v", a, b, shared, tc.replay)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, kind, body string }{
		{"not json", KindGitHub, `{"ref":`},
		{"gitlab without object_kind", KindGitLab, `{}`},
		{"github without event", KindGitHub, `{}`},
		{"github workflow_run missing", KindGitHub, `{"ref":1}`},
		{"generic without type", KindGeneric, `{"project":"x"}`},
		{"slack without text", KindSlack, `{"channel":"ops"}`},
		{"nextcloud without class", KindNextcloud, `{"user":{"uid":"a"}}`},
		{"wrong types", KindGitLab, `{"object_kind":3}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Source{Name: "s", Kind: tc.kind}.Parse(http.Header{}, []byte(tc.body), testNow)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
		})
	}
}

func TestParseSlackForm(t *testing.T) {
	js := `{"text":"deployed","channel":"ops"}`
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	ev, err := Source{Name: "s", Kind: KindSlack}.Parse(h, []byte("payload="+url.QueryEscape(js)), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Text != "deployed" || ev.Channel != "ops" || string(ev.Payload) != js {
		t.Fatalf("got %+v", ev)
	}
}

// TestParseDocumented parses the payloads as the providers document them:
// GitLab's doc/user/project/integrations/webhook_events.md (the job
// example without its two // comments and trailing comma, which GitLab
// never sends) and GitHub's examples in octokit/webhooks'
// payload-examples/api.github.com (github_doc_workflow_run_failure.json is
// the completed example with "conclusion": "failure").
func TestParseDocumented(t *testing.T) {
	for _, tc := range []struct {
		file, kind, event string
		want              Event // only Type, Project, Ref, Status, URL and Title are compared
	}{
		{"gitlab_doc_pipeline.json", KindGitLab, "Pipeline Hook", Event{Type: "pipeline", Project: "gitlab-org/gitlab-test", Ref: "master", Status: "success",
			URL: "http://example.com/gitlab-org/gitlab-test/-/pipelines/31", Title: "Pipeline #31 success on master: test"}},
		{"gitlab_doc_push.json", KindGitLab, "Push Hook", Event{Type: "push", Project: "mike/diaspora", Ref: "master",
			URL: "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Title: "John Smith pushed 4 commit(s) to master"}},
		{"gitlab_doc_tag_push.json", KindGitLab, "Tag Push Hook", Event{Type: "tag_push", Project: "jsmith/example", Ref: "v1.0.0",
			URL: "http://example.com/jsmith/example", Title: "John Smith pushed tag v1.0.0"}},
		{"gitlab_doc_job.json", KindGitLab, "Job Hook", Event{Type: "build", Project: "gitlab-org/gitlab-test", Ref: "gitlab-script-trigger", Status: "created",
			URL: "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977", Title: "Job test created on gitlab-script-trigger"}},
		{"github_doc_workflow_run_completed.json", KindGitHub, "workflow_run", Event{Type: "workflow_run", Project: "octo-org/octo-repo", Ref: "master", Status: "success",
			URL: "https://github.com/octo-org/octo-repo/actions/runs/289782451", Title: "Workflow test success on master"}},
		{"github_doc_workflow_run_failure.json", KindGitHub, "workflow_run", Event{Type: "workflow_run", Project: "octo-org/octo-repo", Ref: "master", Status: "failed",
			URL: "https://github.com/octo-org/octo-repo/actions/runs/289782451", Title: "Workflow test failed on master"}},
		{"github_doc_workflow_run_requested.json", KindGitHub, "workflow_run", Event{Type: "workflow_run", Project: "octo-org/octo-repo", Ref: "master", Status: "queued",
			URL: "https://github.com/octo-org/octo-repo/actions/runs/289782451", Title: "Workflow test queued on master"}},
		{"github_doc_workflow_run_completed.json", KindGitHub, "", Event{Type: "workflow_run", Project: "octo-org/octo-repo", Ref: "master", Status: "success",
			URL: "https://github.com/octo-org/octo-repo/actions/runs/289782451", Title: "Workflow test success on master"}},
		{"github_doc_push_branch.json", KindGitHub, "push", Event{Type: "push", Project: "Codertocat/Hello-World", Ref: "master",
			URL: "https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246", Title: "Codertocat pushed 1 commit(s) to master"}},
		{"github_doc_push_tag.json", KindGitHub, "push", Event{Type: "push", Project: "Codertocat/Hello-World", Ref: "simple-tag",
			URL: "https://github.com/Codertocat/Hello-World/compare/6113728f27ae...000000000000", Title: "Codertocat pushed 0 commit(s) to simple-tag"}},
		{"github_doc_workflow_job_failure.json", KindGitHub, "workflow_job", Event{Type: "workflow_job", Project: "Codertocat/Hello-World", Ref: "main", Status: "failed",
			URL: "https://github.com/octo-org/octo-repo/runs/1291536064", Title: "Job CodeQL linters failed on main"}},
		{"github_doc_pull_request_opened.json", KindGitHub, "pull_request", Event{Type: "pull_request", Project: "Codertocat/Hello-World", Ref: "master",
			URL: "https://github.com/Codertocat/Hello-World/pull/2", Title: "Pull request #2 opened: Update the README with new information."}},
		{"github_doc_ping.json", KindGitHub, "ping", Event{Type: "ping", Project: "Octocoders/Hello-World",
			URL: "https://github.com/Octocoders/Hello-World", Title: "ping on Octocoders/Hello-World"}},
	} {
		t.Run(tc.file+"/"+tc.event, func(t *testing.T) {
			body := readSample(t, tc.file)
			h := http.Header{}
			h.Set("X-Gitlab-Event", tc.event)
			h.Set("X-GitHub-Event", tc.event)
			got, err := Source{Name: "src", Kind: tc.kind}.Parse(h, body, testNow)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if string(got.Payload) != string(body) {
				t.Error("the payload was not kept as received")
			}
			got = Event{Type: got.Type, Project: got.Project, Ref: got.Ref, Status: got.Status, URL: got.URL, Title: got.Title}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A field the Event does not need, in a type or format the library's
// struct does not expect, loses only that field: the event is still
// accepted with everything else.
func TestParseLenient(t *testing.T) {
	for _, tc := range []struct {
		file, kind, event string
		edit              map[string]string // old -> new, in the documented payload
		strict            any               // the library's struct, which json.Unmarshal refuses the edit into
		want              Event
	}{
		{"gitlab_doc_pipeline.json", KindGitLab, "Pipeline Hook", map[string]string{
			`"created_at": "2016-08-12 15:23:28 UTC",
      "finished_at"`: `"created_at": "last Friday",
      "finished_at"`,
			`"duration": 63`:         `"duration": "63"`,
			`"visibility_level": 20`: `"visibility_level": "public"`,
		}, &gitlab.PipelineEventPayload{}, Event{Type: "pipeline", Project: "gitlab-org/gitlab-test", Ref: "master", Status: "success",
			URL: "http://example.com/gitlab-org/gitlab-test/-/pipelines/31", Title: "Pipeline #31 success on master: test"}},
		{"gitlab_doc_push.json", KindGitLab, "Push Hook", map[string]string{
			`"timestamp": "2011-12-12T14:27:31+02:00"`: `"timestamp": 1323692851`,
			`"total_commits_count": 4`:                 `"total_commits_count": "4"`,
		}, &gitlab.PushEventPayload{}, Event{Type: "push", Project: "mike/diaspora", Ref: "master",
			URL: "http://example.com/mike/diaspora/commit/da1560886d4f094c3e6c9ef40349f7d38b5d27d7", Title: "John Smith pushed 0 commit(s) to master"}},
		{"github_doc_workflow_run_completed.json", KindGitHub, "workflow_run", map[string]string{
			`"created_at": "2020-10-05T16:33:24Z"`: `"created_at": 1601915604`,
			`"run_number": 163`:                    `"run_number": "163"`,
		}, &github.WorkflowRunPayload{}, Event{Type: "workflow_run", Project: "octo-org/octo-repo", Ref: "master", Status: "success",
			URL: "https://github.com/octo-org/octo-repo/actions/runs/289782451", Title: "Workflow test success on master"}},
		{"gitea_push.json", KindGitea, "push", map[string]string{
			`"timestamp": "2017-03-13T13:52:11-04:00"`: `"timestamp": "13/03/2017"`,
			`"id": 140`: `"id": "140"`,
		}, &gitea.PushPayload{}, Event{Type: "push", Project: "gitea/webhooks", Ref: "develop",
			URL: "http://localhost:3000/gitea/webhooks/compare/28e1879d029cb852e4844d9c718537df08844e03...bffeb74224043ba2feb48d137756c8a9331c449a", Title: "gitea pushed 1 commit(s) to develop"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body := string(readSample(t, tc.file))
			for old, repl := range tc.edit {
				if !strings.Contains(body, old) {
					t.Fatalf("sample lacks %q", old)
				}
				body = strings.Replace(body, old, repl, 1)
			}
			if json.Unmarshal([]byte(body), tc.strict) == nil {
				t.Fatal("json.Unmarshal accepts the edited payload: the test shows nothing")
			}
			h := http.Header{}
			h.Set("X-GitHub-Event", tc.event)
			h.Set("X-Gitea-Event", tc.event)
			got, err := Source{Name: "src", Kind: tc.kind}.Parse(h, []byte(body), testNow)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got = Event{Type: got.Type, Project: got.Project, Ref: got.Ref, Status: got.Status, URL: got.URL, Title: got.Title}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
