package commands

import (
	"errors"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		err  bool
	}{
		{"plain", "summon wekan 7.0", []string{"summon", "wekan", "7.0"}, false},
		{"extra spaces", "  help   status ", []string{"help", "status"}, false},
		{"double quotes", `say "hello world"`, []string{"say", "hello world"}, false},
		{"single quotes keep backslash", `say 'a\b'`, []string{"say", `a\b`}, false},
		{"smart quotes", "say “hello world” ‘x y’", []string{"say", "hello world", "x y"}, false},
		{"escaped space", `say a\ b`, []string{"say", "a b"}, false},
		{"empty quoted word", `say ""`, []string{"say", ""}, false},
		{"joined quoting", `key="a b"c`, []string{"key=a bc"}, false},
		{"newline separates", "help\nstatus", []string{"help", "status"}, false},
		{"empty", "   ", nil, false},
		{"unclosed", `say "oops`, nil, true},
		{"unclosed smart", "say “oops", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Split(tt.in)
			if tt.err {
				var ue *UserError
				if !errors.As(err, &ue) {
					t.Fatalf("Split(%q) error = %v, want a UserError", tt.in, err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Split(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	reg, err := NewRegistry(
		Definition{Name: "help", Run: nop}, Definition{Name: "status", Run: nop},
		Definition{Name: "summon", Run: nop}, Definition{Name: "ping", Run: nop},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in   string
		want []string
	}{
		{"hlep", []string{"help"}},
		{"hepl", []string{"help"}},
		{"stauts", []string{"status"}},
		{"sumon", []string{"summon"}},
		{"stat", []string{"status"}},
		{"pnig", []string{"ping"}},
		{"HELP", []string{"help"}},
		{"xyzzy", nil},
		{"deploy", nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := reg.Suggest(tt.in); !slices.Equal(got, tt.want) {
				t.Fatalf("Suggest(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
