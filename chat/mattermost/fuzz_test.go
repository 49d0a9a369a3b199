package mattermost

import (
	"strings"
	"testing"
)

// FuzzAddressed: no post makes the check "is this for the bot?" panic; in
// a channel only a post that starts with the mention or the prefix is taken;
// and the command text handed on is a trimmed part of what the user wrote,
// nothing added.
func FuzzAddressed(f *testing.F) {
	for _, s := range []string{
		"@summoner help", "@summoner: status wekan", "  @Summoner,\tping", "@summoner.", "@summoner2 help",
		"@summoner.bot help", "hey @summoner ping", "!status", "! ", "@summoner", "@ſummoner help", "@summoner\u00a0help",
		"@summoner:::,,, summon ghost MAIL_FROM=x@example.com", "\xff@summoner", "",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	a := &Adapter{o: Options{Prefix: "!"}}
	f.Fuzz(func(t *testing.T, text string, direct bool) {
		got, ok := a.addressed(text, "summoner", direct)
		switch {
		case !ok && (direct || got != ""):
			t.Fatalf("addressed(%q, direct %v) = %q, false", text, direct, got)
		case !ok:
			return
		case got != strings.TrimSpace(got) || !strings.Contains(text, got):
			t.Fatalf("addressed(%q) = %q: not a trimmed part of the post", text, got)
		}
		t0 := strings.TrimSpace(text)
		if !direct && !strings.HasPrefix(t0, "!") && !strings.EqualFold(t0[:min(len(t0), len("@summoner"))], "@summoner") {
			t.Fatalf("addressed(%q) took a channel post that does not start with the mention or the prefix", text)
		}
	})
}
