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

type fakeCerts struct {
	certs []CertInfo
	err   error
}

func (f fakeCerts) Certs(context.Context) ([]CertInfo, error) { return f.certs, f.err }

func TestCertsCommand(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	certs := fakeCerts{certs: []CertInfo{
		{Host: "boards.example.com", Issuer: "R11", NotAfter: now.Add(80 * 24 * time.Hour), Status: "valid"},
		{Host: "chat.example.com", Issuer: "R10", NotAfter: now.Add(9 * 24 * time.Hour), Status: "valid"},
		{Host: "wiki.example.com", Status: "failed", Error: "DNS for wiki.example.com does not point here", NextTry: now.Add(20 * time.Minute)},
		{Host: "new.example.com", Status: "obtaining"},
	}}
	for _, tt := range []struct {
		golden string
		c      CertLister
	}{
		{"certs_list", certs},
		{"certs_off", nil},
		{"certs_unreachable", fakeCerts{err: errors.New("dial unix /run/summoner/gateway.sock: connect: no such file or directory")}},
		{"certs_none", fakeCerts{}},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			reg, err := NewRegistry(CertCommands(tt.c, func() time.Time { return now })...)
			if err != nil {
				t.Fatal(err)
			}
			rec := &chattest.Recorder{}
			rt, err := NewRouter(Options{Registry: reg, Poster: rec, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), LevelOf: levels, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			rt.Execute(t.Context(), chat.Message{ID: "c", Text: "certs", User: chat.User{ID: "u-m", Username: "max"}, Channel: ops})
			golden.AssertText(t, tt.golden, rec.Last())
		})
	}
}
