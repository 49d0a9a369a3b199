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
		{"mention with comma", "@summoner, status", false, "status", true},
		{"leading space", "  @summoner ping", false, "ping", true},
		{"mention on its own line", "@summoner\nstatus", false, "status", true},
		{"mention case", "@Summoner help", false, "help", true},
		{"only the mention", "@summoner", false, "", true},
		{"mention then sentence end", "@summoner.", false, "", true},
		{"mention later is talk", "hey @summoner ping", false, "", false},
		{"mention in a sentence", "please don't @summoner banish wekan", false, "", false},
		{"mention at sentence end", "thanks @summoner.", false, "", false},
		{"longer name is someone else", "@summoner2 help", false, "", false},
		{"name with dot suffix is someone else", "@summoner.bot help", false, "", false},
		{"name with dash suffix is someone else", "@summoner-old help", false, "", false},
		{"no at sign", "summoner help", false, "", false},
		{"prefix", "!status", false, "status", true},
		{"prefix later is talk", "try !status", false, "", false},
		{"plain talk", "help me please", false, "", false},
		{"direct message", "help", true, "help", true},
		{"direct with mention", "@summoner help", true, "help", true},
		{"direct with mention later is the whole text", "please @summoner ping", true, "please @summoner ping", true},
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

func TestAfterMention(t *testing.T) {
	tests := []struct {
		text, want string
		ok         bool
	}{
		{"@bot status", "status", true},
		{"@bot:status", "status", true},
		{"@bot ,  status  ", "status", true},
		{"@BOT status", "status", true},
		{"@bot", "", true},
		{"@bo", "", false},
		{"", "", false},
		{"x @bot status", "", false},
		{"@bot_2 status", "", false},
		{"@bot.x status", "", false},
		{"@bot. status", "status", true},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, ok := afterMention(tt.text, "@bot")
			if got != tt.want || ok != tt.ok {
				t.Fatalf("afterMention(%q) = %q, %v; want %q, %v", tt.text, got, ok, tt.want, tt.ok)
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

func TestCursorsPersistAndNeverMoveBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	c, err := loadCursors(path)
	if err != nil {
		t.Fatal(err)
	}
	c.see("ch", 300)
	c.see("ch", 100) // an older post, dealt with later: the cursor stays
	c.see("other", 5)
	if err := c.flush(); err != nil {
		t.Fatal(err)
	}
	back, err := loadCursors(path)
	if err != nil {
		t.Fatal(err)
	}
	for ch, want := range map[string]int64{"ch": 300, "other": 5} {
		if got, ok := back.cursor(ch); !ok || got != want {
			t.Errorf("saved cursor of %s = %d, %v; want %d", ch, got, ok, want)
		}
	}
	if _, ok := back.cursor("never"); ok {
		t.Error("a channel never seen has a cursor")
	}
}

func TestCursorsInMemoryOnly(t *testing.T) {
	c := newCursors("")
	c.see("ch", 1)
	if err := c.flush(); err != nil {
		t.Fatalf("flush without a file = %v, want nothing to do", err)
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
