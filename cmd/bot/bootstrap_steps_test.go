package main

import (
	"slices"
	"testing"

	"github.com/summoner-bot/summoner/bootstrap"
	"github.com/summoner-bot/summoner/config"
)

// Claimed before public: Mattermost comes up with no route, the accounts
// step makes its admin over loopback, and only the https step after it
// opens the route; the https step asks the accounts step whether it may.
func TestBootstrapStepOrder(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Docker.StateDir = dir
	steps := bootstrapSteps(bootstrapOptions{domain: "example.test", cfg: cfg, configPath: dir + "/config.yml", stateDir: dir})
	var names []string
	for _, s := range steps {
		names = append(names, s.Name())
	}
	want := []string{"os", "docker", "dirs", "config", "gateway", "mattermost", "accounts", "https", "chat", "bot", "backups"}
	if !slices.Equal(names, want) {
		t.Fatalf("steps %v, want %v", names, want)
	}
	mm := steps[slices.Index(names, "mattermost")].(*bootstrap.Mattermost)
	if mm.URL() != "http://127.0.0.1:"+bootstrapChatPort {
		t.Errorf("Mattermost is reached at %s, want loopback", mm.URL())
	}
	https := steps[slices.Index(names, "https")].(*bootstrap.HTTPS)
	if https.Host != "chat.example.test" || https.Claimed == nil {
		t.Errorf("https step: host %q, claimed check set %v", https.Host, https.Claimed != nil)
	}
}
