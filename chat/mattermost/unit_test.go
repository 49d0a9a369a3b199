package mattermost

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAddressed(t *testing.T) {
	a := &Adapter{o: Options{Prefix: "!"}}
	tests := []struct {
		name   string
		text   string
		direct bool
		want   string
		ok     bool
	}{
		{"mention first", "@summoner help", false, "help", true},
		{"mention with colon", "@summoner: status wekan", false, "status wekan", true},
		{"mention later", "hey @summoner ping", false, "ping", true},
		{"mention case", "@Summoner help", false, "help", true},
		{"only the mention", "@summoner", false, "", true},
		{"longer name is someone else", "@summoner2 help", false, "", false},
		{"name with dot suffix is someone else", "@summoner.bot help", false, "", false},
		{"mention at sentence end", "thanks @summoner.", false, "", true},
		{"prefix", "!status", false, "status", true},
		{"plain talk", "help me please", false, "", false},
		{"direct message", "help", true, "help", true},
		{"direct with mention", "@summoner help", true, "help", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := a.addressed(tt.text, "summoner", tt.direct)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("addressed(%q) = %q, %v; want %q, %v", tt.text, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSplit(t *testing.T) {
	line := strings.Repeat("x", 30) + "\n"
	tests := []struct {
		name  string
		text  string
		limit int
		parts int
	}{
		{"short", "hello", 100, 1},
		{"exactly the limit", strings.Repeat("y", 100), 100, 1},
		{"lines", strings.Repeat(line, 20), 100, 10},
		{"one huge line", strings.Repeat("z", 500), 100, 6},
		{"code block", "```\n" + strings.Repeat(line, 20) + "```", 100, 20},
		{"multibyte", strings.Repeat("é", 250), 100, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := split(tt.text, tt.limit)
			if tt.parts > 0 && (len(parts) < 2) != (tt.parts < 2) {
				t.Fatalf("%d parts, want about %d", len(parts), tt.parts)
			}
			var joined strings.Builder
			for _, p := range parts {
				if n := utf8.RuneCountInString(p); n > tt.limit {
					t.Fatalf("a part has %d runes, over the limit %d", n, tt.limit)
				}
				if strings.Count(p, "```")%2 != 0 {
					t.Fatalf("a part leaves a code block open: %q", p)
				}
				joined.WriteString(strings.NewReplacer("\n```", "", "```\n", "", "```", "", "\n", "").Replace(p))
			}
			want := strings.NewReplacer("```", "", "\n", "").Replace(tt.text)
			if joined.String() != want {
				t.Fatalf("text lost or changed in splitting: %d runes back, want %d", utf8.RuneCountInString(joined.String()), utf8.RuneCountInString(want))
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: time.Second, Max: time.Minute}
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second, time.Minute, time.Minute} {
		for range 50 {
			d := b.Delay(n)
			if d < want/2 || d > want {
				t.Fatalf("Delay(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
	if d := b.Delay(1000); d > time.Minute {
		t.Fatalf("Delay(1000) = %v, over the cap", d)
	}
}

func TestCursorsHoldBackForRunningCommands(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c, err := loadCursors(path)
	if err != nil {
		t.Fatal(err)
	}
	c.see("ch", 100)
	c.start("ch", "p1", 200) // a command still running
	c.see("ch", 300)         // a later post, already seen
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	back, err := loadCursors(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := back.cursor("ch"); got != 199 {
		t.Fatalf("saved cursor = %d, want 199 (just before the running command)", got)
	}
	c.done("ch", "p1")
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	back, _ = loadCursors(path)
	if got, _ := back.cursor("ch"); got != 300 {
		t.Fatalf("saved cursor = %d, want 300 once the command finished", got)
	}
}

func TestDamagedStateIsSetAside(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadCursors(path)
	if err == nil || c == nil {
		t.Fatalf("loadCursors = %v, %v; want an empty state and a warning", c, err)
	}
	if _, known := c.cursor("x"); known {
		t.Fatal("damaged state was used")
	}
}

func TestSeenSet(t *testing.T) {
	var s seenSet
	now := time.Now()
	if !s.add("a", now) || s.add("a", now) {
		t.Fatal("a post must be new once, then known")
	}
}
