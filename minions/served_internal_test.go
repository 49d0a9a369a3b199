package minions

import (
	"context"
	"testing"
)

type servesOnly map[string]bool

func (servesOnly) Changed(context.Context, string) {}
func (s servesOnly) Serves(host string) bool       { return s[host] }

// A gateway on another port than 443 gives URLs with that port, so they
// answer as written.
func TestServedURLCarriesANon443Port(t *testing.T) {
	g := servesOnly{"wekan.example.com": true}
	for port, want := range map[string]string{"": "https://wekan.example.com", "443": "https://wekan.example.com", "8443": "https://wekan.example.com:8443"} {
		e := &Engine{o: EngineOptions{Gateway: g, HTTPSPort: port}}
		if got := e.served("wekan.example.com"); got != want {
			t.Errorf("port %q: %q, want %q", port, got, want)
		}
	}
	if got := (&Engine{o: EngineOptions{Gateway: g}}).served("other.example.com"); got != "" {
		t.Errorf("an unserved host got %q", got)
	}
}
