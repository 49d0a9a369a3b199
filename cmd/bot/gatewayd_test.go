package main

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/gateway"
)

// Certificate trouble reaches the ops channel once a day: a failure with
// its cause and next try, an expiry less than 14 days away, a refused
// route; a healthy certificate says nothing.
func TestGatewayReportsTroubleOnceADay(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	g := newGatewayLink(config.Defaults(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.certs = map[string]gateway.CertStatus{
		"wekan.example.com": {Host: "wekan.example.com", Status: gateway.CertValid, NotAfter: now.Add(60 * 24 * time.Hour)},
		"chat.example.com":  {Host: "chat.example.com", Status: gateway.CertValid, NotAfter: now.Add(10 * 24 * time.Hour), Error: "the CA's rate limit"},
		"wiki.example.com":  {Host: "wiki.example.com", Status: gateway.CertFailed, Error: "DNS for wiki.example.com does not point here", NextTry: now.Add(10 * time.Minute)},
	}
	g.rejected = map[string]string{"bad.example.com": "backend: \"x\" is not host:port"}
	var said []string
	say := func(_ context.Context, s string) { said = append(said, s) }
	g.report(t.Context(), now, say)
	want := []string{
		"⚠️ No HTTPS certificate for wiki.example.com: DNS for wiki.example.com does not point here. I'll try again at 10:10 UTC; until then https://wiki.example.com has no valid certificate.",
		"⚠️ The certificate of chat.example.com expires on 2026-12-10 10:00 UTC (in 10 days) and is not renewed yet.",
		"⚠️ The gateway refused the route of bad.example.com: backend: \"x\" is not host:port. The other minions are served as before.",
	}
	for _, w := range want {
		if !slices.Contains(said, w) {
			t.Errorf("not said: %s\nsaid: %q", w, said)
		}
	}
	if len(said) != len(want) {
		t.Errorf("said %d lines, want %d: %q", len(said), len(want), said)
	}
	for _, s := range said {
		if strings.Contains(s, "wekan") {
			t.Errorf("a healthy certificate was reported: %s", s)
		}
	}
	said = nil
	g.report(t.Context(), now.Add(time.Hour), say)
	if len(said) != 0 {
		t.Errorf("the same trouble was said again within the day: %q", said)
	}
	g.report(t.Context(), now.Add(25*time.Hour), say)
	if len(said) != 3 {
		t.Errorf("after a day, %d lines, want the 3 again", len(said))
	}
}

func TestGatewayServesOnlyValidAcceptedHosts(t *testing.T) {
	g := newGatewayLink(config.Defaults(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	later := time.Now().Add(time.Hour)
	g.accepted = map[string]bool{"a.example.com": true, "b.example.com": true}
	g.certs = map[string]gateway.CertStatus{
		"a.example.com": {Status: gateway.CertValid, NotAfter: later},
		"b.example.com": {Status: gateway.CertObtaining},
		"c.example.com": {Status: gateway.CertValid, NotAfter: later},
	}
	for host, want := range map[string]bool{"a.example.com": true, "b.example.com": false, "c.example.com": false, "d.example.com": false} {
		if got := g.Serves(host); got != want {
			t.Errorf("Serves(%s) = %v, want %v", host, got, want)
		}
	}
}
