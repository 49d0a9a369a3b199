package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/gateway"
	"github.com/summoner-bot/summoner/internal/human"
	"github.com/summoner-bot/summoner/minions"
)

// gatewayLink is the bot's side of the gateway. The gateway process faces
// the internet and holds no Docker socket, so the bot, which has it, works
// out the routes and sends the whole table: at once when a minion changes
// (minions.Gateway), and every reconcileEvery, which also covers a gateway
// that restarted and containers that Docker restarted elsewhere.
type gatewayLink struct {
	cfg    config.Gateway
	full   config.Config // the gateway process gets its part (newGatewaySettings)
	client *gateway.Client
	log    *slog.Logger
	lister endpointLister // the engine, set once it exists

	push sync.Mutex // one table on its way at a time

	mu       sync.Mutex
	accepted map[string]bool // hosts the gateway took in the last table
	rejected map[string]string
	certs    map[string]gateway.CertStatus
	said     map[string]time.Time // trouble already reported, by what was said
}

// endpointLister is the engine as the gateway sees it.
type endpointLister interface {
	Endpoints(ctx context.Context) ([]minions.Endpoint, error)
}

const (
	reconcileEvery = 15 * time.Second
	// expiryWarning: a certificate this close to its end that was not
	// renewed yet is reported (renewal normally starts at a third left).
	expiryWarning = 14 * 24 * time.Hour
	resay         = 24 * time.Hour // the same trouble is said again after a day
)

var _ minions.Gateway = (*gatewayLink)(nil)

func newGatewayLink(cfg config.Config, log *slog.Logger) *gatewayLink {
	return &gatewayLink{
		cfg: cfg.Gateway, full: cfg, client: gateway.NewClient(gatewaySocket(cfg)), log: log,
		accepted: map[string]bool{}, rejected: map[string]string{},
		certs: map[string]gateway.CertStatus{}, said: map[string]time.Time{},
	}
}

// hostOverrides turns gateway.hosts into the engine's.
func hostOverrides(cfg config.Config) map[string]minions.HostOverride {
	out := map[string]minions.HostOverride{}
	for m, h := range cfg.Gateway.Hosts {
		out[m] = minions.HostOverride{Subdomain: h.Subdomain, Aliases: h.Aliases}
	}
	return out
}

// routes is the table for the current minions.
func (g *gatewayLink) routes(ctx context.Context) ([]gateway.Route, error) {
	if g.lister == nil {
		return nil, errors.New("the minion engine is not ready")
	}
	eps, err := g.lister.Endpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the minions' endpoints: %w", err)
	}
	out := make([]gateway.Route, 0, len(eps))
	for _, ep := range eps {
		r := gateway.Route{Host: ep.Host, Aliases: ep.Aliases, Minion: ep.Minion, Backend: ep.Backend, State: ep.State}
		for _, p := range ep.Paths {
			r.Paths = append(r.Paths, gateway.Path{Prefix: p.Prefix, Backend: p.Backend})
		}
		out = append(out, r)
	}
	return out, nil
}

// sync sends the table and reads the certificates' state; it returns the
// table it sent.
func (g *gatewayLink) sync(ctx context.Context) ([]gateway.Route, error) {
	g.push.Lock()
	defer g.push.Unlock()
	routes, err := g.routes(ctx)
	if err != nil {
		return nil, err
	}
	res, err := g.client.SetRoutes(ctx, routes)
	if err != nil {
		return nil, fmt.Errorf("sending the routes to the gateway: %w", err)
	}
	g.mu.Lock()
	g.accepted = map[string]bool{}
	for _, h := range res.Accepted {
		g.accepted[h] = true
	}
	g.rejected = res.Rejected
	g.mu.Unlock()
	return routes, g.readCerts(ctx)
}

func (g *gatewayLink) readCerts(ctx context.Context) error {
	certs, err := g.client.Certs(ctx)
	if err != nil {
		return fmt.Errorf("asking the gateway for its certificates: %w", err)
	}
	g.mu.Lock()
	g.certs = map[string]gateway.CertStatus{}
	for _, c := range certs {
		g.certs[c.Host] = c
	}
	g.mu.Unlock()
	return nil
}

// Changed sends the new table at once, then waits, within ctx (the
// engine gives it 30 s), until the minion's host has a certificate or it
// failed, so the reply can say the https URL only if it answers.
func (g *gatewayLink) Changed(ctx context.Context, minion string) {
	routes, err := g.sync(ctx)
	if err != nil {
		g.log.Warn("the routes could not follow a change", "minion", minion, "err", err)
		return
	}
	host := ""
	for _, r := range routes {
		if r.Minion == minion && r.State == minions.EndpointUp {
			host = r.Host
		}
	}
	if host == "" {
		return // gone, or not up: its page says so, no certificate to wait for
	}
	for {
		g.mu.Lock()
		c, ok := g.certs[host]
		g.mu.Unlock()
		if ok && c.Status != gateway.CertObtaining {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(300 * time.Millisecond):
		}
		if err := g.readCerts(ctx); err != nil && ctx.Err() == nil {
			g.log.Warn("reading the gateway's certificates", "err", err)
		}
	}
}

