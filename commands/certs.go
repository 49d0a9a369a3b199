package commands

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/internal/human"
)

// CertInfo is one certificate the gateway manages.
type CertInfo struct {
	Host     string
	Issuer   string
	NotAfter time.Time
	Status   string // valid, obtaining, failed
	Error    string // why it failed, in plain words
	NextTry  time.Time
}

// CertLister lists the gateway's certificates.
type CertLister interface {
	Certs(ctx context.Context) ([]CertInfo, error)
}

// CertCommands is `certs`. c is nil when the gateway is off.
func CertCommands(c CertLister, now func() time.Time) []Definition {
	if now == nil {
		now = time.Now
	}
	return []Definition{{
		Name: "certs", Summary: "list the HTTPS certificates with their expiry and issuer",
		Help:  "Each minion served by the gateway has a certificate from the ACME CA (Let's Encrypt by default), renewed ahead of its expiry. A failure or an expiry less than 14 days away is also reported in the ops channel.",
		Level: Everyone, Timeout: 20 * time.Second,
		Run: func(ctx context.Context, r *Request) (string, error) {
			if c == nil {
				return "The gateway is off (`gateway.enabled` in the config): minions answer on their ports, without certificates.", nil
			}
			certs, err := c.Certs(ctx)
			if err != nil {
				return "", Errorf("I cannot reach the gateway to list its certificates: %v. `status` still shows the minions.", err)
			}
			return renderCerts(certs, now()), nil
		},
	}}
}

func renderCerts(certs []CertInfo, now time.Time) string {
	if len(certs) == 0 {
		return "No certificates yet: the gateway asks for one when a web minion is summoned."
	}
	var b strings.Builder
	b.WriteString("| host | certificate | expires | issuer |\n|---|---|---|---|\n")
	for _, c := range certs {
		state, expires := "✅ valid", "—"
		if !c.NotAfter.IsZero() {
			left := c.NotAfter.Sub(now)
			expires = fmt.Sprintf("%s (in %s)", c.NotAfter.UTC().Format("2006-01-02"), human.Left(left))
			if left < 14*24*time.Hour {
				state = "⚠️ expires soon"
			}
		}
		switch c.Status {
		case "obtaining":
			state = "⏳ being obtained"
		case "failed":
			state = "❌ " + strings.TrimSuffix(c.Error, ".")
			if !c.NextTry.IsZero() {
				state += fmt.Sprintf("; next try %s UTC", c.NextTry.UTC().Format("15:04"))
			}
		}
		issuer := c.Issuer
		if issuer == "" {
			issuer = "—"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Host, state, expires, issuer)
	}
	return strings.TrimRight(b.String(), "\n")
}
