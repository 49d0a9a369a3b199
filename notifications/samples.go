package notifications

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// samples are small payloads as each provider documents them, for
// `hooks test`: what a recipe would post, without waiting for a real build.
//
//go:embed samples/*.json
var samples embed.FS

// sample is one built-in event a kind can send.
type sample struct {
	file   string // under samples/
	event  string // the provider's event header (GitHub, Gitea)
	status string // replaces the payload's status, "" keeps it
}

var kindSamples = map[string]map[string]sample{
	KindGitLab: {
		"pipeline":        {file: "gitlab_pipeline.json"},
		"pipeline-failed": {file: "gitlab_pipeline.json", status: "failed"},
		"push":            {file: "gitlab_push.json"},
	},
	KindGitHub: {
		"workflow_run":        {file: "github_workflow_run_success.json", event: "workflow_run"},
		"workflow_run-failed": {file: "github_workflow_run_failure.json", event: "workflow_run"},
		"push":                {file: "github_push.json", event: "push"},
	},
	KindGitea:     {"push": {file: "gitea_push.json", event: "push"}},
	KindNextcloud: {"file": {file: "nextcloud_node_created.json"}},
	KindGeneric:   {"deploy": {file: "generic_deploy.json"}},
	KindSlack:     {"message": {file: "slack_message.json"}},
}

// internalSamples are the events Summoner makes itself.
var internalSamples = map[string]map[string]Event{
	SourceDocker: {
		"container_died": {Type: DockerContainerDied, Project: "wekan", Status: "failed",
			Title: "🔴 wekan: container web died (exit code 137)",
			Text:  "🔴 **wekan**: container `web` died (exit code 137: killed, e.g. out of memory)\n```\nServer listening on :8080\nKilled\n```"},
		"container_unhealthy": {Type: DockerContainerUnhealthy, Project: "wekan", Status: "failed",
			Title: "🟠 wekan: container web is unhealthy",
			Text:  "🟠 **wekan**: container `web` is unhealthy\nLast health check: `curl: (7) Failed to connect to localhost port 8080`"},
		"crash_loop": {Type: DockerCrashLoop, Project: "wekan", Status: "failed",
			Title: "🔁 wekan/web keeps crashing: 12 more exits in the last 10 minutes",
			Text:  "🔁 **wekan**/`web` keeps crashing: 12 more exits in the last 10 minutes (last exit code 1: the app failed)\n```\nError: cannot connect to mongodb://db:27017\n```"},
		"container_recovered": {Type: DockerContainerRecovered, Project: "wekan", Status: "success",
			Title: "✅ wekan: web is running again", Text: "✅ **wekan**: `web` is running again."},
	},
	SourceMaintenance: {
		"dump-failed": {Type: "dump", Project: "wekan", Status: "failed", Title: "Nightly dump: 1 of 2 failed",
			Text: "❌ **Nightly dump**: wekan failed: mongodump exited 1"},
		"dump": {Type: "dump", Project: "wekan", Status: "success", Title: "Nightly dump: 2 of 2 stored",
			Text: "✅ **Nightly dump**: wekan 12 MB, wiki 3 MB, verified and stored"},
	},
}

// SampleNames lists the built-in samples of a source kind ("docker" and
// "maintenance" for the internal sources), sorted.
func SampleNames(kind string) []string {
	var out []string
	for n := range kindSamples[kind] {
		out = append(out, n)
	}
	for n := range internalSamples[kind] {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// Sample returns the event src would send for a built-in sample name, or
// for a JSON payload pasted as is (sample starting with "{").
func Sample(src Source, name string, now time.Time) (Event, error) {
	if m, ok := internalSamples[src.Kind]; ok {
		ev, ok := m[name]
		if !ok {
			return Event{}, fmt.Errorf("no sample %q for %s events; try one of: %s", name, src.Kind, strings.Join(SampleNames(src.Kind), ", "))
		}
		ev.ID, ev.Source, ev.Kind, ev.Received = "sample", src.Name, src.Kind, now.UTC()
		return ev, nil
	}
	h := http.Header{}
	var body []byte
	if strings.HasPrefix(strings.TrimSpace(name), "{") {
		body = []byte(name)
		if src.Kind == KindGitHub || src.Kind == KindGitea {
			h.Set("X-GitHub-Event", guessEvent(body))
			h.Set("X-Gitea-Event", guessEvent(body))
		}
	} else {
		s, ok := kindSamples[src.Kind][name]
		if !ok {
			return Event{}, fmt.Errorf("no sample %q for %s webhooks; try one of: %s, or paste a JSON payload", name, src.Kind, strings.Join(SampleNames(src.Kind), ", "))
		}
		var err error
		if body, err = samples.ReadFile("samples/" + s.file); err != nil {
			return Event{}, fmt.Errorf("sample %s: %w", name, err)
		}
		if s.status != "" {
			if body, err = withStatus(body, s.status); err != nil {
				return Event{}, fmt.Errorf("sample %s: %w", name, err)
			}
		}
		h.Set("X-GitHub-Event", s.event)
		h.Set("X-Gitea-Event", s.event)
	}
	if src.Kind == KindSlack {
		h.Set("Content-Type", "application/json")
	}
	ev, err := src.Parse(h, body, now)
	if err != nil {
		return Event{}, err
	}
	ev.ID = "sample"
	return ev, nil
}

// withStatus sets a GitLab pipeline's status, for the failed variant.
func withStatus(body []byte, status string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	attrs, ok := m["object_attributes"].(map[string]any)
	if !ok {
		return nil, errors.New("no object_attributes")
	}
	attrs["status"] = status
	return json.Marshal(m)
}

// guessEvent names a pasted GitHub or Gitea payload's event from its
// shape, since a paste has no X-GitHub-Event header.
func guessEvent(body []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for _, k := range []string{"workflow_run", "workflow_job", "pull_request", "release", "issue"} {
		if _, ok := m[k]; ok {
			return k
		}
	}
	if _, ok := m["commits"]; ok {
		return "push"
	}
	if _, ok := m["zen"]; ok {
		return "ping"
	}
	return ""
}
