package commands

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/summoner-bot/summoner/chat"
)

// chatLines are seeds: commands as people type them, with the typos,
// quotes and pastes that chat clients produce.
var chatLines = []string{
	"", "help", "hlep", "HELP restart", "summon wekan", "summon ghost 5.2 MAIL_FROM=x@example.com",
	`summon ghost "MAIL_FROM=Ghost <x@example.com>"`, "summon ghost =x", "logs wekan --tail 50",
	"logs wekan --tail=50 --follow", "logs wekan --tail", "banish wekan --purge", "banish -- --purge",
	"say “hello world” ‘x y’", `say 'a\b' "c\"d" e\ f`, "restart \"wekan", "restart ‘wekan",
	"restart wekan\\", "confirm 123456", "purge wekan", "\t\n  ping  \n", "résumé ünïcode",
	"restore wekan 2026-11-26T03:00:00Z", "\xff\xfe", "a\u00a0b\u2028c", "schedule set dump \"0 4 * * *\"",
}

// FuzzSplit: no line makes Split panic; a refusal is a UserError (an
// unclosed quote); and the words it gives, quoted back, split to the same
// words, so quoting never loses or moves a character.
func FuzzSplit(f *testing.F) {
	for _, l := range chatLines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := Split(line)
		if err != nil {
			var ue *UserError
			if !errors.As(err, &ue) || words != nil {
				t.Fatalf("Split(%q) = %q, %v; want nil and a UserError", line, words, err)
			}
			return
		}
		if !strings.ContainsAny(line, "\"'“‘\\") {
			for _, w := range words {
				if w == "" || strings.IndexFunc(w, unicode.IsSpace) >= 0 {
					t.Fatalf("Split(%q): unquoted word %q is empty or has a space", line, w)
				}
			}
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(w) + `"`
		}
		again, err := Split(strings.Join(quoted, " "))
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("Split(%q) = %q, but quoted back it splits to %q, %v", line, words, again, err)
		}
	})
}

// FuzzArgs: no line makes the argument readers panic; whatever they accept
// accounts for every word, and whatever they refuse is a UserError.
func FuzzArgs(f *testing.F) {
	for _, l := range chatLines {
		f.Add(l)
	}
	f.Fuzz(func(t *testing.T, line string) {
		words, err := Split(line)
		if err != nil {
			return
		}
		isUser := func(err error) bool { var ue *UserError; return errors.As(err, &ue) }

		pos, flags, err := Flags(words, []string{"tail"}, "follow", "purge")
		switch {
		case err != nil && !isUser(err):
			t.Fatalf("Flags(%q): error %v is not a UserError", words, err)
		case err == nil:
			used := len(pos)
			for name := range flags {
				if !slices.Contains([]string{"tail", "follow", "purge"}, name) {
					t.Fatalf("Flags(%q) took an unknown flag %q", words, name)
				}
				used++
			}
			if used > len(words) || len(pos) > len(words) {
				t.Fatalf("Flags(%q) = %q, %q: more than it was given", words, pos, flags)
			}
			for _, p := range pos {
				if strings.HasPrefix(p, "--") && p != "--" {
					t.Fatalf("Flags(%q): a flag %q left among the words", words, p)
				}
			}
		}

		name, version, settings, err := summonArgs(words)
		switch {
		case err != nil && !isUser(err):
			t.Fatalf("summonArgs(%q): error %v is not a UserError", words, err)
		case err == nil:
			if name == "" || name != strings.ToLower(name) {
				t.Fatalf("summonArgs(%q): minion name %q", words, name)
			}
			for k := range settings {
				if k == "" || k != strings.ToUpper(k) {
					t.Fatalf("summonArgs(%q): setting name %q", words, k)
				}
			}
			_ = version
		}
	})
}

// fuzzSecret is a password a user types as KEY=value; the audit log must
// never show it, whatever comes before it on the line.
const fuzzSecret = "Hunter2SeededPassw0rd"

// FuzzRouter: any message, from any user in any channel, gets exactly one
// reply and a known outcome, never a panic; runs an operator's command only
// for an operator, where such commands may run, and a command that needs
// a confirmation never at once; and a KEY=value word's value never reaches
// the audit log.
func FuzzRouter(f *testing.F) {
	for _, l := range chatLines {
		f.Add(l, uint8(0))
		f.Add(l, uint8(7))
	}
	f.Add("restart wekan", uint8(1))
	f.Add("", uint8(2))
	f.Add("boom", uint8(3))
	f.Add("panic", uint8(4))
	f.Add("slow", uint8(5))
	f.Add("confirm", uint8(6))
	f.Fuzz(func(t *testing.T, line string, who uint8) {
		fx := newFixture(t, "ops", "direct")
		user := []chat.User{alice, olga, mel}[int(who)%3]
		channel := []chat.Channel{ops, town, {ID: "d1", Direct: true}}[int(who/3)%3]
		text := line + " PASSWORD=" + fuzzSecret
		if who&0x80 != 0 {
			text = line // the line alone, as typed
		}
		out := fx.rt.Execute(context.Background(), chat.Message{ID: "m1", Text: text, User: user, Channel: channel, ThreadID: "t1"})
		if !slices.Contains([]Outcome{OK, Failed, Refused, Unknown, Internal, Pending}, out) {
			t.Fatalf("%q: outcome %q", text, out)
		}
		// restart and purge are for operators, in ~ops or direct
		// messages; purge asks for a confirmation first.
		if len(fx.ran) > 0 && (user == mel || channel == town || strings.HasPrefix(fx.ran[0], "purge")) {
			t.Fatalf("%q by %s in %+v ran %q", text, user.Username, channel, fx.ran)
		}
		posts := fx.rec.Posts()
		if len(posts) != 1 || strings.TrimSpace(posts[0].Text) == "" || posts[0].ReplyTo != "m1" {
			t.Fatalf("%q: want one reply, got %+v", text, posts)
		}
		if strings.Contains(strings.ToLower(line), "seeded") {
			return
		}
		if strings.Contains(strings.ToLower(fx.logs.String()), strings.ToLower(fuzzSecret)) {
			t.Fatalf("%q: the audit log shows the password:\n%s", text, fx.logs)
		}
	})
}