// Serves tells whether https://host answers now with a valid certificate.
func (g *gatewayLink) Serves(host string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.certs[host]
	return g.accepted[host] && c.Status == gateway.CertValid && time.Now().Before(c.NotAfter)
}

// Run keeps the gateway in step until ctx ends: it starts and supervises
// the gateway process unless it is external, sends the table every
// reconcileEvery, and reports certificate trouble through say.
func (g *gatewayLink) Run(ctx context.Context, stderr io.Writer, say func(context.Context, string)) error {
	if !g.cfg.External {
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.supervise(ctx, stderr, say)
		}()
	}
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		sctx, cancel := context.WithTimeout(ctx, reconcileEvery)
		_, err := g.sync(sctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			g.log.Debug("gateway not in step yet", "err", err)
		default:
			g.report(ctx, time.Now(), say)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// report says each certificate's trouble once a day: a failure with its
// cause and next try, an expiry near and not renewed, a refused route.
func (g *gatewayLink) report(ctx context.Context, now time.Time, say func(context.Context, string)) {
	type news struct{ key, text string } // key: what stays the same while the trouble lasts
	g.mu.Lock()
	var all []news
	for _, c := range g.certs {
		switch {
		case c.Status == gateway.CertFailed:
			next := ""
			if !c.NextTry.IsZero() {
				next = fmt.Sprintf(" I'll try again at %s UTC; until then https://%s has no valid certificate.", c.NextTry.UTC().Format("15:04"), c.Host)
			}
			all = append(all, news{"failed " + c.Host + " " + c.Error,
				fmt.Sprintf("⚠️ No HTTPS certificate for %s: %s.%s", c.Host, strings.TrimSuffix(c.Error, "."), next)})
		case c.Status == gateway.CertValid && !c.NotAfter.IsZero() && c.NotAfter.Sub(now) < expiryWarning:
			all = append(all, news{"expiry " + c.Host + " " + c.NotAfter.String(),
				fmt.Sprintf("⚠️ The certificate of %s expires on %s (in %s) and is not renewed yet.",
					c.Host, c.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), human.Left(c.NotAfter.Sub(now)))})
		}
	}
	for host, why := range g.rejected {
		all = append(all, news{"rejected " + host + " " + why,
			fmt.Sprintf("⚠️ The gateway refused the route of %s: %s. The other minions are served as before.", host, why)})
	}
	var fresh []string
	for _, n := range all {
		if at, ok := g.said[n.key]; !ok || now.Sub(at) > resay {
			g.said[n.key] = now
			fresh = append(fresh, n.text)
		}
	}
	g.mu.Unlock()
	sort.Strings(fresh)
	for _, l := range fresh {
		say(ctx, l)
	}
}

// supervise starts the gateway process (gatewayLauncher: as its own user
// when this process is root) and starts it again when it stops, with a
// growing pause, until ctx ends. The child gets no descriptor but its
// standard ones and the two listeners, so the Docker socket never reaches
// the process that faces the internet.
func (g *gatewayLink) supervise(ctx context.Context, stderr io.Writer, say func(context.Context, string)) {
	l, err := newGatewayLauncher(ctx, g.full, g.log, stderr)
	if err != nil {
		g.log.Error("cannot start the gateway", "err", err)
		say(ctx, "⚠️ I cannot start the gateway: "+err.Error())
		return
	}
	pause := time.Second
	for {
		started := time.Now()
		cmd, err := l.start(ctx)
		if err == nil {
			err = cmd.Wait()
		}
		if ctx.Err() != nil {
			return
		}
		g.log.Error("the gateway stopped; starting it again", "err", err, "after", time.Since(started).Round(time.Second))
		if time.Since(started) > time.Minute {
			pause = time.Second
		} else {
			// Stopping again at once (a port taken): say it, once a day.
			g.mu.Lock()
			line := fmt.Sprintf("⚠️ The gateway keeps stopping (%v); its last lines are in the bot's log. Minions stay up, but their https addresses do not answer.", err)
			fresh := time.Since(g.said["stopping"]) > resay
			if fresh {
				g.said["stopping"] = time.Now()
			}
			g.mu.Unlock()
			if fresh {
				say(ctx, line)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 30*time.Second)
	}
}

// Certs is the gateway's certificates as the certs command shows them.
func (g *gatewayLink) Certs(ctx context.Context) ([]commands.CertInfo, error) {
	if err := g.readCerts(ctx); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]commands.CertInfo, 0, len(g.certs))
	for _, c := range g.certs {
		out = append(out, commands.CertInfo{Host: c.Host, Issuer: c.Issuer, NotAfter: c.NotAfter, Status: c.Status, Error: c.Error, NextTry: c.NextTry})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}
