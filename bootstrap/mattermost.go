package bootstrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/summoner-bot/summoner/minions"
)

// MinionSummoner is the part of the minion engine the Mattermost step uses.
type MinionSummoner interface {
	Summon(ctx context.Context, name, version string, settings map[string]string, progress minions.Progress) (*minions.Result, error)
}

// HostServer says whether the gateway serves a host with a valid
// certificate, asking it now.
type HostServer interface {
	ServesNow(ctx context.Context, host string) bool
}

// Mattermost summons the catalog's mattermost minion (with its PostgreSQL)
// through the minions engine, as any minion, and waits until it answers:
// on its local port, and at https://<Host> when there is a gateway.
type Mattermost struct {
	Engine  MinionSummoner
	Port    string     // the host port it is published on (loopback only behind the gateway)
	Host    string     // chat.<domain>
	Gateway HostServer // nil without the gateway
	Wait    time.Duration
	Client  *http.Client // nil: a client with a short timeout
}

func (m *Mattermost) Name() string  { return "mattermost" }
func (m *Mattermost) Title() string { return "Bring Mattermost up" }

// Timeout covers pulling the images and Mattermost's first start, which
// sets up its database.
func (m *Mattermost) Timeout() time.Duration { return m.Wait + 10*time.Minute }

// URL is where Summoner itself talks to Mattermost: the local port, which
// needs neither DNS nor the gateway.
func (m *Mattermost) URL() string { return "http://127.0.0.1:" + m.Port }

func (m *Mattermost) Done(ctx context.Context) (bool, string, error) {
	if err := m.ping(ctx); err != nil {
		return false, "", nil
	}
	if m.Gateway != nil && !m.Gateway.ServesNow(ctx, m.Host) {
		return false, "", nil
	}
	return true, m.where(), nil
}

func (m *Mattermost) where() string {
	if m.Gateway != nil {
		return fmt.Sprintf("Mattermost answers at https://%s (and on %s from this server)", m.Host, m.URL())
	}
	return "Mattermost answers at " + m.URL()
}

func (m *Mattermost) Plan(context.Context) string {
	return fmt.Sprintf("would summon the mattermost minion (Mattermost and PostgreSQL) on port %s, at https://%s", m.Port, m.Host)
}

func (m *Mattermost) Apply(ctx context.Context, say func(string, ...any)) error {
	res, err := m.Engine.Summon(ctx, "mattermost", "", map[string]string{"HTTP_PORT": m.Port}, func(line string) { say("%s", line) })
	if err != nil {
		why := err.Error()
		var um interface{ UserMessage() string }
		if errors.As(err, &um) {
			why = um.UserMessage()
		}
		return Failf("fix what it says and run `summoner bootstrap` again; `summoner status mattermost` and `summoner logs mattermost` show more",
			"Mattermost did not come up: %s", why)
	}
	say("mattermost %s is up: %s", res.Version, res.URL)
	deadline := time.Now().Add(m.Wait)
	for {
		err := m.ping(ctx)
		served := m.Gateway == nil || m.Gateway.ServesNow(ctx, m.Host)
		if err == nil && served {
			say("%s", m.where())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				return Failf("check that DNS for "+m.Host+" points to this server and ports 80 and 443 are open; `summoner certs` says why",
					"the gateway has no certificate for %s yet", m.Host)
			}
			return Failf("`summoner logs mattermost` shows why", "Mattermost does not answer on %s: %v", m.URL(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ping asks Mattermost's health endpoint.
func (m *Mattermost) ping(ctx context.Context) error {
	c := m.Client
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL()+"/api/v4/system/ping", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || body.Status != "OK" {
		return fmt.Errorf("ping answered %s", resp.Status)
	}
	return nil
}
