package commands

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/chattest"
	"github.com/summoner-bot/summoner/internal/golden"
)

type fakeHooks struct{ o HooksOverview }

func (f fakeHooks) Overview(context.Context) HooksOverview { return f.o }

func (f fakeHooks) Test(_ context.Context, recipe, sample string) (HookPreview, error) {
	switch {
	case recipe != "ci":
		return HookPreview{}, errors.New("there is no recipe `" + recipe + "`; `hooks` lists them")
	case sample == "pipeline":
		return HookPreview{Event: "a gitlab pipeline event (gitlab-org/gitlab-test, master, success)", Matched: false, Reason: "status is success, the recipe wants failed",
			Posts: []string{"~dev:\n> ✅ Pipeline #31 of gitlab-org/gitlab-test on master passed"}}, nil
	}
	return HookPreview{Event: "a gitlab pipeline event (gitlab-org/gitlab-test, master, failed)", Matched: true,
		Posts:  []string{"~dev:\n> ❌ Pipeline #31 of gitlab-org/gitlab-test on master failed"},
		Others: []string{"would run `update shop` as operator, answering in ~ops"}}, nil
}

func TestHooksCommands(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	h := fakeHooks{HooksOverview{
		Sources: []HookSourceInfo{
			{Name: "gitlab", Kind: "gitlab", URL: "https://bot.example.com/hooks/gitlab", Last: now.Add(-3 * time.Minute), LastStatus: 202, LastReason: "accepted"},
			{Name: "github", Kind: "github", URL: "https://bot.example.com/hooks/github", Last: now.Add(-40 * time.Second), LastStatus: 401, LastReason: "signature check failed"},
			{Name: "alerts", Kind: "slack", URL: "https://bot.example.com/hooks/alerts/***"},
			{Name: "docker", Kind: "docker", Internal: true, Last: now.Add(-2 * time.Hour), LastReason: "container_died"},
		},
		Recipes: []HookRecipeInfo{
			{Name: "ci", Source: "gitlab", Filters: "events pipeline, branches main, only when the status changed", Actions: []string{"post to ~dev"}, Last: now.Add(-3 * time.Minute), LastEvent: "pipeline gitlab-org/gitlab-test master failed"},
			// Its command waits for the full queue, and replaced an older one.
			{Name: "deploy-on-green", Source: "gitlab", Filters: "statuses success", Actions: []string{"post to ~dev", "run `update shop` as operator"},
				Last: now.Add(-3 * time.Minute), LastEvent: "pipeline shop main success", LastState: HookQueueFull,
				Waiting: []HookWaiting{{Command: "update shop", Event: "pipeline shop main success", Since: now.Add(-3 * time.Minute), Next: now.Add(20 * time.Second),
					Tries: 6, GiveUp: now.Add(57 * time.Minute)}},
				Replaced: &HookReplaced{Command: "update shop", Event: "Pipeline #30 success on main: fix the login", By: "Pipeline #31 success on main: add the cart", At: now.Add(-3 * time.Minute)}},
			// Its command waited an hour for the queue and was given up.
			{Name: "deploy-docs", Source: "gitlab", Filters: "branches main", Actions: []string{"run `update docs` as operator"},
				Last: now.Add(-10 * time.Minute), LastEvent: "pipeline docs main success", LastErr: "`update docs` waited 1h0m for a free place in my command queue, so I gave up on it"},
			// Its command was handed over and has not finished.
			{Name: "nightly", Source: "gitlab", Actions: []string{"run `backup shop` as operator"}, Last: now.Add(-5 * time.Second), LastEvent: "push shop main", LastState: HookHandedOver},
			{Name: "container-alerts", Source: "docker", Actions: []string{"post to ~ops"}, Builtin: true},
		},
	}}
	reg, err := NewRegistry(HooksCommands(h, func() time.Time { return now })...)
	if err != nil {
		t.Fatal(err)
	}
	rec := &chattest.Recorder{}
	rt, err := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LevelOf: levels, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	op := olga
	for _, tt := range []struct{ golden, text string }{
		{"hooks_list", "hooks"},
		{"hooks_test_matched", "hooks test ci pipeline-failed"},
		{"hooks_test_filtered", "hooks test ci pipeline"},
		{"hooks_test_unknown", "hooks test nope pipeline"},
		{"hooks_test_usage", "hooks test ci"},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			rt.Execute(t.Context(), chat.Message{ID: tt.text, Text: tt.text, User: op, Channel: ops})
			golden.AssertText(t, tt.golden, rec.Last())
		})
	}
	if out := rt.Execute(t.Context(), chat.Message{ID: "m", Text: "hooks", User: chat.User{ID: "u-m", Username: "max"}, Channel: ops}); out == OK {
		t.Error("a member listed the hooks")
	}
}

// A pasted payload reaches Test whole, quotes and spaces included.
func TestHooksTestTakesAPastedPayloadAsIs(t *testing.T) {
	var got string
	h := sampleSpy{f: func(s string) { got = s }}
	reg, _ := NewRegistry(HooksCommands(h, nil)...)
	rt, _ := NewRouter(Options{Registry: reg, Poster: &chattest.Recorder{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LevelOf: levels})
	text := "hooks test ci ```\n{\"object_kind\": \"pipeline\", \"object_attributes\": {\"status\": \"failed\"}}\n```"
	rt.Execute(t.Context(), chat.Message{ID: "x", Text: text, User: olga, Channel: ops})
	if want := `{"object_kind": "pipeline", "object_attributes": {"status": "failed"}}`; got != want {
		t.Fatalf("Test got %q, want %q", got, want)
	}
}

type sampleSpy struct{ f func(string) }

func (s sampleSpy) Overview(context.Context) HooksOverview { return HooksOverview{} }
func (s sampleSpy) Test(_ context.Context, _, sample string) (HookPreview, error) {
	s.f(sample)
	return HookPreview{}, nil
}
