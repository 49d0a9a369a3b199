package shell

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/summoner-bot/summoner/chat"
)

func TestShellHandsLinesToTheHandler(t *testing.T) {
	var out bytes.Buffer
	s := &Shell{In: strings.NewReader("ping\n\n  help  \nexit\nnever\n"), Out: &out, User: chat.User{Username: "me"}}
	var got []string
	err := s.Run(context.Background(), chat.HandlerFunc(func(ctx context.Context, m chat.Message) {
		got = append(got, m.Text)
		if _, err := s.Reply(ctx, m, "re: "+m.Text); err != nil {
			t.Error(err)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "ping|help" {
		t.Fatalf("handled %q, want ping and help, then stop at exit", got)
	}
	if out.String() != "re: ping\nre: help\n" {
		t.Fatalf("printed %q", out.String())
	}
}
