package minions

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/go-connections/nat"
)

// Gateway is told when a minion's containers changed, and says which hosts
// it serves. cmd/bot implements it over the gateway process; this package
// knows nothing of that process.
type Gateway interface {
	// Changed is called after summon, update, start, stop, restart and
	// banish of a minion (also when they fail or roll back), and after the
	// stops and starts of maintenance (StopApp, StartApp, StopMinion,
	// StartMinion), so the routes follow at once. It may wait, bounded by
	// ctx, until the new route serves. It is called without the minion's
	// lock held, or (maintenance) while a caller holds it; Endpoints takes
	// no lock, so Changed may call it.
	Changed(ctx context.Context, minion string)
	// Serves reports whether https://host answers now with a valid
	// certificate.
	Serves(host string) bool
}

// HostOverride moves a minion to another host (the configuration's
// gateway.hosts).
type HostOverride struct {
	Subdomain string   // "" keeps the minion's own
	Aliases   []string // more full host names, such as kanban.example.org
}

// gatewayWait bounds a Gateway.Changed call. It does not end with the
// command's context: a route must follow a change even when the command
// ran out of time or was cancelled (a rollback, a banish).
const gatewayWait = 30 * time.Second

// changed tells the gateway, if any, that a minion's containers changed.
func (e *Engine) changed(ctx context.Context, minion string) {
	if e.o.Gateway == nil {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), gatewayWait)
	defer cancel()
	e.o.Gateway.Changed(cctx, minion)
}

// served is https://host if the gateway serves host now, else "".
func (e *Engine) served(host string) string {
	if e.o.Gateway == nil || host == "" || !e.o.Gateway.Serves(host) {
		return ""
	}
	if p := e.o.HTTPSPort; p != "" && p != "443" {
		return "https://" + host + ":" + p
	}
	return "https://" + host
}

// hostOf is the host name a minion is served at: <subdomain>.<domain>.
func (e *Engine) hostOf(m *Minion) string {
	return orDefault(e.o.Hosts[m.Name].Subdomain, m.Subdomain) + "." + orDefault(e.o.Domain, "localhost")
}

// Address is where users reach a minion's web service, as truthfully as
// Summoner knows it: the https URL only when the gateway serves it now,
// else the port the web service publishes on this server.
type Address struct {
	// HTTPS is https://<Host>, set only when the gateway answers there now
	// with a valid certificate.
	HTTPS string
	// Host is <subdomain>.<domain>, where the gateway serves the minion
	// (or will, once it has a certificate).
	Host string
	// HostPort is the web port published on this server, "" if none;
	// HostIP the address it is bound to ("", 0.0.0.0 or :: for all).
	HostPort, HostIP string
	// Gateway: a gateway is configured.
	Gateway bool
}

// String says where to reach the minion, for chat: the URL, or the port
// and why there is no URL.
func (a Address) String() string {
	if a.HTTPS != "" {
		return a.HTTPS
	}
	var s string
	switch {
	case a.HostPort == "":
		s = "no web port published on this server"
	case isWildcard(a.HostIP):
		s = "plain HTTP on port " + a.HostPort + " of this server"
	case isLoopback(a.HostIP):
		s = "plain HTTP on " + net.JoinHostPort(a.HostIP, a.HostPort) + ", from this server only"
	default:
		s = "plain HTTP on " + net.JoinHostPort(a.HostIP, a.HostPort)
	}
	if a.Gateway && a.Host != "" {
		s += "; the gateway does not serve " + a.Host + " over HTTPS yet"
	}
	return s
}

func isWildcard(ip string) bool { return ip == "" || ip == "0.0.0.0" || ip == "::" }

// address is the plan's address before looking at Docker.
func (p *Plan) address() Address {
	return Address{Host: p.Host, HostPort: p.HostPort, HostIP: p.HostIP}
}

// address completes a minion's address from its running web container
// (the port it really publishes) and the gateway (whether it serves the
// host). Without a web container, the plan's address stays.
func (e *Engine) address(ctx context.Context, m *Minion, a Address) Address {
	a.Gateway = e.o.Gateway != nil
	if a.Host == "" {
		a.Host = e.hostOf(m)
	}
	if cs, err := e.containers(ctx, m.Name); err == nil {
		if web, ok := cs[m.Web.Service]; ok {
			if c, err := e.docker.ContainerInspect(ctx, web.ID); err == nil {
				a.HostIP, a.HostPort = publishedAddr(c, m.Web.Port)
			}
		}
	}
	a.HTTPS = e.served(a.Host)
	return a
}

