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

// mattermostMinion is the catalog's minion bootstrap brings up.
const mattermostMinion = "mattermost"

// MinionSummoner is the part of the minion engine the Mattermost step
// uses: summon, and keep the minion off the gateway until it is claimed.
type MinionSummoner interface {
	Summon(ctx context.Context, name, version string, settings map[string]string, progress minions.Progress) (*minions.Result, error)
	Withhold(ctx context.Context, name string) error
	Withheld(name string) (bool, error)
}

// MinionPublisher is the part of the minion engine the https step uses.
type MinionPublisher interface {
	Publish(ctx context.Context, name string) error
	Withheld(name string) (bool, error)
}

// HostServer says whether the gateway serves a host with a valid
// certificate, asking it now.
type HostServer interface {
	ServesNow(ctx context.Context, host string) bool
}

// Mattermost summons the catalog's mattermost minion (with its PostgreSQL)
// through the minions engine, as any minion, withheld from the gateway,
// and waits until it answers on its loopback port. Mattermost makes the
// first account that registers its system admin, so nothing public may
// reach it before the accounts step has made that account over loopback;
// the HTTPS step opens the route after.
type Mattermost struct {
	Engine MinionSummoner
	Port   string // the host port it is published on (loopback only behind the gateway)
	Wait   time.Duration
	Client *http.Client // nil: a client with a short timeout
}

func (m *Mattermost) Name() string  { return "mattermost" }
func (m *Mattermost) Title() string { return "Bring Mattermost up, from this server only" }

// Timeout covers pulling the images and Mattermost's first start, which
// sets up its database.
func (m *Mattermost) Timeout() time.Duration { return m.Wait + 10*time.Minute }

// URL is where Summoner itself talks to Mattermost: the local port, which
// needs neither DNS nor the gateway.
func (m *Mattermost) URL() string { return "http://127.0.0.1:" + m.Port }

// Done: Mattermost answers on loopback, and it is withheld from the
// gateway or already has accounts. A Mattermost without accounts that is
// not withheld (left public by an older bootstrap) is not done: Apply
// withholds it.
func (m *Mattermost) Done(ctx context.Context) (bool, string, error) {
	if err := m.ping(ctx); err != nil {
		return false, "", nil
	}
	held, err := m.Engine.Withheld(mattermostMinion)
	if err != nil {
		return false, err.Error(), nil
	}
	if held {
		return true, "Mattermost answers on " + m.URL() + ", from this server only until its admin exists", nil
	}
	none, err := noAccounts(mmClient(ctx, m.Client, m.URL()))
	if err != nil {
		return false, "", nil
	}
	if none {
		return false, "Mattermost has no admin yet and is not withheld from the gateway", nil
	}
	return true, "Mattermost answers on " + m.URL() + " and has its accounts", nil
}

func (m *Mattermost) Plan(context.Context) string {
	return fmt.Sprintf("summon the mattermost minion (Mattermost and PostgreSQL) on 127.0.0.1:%s, with no public route until its admin exists", m.Port)
}

func (m *Mattermost) Apply(ctx context.Context, say func(string, ...any)) error {
	// Withheld first: the gateway's first table with Mattermost in it
	// comes from the https step, after the accounts.
	if err := m.Engine.Withhold(ctx, mattermostMinion); err != nil {
		return Failf("check that docker.state_dir is writable, then run `summoner bootstrap` again",
			"cannot keep Mattermost off the gateway until its admin exists: %v", err)
	}
	res, err := m.Engine.Summon(ctx, mattermostMinion, "", map[string]string{"HTTP_PORT": m.Port}, func(line string) { say("%s", line) })
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
		if err == nil {
			say("Mattermost answers on %s; https is opened once its admin exists", m.URL())
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
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

// HTTPS opens https://chat.<domain>: once Mattermost is claimed (Claimed,
// the accounts step's Done, says its admin exists and registration is
// closed), it publishes the withheld minion on the gateway and waits for
// the route and its certificate.
type HTTPS struct {
	Engine  MinionPublisher
	Host    string // chat.<domain>
	Gateway HostServer
	// Claimed says whether Mattermost has its admin; what says what is
	// missing. The route is never opened before.
	Claimed func(ctx context.Context) (bool, string, error)
	Wait    time.Duration
}

func (h *HTTPS) Name() string { return "https" }
func (h *HTTPS) Title() string {
	return "Open https://" + h.Host + " now that Mattermost has its admin"
}

// Timeout covers the certificate, which the CA may take minutes to give.
func (h *HTTPS) Timeout() time.Duration { return h.Wait + time.Minute }

func (h *HTTPS) Plan(context.Context) string {
	return fmt.Sprintf("open https://%s on the gateway once Mattermost has its admin, and wait for its certificate", h.Host)
}

func (h *HTTPS) Done(ctx context.Context) (bool, string, error) {
	held, err := h.Engine.Withheld(mattermostMinion)
	if err != nil || held {
		return false, "", nil
	}
	if !h.Gateway.ServesNow(ctx, h.Host) {
		return false, "", nil
	}
	return true, "Mattermost answers at https://" + h.Host, nil
}

func (h *HTTPS) Apply(ctx context.Context, say func(string, ...any)) error {
	claimed, what, err := h.Claimed(ctx)
	if err != nil {
		return err
	}
	if !claimed {
		return Failf("run `summoner bootstrap` again: the accounts step makes the admin first",
			"https://%s stays closed: Mattermost is not claimed yet (%s)", h.Host, what)
	}
	if err := h.Engine.Publish(ctx, mattermostMinion); err != nil {
		return Failf("check that docker.state_dir is writable, then run `summoner bootstrap` again", "cannot open https://%s: %v", h.Host, err)
	}
	say("the gateway now routes %s to Mattermost; waiting for its certificate", h.Host)
	deadline := time.Now().Add(h.Wait)
	for !h.Gateway.ServesNow(ctx, h.Host) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return Failf("check that DNS for "+h.Host+" points to this server and ports 80 and 443 are open; `summoner certs` says why",
				"the gateway has no certificate for %s yet", h.Host)
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	say("Mattermost answers at https://%s", h.Host)
	return nil
}