// publishedAddr is the address and host port a container publishes for a
// TCP port of its own: what Docker bound (while it runs), else what it
// was created with.
func publishedAddr(c container.InspectResponse, port int) (ip, hostPort string) {
	key := nat.Port(fmt.Sprintf("%d/tcp", port))
	if c.NetworkSettings != nil {
		for _, b := range c.NetworkSettings.Ports[key] {
			if b.HostPort != "" {
				return b.HostIP, b.HostPort
			}
		}
	}
	if c.ContainerJSONBase != nil && c.HostConfig != nil {
		for _, b := range c.HostConfig.PortBindings[key] {
			if b.HostPort != "" {
				return b.HostIP, b.HostPort
			}
		}
	}
	return "", ""
}

// States of an Endpoint and of an EndpointPath.
const (
	EndpointUp        = "up"        // running, and healthy if it has a health check
	EndpointStarting  = "starting"  // created, being replaced, or its health check has not passed yet
	EndpointUnhealthy = "unhealthy" // running, but its health check fails
	EndpointStopped   = "stopped"   // stopped on purpose (stop, a cold backup)
	EndpointDown      = "down"      // exited, dead, restarting, or missing
)

// Endpoint is where the gateway serves one summoned minion.
type Endpoint struct {
	Minion string
	// Host is <subdomain>.<domain>: the minion's subdomain (minion.yml's
	// subdomain, by default its name) or the configuration's override.
	Host    string
	Aliases []string
	// Backend is the web service: "127.0.0.1:<host port>" as its container
	// publishes it, or "<container IP>:<web port>" on the minion's network
	// if it publishes none. "" while the container does not run.
	Backend string
	// Paths are the minion's routes, longest prefix first. A prefix takes
	// the path itself and what is under it (/api: /api and /api/…, not
	// /apix); the path is passed on as it is.
	Paths []EndpointPath
	// State is the web service's (see the Endpoint* constants). The
	// gateway passes requests only while it is "up", and answers the
	// others with its 503 page naming the minion and the state.
	State string
}

// EndpointPath is one route of a minion's host to another service.
type EndpointPath struct {
	Prefix string
	// Backend is "<container IP on the minion's network>:<port>" of the
	// routed service's container while it is up (State "up"); "" else. The
	// path is listed all the same: a request under Prefix must then get a
	// 503, never go to the host's Backend or another route.
	Backend string
	State   string // the routed service's, as Endpoint.State
}

// Endpoints lists every summoned minion with its web service, sorted by
// minion: one whose containers exist but do not run is listed with its
// state, so the gateway answers with its 503 page rather than a 404.
// Minions no longer in the catalog, and withheld ones (see Withhold), are
// left out. It takes no minion lock,
// so a Gateway may call it from Changed.
func (e *Engine) Endpoints(ctx context.Context) ([]Endpoint, error) {
	list, err := e.docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelMinion))})
	if err != nil {
		return nil, explainDocker(err, "listing containers")
	}
	type sets struct{ current, old map[string]container.Summary }
	byMinion := map[string]*sets{}
	for _, c := range list {
		mn := c.Labels[LabelMinion]
		s := byMinion[mn]
		if s == nil {
			s = &sets{map[string]container.Summary{}, map[string]container.Summary{}}
			byMinion[mn] = s
		}
		if strings.HasSuffix(nameOf(c), OldSuffix) {
			s.old[c.Labels[labelService]] = c
		} else {
			s.current[c.Labels[labelService]] = c
		}
	}
	var out []Endpoint
	for _, mn := range sortedKeys(byMinion) {
		m, ok := e.cat.Get(mn)
		if !ok || m.Name != mn {
			continue
		}
		if held, err := e.o.State.Withheld(m.Name); held {
			if err != nil {
				e.log.Warn("leaving a minion off the gateway", "minion", m.Name, "err", err)
			}
			continue // claimed before public: no route until Publish
		}
		s := byMinion[mn]
		ep := Endpoint{Minion: m.Name, Host: e.hostOf(m), Aliases: slices.Clone(e.o.Hosts[m.Name].Aliases), State: EndpointDown}
		network := m.Name + "_default"
		if web, ok := s.current[m.Web.Service]; ok {
			c, state := e.inspectState(ctx, web)
			ep.State = state
			if c.State != nil && c.State.Running {
				ep.Backend = webBackend(c, m.Web.Port, network)
			}
		} else if _, ok := s.old[m.Web.Service]; ok {
			ep.State = EndpointStarting // set aside while its replacement is made
		}
		for _, r := range m.Routes {
			p := EndpointPath{Prefix: r.Path, State: EndpointDown}
			if rc, ok := s.current[r.Service]; ok {
				c, state := e.inspectState(ctx, rc)
				p.State = state
				if ip := containerIP(c, network); ip != "" && state == EndpointUp {
					p.Backend = net.JoinHostPort(ip, fmt.Sprint(r.Port))
				}
			} else if _, ok := s.old[r.Service]; ok {
				p.State = EndpointStarting
			}
			ep.Paths = append(ep.Paths, p)
		}
		slices.SortStableFunc(ep.Paths, func(a, b EndpointPath) int {
			return cmp.Or(cmp.Compare(len(b.Prefix), len(a.Prefix)), strings.Compare(a.Prefix, b.Prefix))
		})
		out = append(out, ep)
	}
	return out, nil
}

// inspectState inspects a listed container and names its state; one that
// cannot be inspected counts as down (one minion's trouble never hides
// the others' routes).
func (e *Engine) inspectState(ctx context.Context, s container.Summary) (container.InspectResponse, string) {
	c, err := e.docker.ContainerInspect(ctx, s.ID)
	if err != nil {
		if !cerrdefs.IsNotFound(err) {
			e.log.Warn("inspecting a container for the gateway", "container", nameOf(s), "err", err)
		}
		return container.InspectResponse{}, EndpointDown
	}
	return c, endpointState(c)
}

// endpointState names a container's state for the gateway.
func endpointState(c container.InspectResponse) string {
	if c.ContainerJSONBase == nil || c.State == nil {
		return EndpointDown
	}
	st := c.State
	switch {
	case st.Restarting || st.Status == container.StateRestarting || st.Paused || st.Dead:
		return EndpointDown
	case st.Running:
		if st.Health == nil {
			return EndpointUp
		}
		switch st.Health.Status {
		case container.Unhealthy:
			return EndpointUnhealthy
		case container.Starting:
			return EndpointStarting
		}
		return EndpointUp
	case st.Status == container.StateCreated:
		return EndpointStarting
	case st.Status == container.StateExited && !st.OOMKilled:
		// Docker leaves a container with these policies exited only
		// after a stop; without one, a clean or SIGTERM exit is a stop.
		if c.HostConfig != nil {
			switch c.HostConfig.RestartPolicy.Name {
			case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
				return EndpointStopped
			}
		}
		if st.ExitCode == 0 || st.ExitCode == 143 {
			return EndpointStopped
		}
	}
	return EndpointDown
}

// webBackend is where the gateway reaches a running web container: its
// published port on loopback (or on the one address it is bound to), else
// its address on the minion's network.
func webBackend(c container.InspectResponse, port int, network string) string {
	ip, hostPort := publishedAddr(c, port)
	switch {
	case hostPort != "" && (ip == "" || ip == "0.0.0.0"):
		return net.JoinHostPort("127.0.0.1", hostPort)
	case hostPort != "" && ip == "::":
		return net.JoinHostPort("::1", hostPort)
	case hostPort != "":
		return net.JoinHostPort(ip, hostPort)
	}
	if ip := containerIP(c, network); ip != "" {
		return net.JoinHostPort(ip, fmt.Sprint(port))
	}
	return ""
}

// containerIP is a container's address on a network, "" if it has none.
func containerIP(c container.InspectResponse, network string) string {
	if c.NetworkSettings == nil {
		return ""
	}
	if ep := c.NetworkSettings.Networks[network]; ep != nil {
		return ep.IPAddress
	}
	return ""
}
