package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/summoner-bot/summoner/bootstrap"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/gateway"
	"github.com/summoner-bot/summoner/minions"
)

// Defaults of what bootstrap sets up.
const (
	bootstrapTeam       = "team"
	bootstrapOps        = "ops"
	bootstrapChatPort   = "8065"
	bootstrapChatSub    = "chat"
	bootstrapBotName    = "summoner"
	bootstrapBinary     = "/usr/local/bin/summoner"
	bootstrapBackupsDir = "/var/backups/summoner"
)

// mission is what bootstrap brings up after the machine is ready: the
// config file, the gateway, Mattermost, its accounts, the bot and the
// backups. Steps hand results forward through it (the bot's token from
// the accounts step to the chat step).
type mission struct {
	o    bootstrapOptions
	cfg  config.Config // the effective config: the file, the environment and the flags
	path string        // the config file bootstrap writes
	log  *slog.Logger

	gw       *gatewayLink
	eng      *minions.Engine // made on first use (engine)
	accounts accountsStep
	listen   string // the bot's address, once found: it does not change
}

// accountsStep is the accounts step as the chat step reads it.
type accountsStep interface {
	bootstrap.Step
	Result() (accountsResult, error)
}

// accountsResult is what the accounts step made.
type accountsResult struct {
	BotToken, SlashToken, AdminUsername string
}

// newMission works out the effective config from the loaded one and the
// flags.
func newMission(o bootstrapOptions) *mission {
	cfg := o.cfg
	cfg.Summoner.Domain = o.domain
	if o.registryMirror != "" {
		cfg.Docker.RegistryMirror = o.registryMirror
	}
	// The gateway runs as its own service, started by bootstrap before
	// Mattermost (which is reached through it); the bot only talks to it.
	cfg.Gateway.Enabled, cfg.Gateway.External = true, true
	if o.email != "" {
		cfg.Gateway.Email = o.email
	}
	if cfg.Gateway.Hosts == nil {
		cfg.Gateway.Hosts = map[string]config.GatewayHost{}
	}
	if h := cfg.Gateway.Hosts["mattermost"]; h.Subdomain == "" {
		h.Subdomain = bootstrapChatSub
		cfg.Gateway.Hosts["mattermost"] = h
	}
	if cfg.Chat.Team == "" {
		cfg.Chat.Team = bootstrapTeam
	}
	if cfg.Chat.OpsChannel == "" {
		cfg.Chat.OpsChannel = bootstrapOps
	}
	if cfg.HTTP.Listen == "" {
		cfg.HTTP.Listen = config.Defaults().HTTP.Listen
	}
	path := o.configPath
	if path == "" {
		path = config.DefaultPath()
	}
	return &mission{o: o, cfg: cfg, path: path, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (m *mission) chatHost() string {
	return m.cfg.Gateway.Hosts["mattermost"].Subdomain + "." + m.cfg.Summoner.Domain
}

func (m *mission) chatPort() string {
	if m.o.chatPort != "" {
		return m.o.chatPort
	}
	return bootstrapChatPort
}

func (m *mission) binary() string {
	if m.o.binary != "" {
		return m.o.binary
	}
	return bootstrapBinary
}

// botListen is the bot's http.listen: the gateway address of the
// Mattermost minion's Docker network, so Mattermost (in its container)
// reaches the slash command and the buttons, while nothing outside this
// server does. Known once the Mattermost step made that network.
func (m *mission) botListen(ctx context.Context) (string, error) {
	// Asked by several steps and by every health poll: look it up once.
	if m.listen != "" {
		return m.listen, nil
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if m.cfg.Docker.Host != "" {
		opts = append(opts, client.WithHost(m.cfg.Docker.Host))
	}
	dc, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return "", err
	}
	defer dc.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	nw, err := dc.NetworkInspect(ctx, "mattermost_default", network.InspectOptions{})
	if err != nil {
		return "", bootstrap.Failf("run `summoner bootstrap` again: the mattermost step makes it", "no Docker network of the mattermost minion yet: %v", err)
	}
	for _, c := range nw.IPAM.Config {
		if ip := net.ParseIP(c.Gateway); ip != nil && ip.To4() != nil {
			m.listen = net.JoinHostPort(c.Gateway, m.botPort())
			return m.listen, nil
		}
	}
	return "", bootstrap.Failf("check `docker network inspect mattermost_default`", "the mattermost minion's network has no IPv4 gateway address")
}

func (m *mission) botPort() string {
	if m.o.botPort != "" {
		return m.o.botPort
	}
	_, port, err := net.SplitHostPort(config.Defaults().HTTP.Listen)
	if err != nil {
		return "8079"
	}
	return port
}

// steps are the mission's steps, in order.
func (m *mission) steps() []bootstrap.Step {
	g := m.cfg.Gateway
	base := &bootstrap.ConfigFile{StepName: "config", StepTitle: "Write the config file", Path: m.path,
		Values: func(context.Context) (map[string]any, error) {
			v := map[string]any{
				"summoner.domain": m.cfg.Summoner.Domain, "summoner.vsroot": m.cfg.Summoner.VSRoot, "summoner.dbsroot": m.cfg.Summoner.DBSRoot,
				"docker.state_dir": m.cfg.Docker.StateDir, "chat.state_file": m.cfg.Chat.StateFile,
				"gateway.enabled": true, "gateway.external": true,
				"gateway.http_listen": g.HTTPListen, "gateway.https_listen": g.HTTPSListen,
				"gateway.dir": g.Dir, "gateway.acme_ca": g.ACMECA,
				"gateway.hosts.mattermost.subdomain": g.Hosts["mattermost"].Subdomain,
			}
			for key, val := range map[string]string{"docker.registry_mirror": m.cfg.Docker.RegistryMirror, "gateway.email": g.Email,
				"gateway.acme_ca_root": g.ACMECARoot, "gateway.admin_socket": g.AdminSocket} {
				if val != "" {
					v[key] = val
				}
			}
			return v, nil
		}}
	gatewayStep := &bootstrap.Service{
		StepName: "gateway", StepTitle: "Start the gateway (HTTPS for every minion)",
		Unit: "summoner-gateway", Args: []string{"--config", m.path, "gateway"},
		Binary: m.binary(), StateDir: m.o.stateDir, Wait: time.Minute,
		Sandbox: gatewaySandbox(m.cfg, filepath.Join(filepath.Dir(m.path), "gateway.json"), m.log),
		Ports:   func() []string { return []string{g.HTTPListen, g.HTTPSListen} },
		Healthy: func(ctx context.Context) (bool, string) {
			c := gateway.NewClient(gatewaySocket(m.cfg))
			if err := c.Health(ctx); err != nil {
				return false, "the gateway does not answer on " + gatewaySocket(m.cfg)
			}
			return true, fmt.Sprintf("the gateway answers (HTTPS on %s, HTTP on %s)", g.HTTPSListen, g.HTTPListen)
		},
	}
	m.gw = newGatewayLink(m.cfg, m.log)
	mm := &bootstrap.Mattermost{Port: m.chatPort(), Wait: 5 * time.Minute, Engine: lazyEngine{m}}
	m.accounts = newAccountsStep(m, mm.URL())
	// Claimed before public: the route to Mattermost opens only once the
	// accounts step is done (its admin exists, registration is closed).
	https := &bootstrap.HTTPS{Host: m.chatHost(), Gateway: gatewayAsks{gateway.NewClient(gatewaySocket(m.cfg))}, Wait: 5 * time.Minute,
		Engine: lazyEngine{m}, Claimed: m.accounts.Done}
	chat := &bootstrap.ConfigFile{StepName: "chat", StepTitle: "Connect the bot to Mattermost in the config file", Path: m.path,
		Secret: map[string]bool{"chat.token": true, "chat.slash_token": true},
		Values: func(ctx context.Context) (map[string]any, error) {
			res, err := m.accounts.Result()
			if err != nil {
				return nil, err
			}
			admins := slices.Clone(m.cfg.Permissions.Admins)
			if !slices.Contains(admins, res.AdminUsername) {
				admins = append(admins, res.AdminUsername)
			}
			listen, err := m.botListen(ctx)
			if err != nil {
				return nil, err
			}
			return map[string]any{
				"chat.url": mm.URL(), "chat.token": res.BotToken, "chat.team": m.cfg.Chat.Team,
				"chat.ops_channel": m.cfg.Chat.OpsChannel, "chat.callback_url": "http://" + listen,
				"chat.slash_token": res.SlashToken, "permissions.admins": admins, "http.listen": listen,
			}, nil
		}}
	bot := &bootstrap.Service{
		StepName: "bot", StepTitle: "Start the bot",
		Unit: "summoner", Args: []string{"--config", m.path, "run"},
		Binary: m.binary(), StateDir: m.o.stateDir, Wait: time.Minute,
		Ports: func() []string {
			listen, err := m.botListen(context.Background())
			if err != nil {
				return nil
			}
			return []string{listen}
		},
		Healthy: func(ctx context.Context) (bool, string) {
			listen, err := m.botListen(ctx)
			if err != nil {
				return false, err.Error()
			}
			return botHealthy(ctx, listen)
		},
	}
	backups := &bootstrap.ConfigFile{StepName: "backups", StepTitle: "Turn on the nightly backups", Path: m.path,
		DoneText: "backups go to " + bootstrapBackupsDir + " (dumps nightly, cold backups weekly); for a second server, add an sftp destination under backups.destinations (see config.example.yml)",
		Values: func(context.Context) (map[string]any, error) {
			return map[string]any{"backups.destinations": bootstrap.KeepIfSet([]map[string]any{
				{"name": "local", "local": map[string]any{"path": bootstrapBackupsDir}}})}, nil
		}}
	return []bootstrap.Step{base, gatewayStep, mm, m.accounts, https, chat, bot, backups}
}

// botHealthy reads the bot's /healthz: it answers and Mattermost is
// connected.
func botHealthy(ctx context.Context, listen string) (bool, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+listen+"/healthz", nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Do(req)
	if err != nil {
		return false, "the bot does not answer on " + listen
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("the bot answers but is not connected to Mattermost yet (%v)", body["chat"])
	}
	return true, fmt.Sprintf("the bot (Summoner %v) is online on %s and connected to Mattermost", body["version"], listen)
}

// engine is the minion engine, made on first use: Docker may not have
// been up when the list of steps was built. It tells the mission's
// gateway link of every change.
func (m *mission) engine() (*minions.Engine, error) {
	if m.eng == nil {
		e, _, err := newEngine(m.cfg, m.gw, m.log)
		if err != nil {
			return nil, err
		}
		m.eng = e
	}
	return m.eng, nil
}

// lazyEngine is the mission's engine as the mattermost and https steps
// use it.
type lazyEngine struct{ m *mission }

var (
	_ bootstrap.MinionSummoner  = lazyEngine{}
	_ bootstrap.MinionPublisher = lazyEngine{}
)

func (l lazyEngine) Summon(ctx context.Context, name, version string, settings map[string]string, progress minions.Progress) (*minions.Result, error) {
	e, err := l.m.engine()
	if err != nil {
		return nil, err
	}
	return e.Summon(ctx, name, version, settings, progress)
}

func (l lazyEngine) Withhold(ctx context.Context, name string) error {
	e, err := l.m.engine()
	if err != nil {
		return err
	}
	return e.Withhold(ctx, name)
}

func (l lazyEngine) Publish(ctx context.Context, name string) error {
	e, err := l.m.engine()
	if err != nil {
		return err
	}
	return e.Publish(ctx, name)
}

func (l lazyEngine) Withheld(name string) (bool, error) {
	e, err := l.m.engine()
	if err != nil {
		return false, err
	}
	return e.Withheld(name)
}

// newAccountsStep makes the accounts step.
func newAccountsStep(m *mission, url string) accountsStep {
	a := &bootstrap.Accounts{
		URL: url, Team: m.cfg.Chat.Team, OpsChannel: m.cfg.Chat.OpsChannel, BotUsername: bootstrapBotName,
		AdminEmail: m.o.email, StatePath: filepath.Join(m.o.stateDir, "accounts.json"),
	}
	return accountsAdapter{a, m}
}

// accountsAdapter gives the accounts step its callback URL once the bot's
// address is known, and the chat step what it needs of the accounts.
type accountsAdapter struct {
	*bootstrap.Accounts
	m *mission
}

func (a accountsAdapter) callback(ctx context.Context) error {
	listen, err := a.m.botListen(ctx)
	if err != nil {
		return err
	}
	a.Accounts.CallbackURL = "http://" + listen + "/mattermost/slash"
	return nil
}

func (a accountsAdapter) Done(ctx context.Context) (bool, string, error) {
	if a.callback(ctx) != nil {
		return false, "", nil
	}
	return a.Accounts.Done(ctx)
}

func (a accountsAdapter) Apply(ctx context.Context, say func(string, ...any)) error {
	if err := a.callback(ctx); err != nil {
		return err
	}
	return a.Accounts.Apply(ctx, say)
}

func (a accountsAdapter) Result() (accountsResult, error) {
	r, err := a.Accounts.Result()
	return accountsResult{BotToken: r.BotToken, SlashToken: r.SlashToken, AdminUsername: r.AdminUsername}, err
}

// gatewayAsks asks the gateway itself whether it serves a host: a route
// that is up and a valid certificate.
type gatewayAsks struct{ c *gateway.Client }

func (g gatewayAsks) ServesNow(ctx context.Context, host string) bool {
	routes, err := g.c.Routes(ctx)
	if err != nil {
		return false
	}
	up := slices.ContainsFunc(routes, func(r gateway.Route) bool { return r.Host == host && r.State == gateway.StateUp })
	certs, err := g.c.Certs(ctx)
	if err != nil {
		return false
	}
	return up && slices.ContainsFunc(certs, func(c gateway.CertStatus) bool {
		return c.Host == host && c.Status == gateway.CertValid && time.Now().Before(c.NotAfter)
	})
}

// uninstall removes what bootstrap made, except data: the bot and gateway
// services, Mattermost's containers (its data and database stay, so a new
// bootstrap brings it back as it was) and the installed binary. The config
// file is set aside as config.yml.<date>.bak (mode 0600): it names the
// destinations, recipes and key paths. It keeps the certificates (asking
// the CA again counts against its limits), the accounts' state (the
// admin's password still opens the Mattermost data) and Docker, which
// other things may use.
func (m *mission) uninstall(ctx context.Context, stdin io.Reader, out io.Writer, yes bool) error {
	fmt.Fprintf(out, `This removes what bootstrap set up:
  - the bot and the gateway (their services stop)
  - Mattermost's containers (its data and database stay in %s and %s)
  - %s
It keeps the data, the certificates in %s, the accounts' state in %s and Docker,
and renames %s to %s.<date>.bak (mode 0600).
`, m.cfg.Summoner.VSRoot, m.cfg.Summoner.DBSRoot, m.binary(), m.cfg.Gateway.Dir, m.o.stateDir, m.path, filepath.Base(m.path))
	if m.o.dryRun {
		fmt.Fprintln(out, "dry run: nothing was changed.")
		return nil
	}
	if !yes {
		fmt.Fprint(out, "Type yes to go ahead: ")
		answer, _ := bufio.NewReader(stdin).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			fmt.Fprintln(out, "Not confirmed; nothing was changed.")
			return exitState(exitFailed)
		}
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, "  "+format+"\n", args...) }
	var steps []bootstrap.Step
	steps = append(steps, m.steps()...)
	// The bot first, so it does not see Mattermost go away.
	for _, name := range []string{"bot", "gateway"} {
		for _, s := range steps {
			if svc, ok := s.(*bootstrap.Service); ok && s.Name() == name {
				if err := svc.Stop(ctx, say); err != nil {
					return err
				}
			}
		}
	}
	e, _, err := newEngine(m.cfg, nil, m.log)
	there := false
	if err == nil {
		there, err = e.Summoned(ctx, "mattermost")
	}
	if err == nil && there {
		err = e.Banish(ctx, "mattermost", false)
	}
	if err != nil {
		fmt.Fprintf(out, "✗ could not remove Mattermost's containers: %s\n  next: run `summoner banish mattermost`, then bootstrap --uninstall again\n", userText(err))
		return exitState(exitFailed)
	}
	if there {
		say("removed Mattermost's containers; its data stays")
	}
	bak, err := bootstrap.KeepConfig(m.path, time.Now())
	if err != nil {
		fmt.Fprintf(out, "✗ could not set the config file aside: %v\n  next: move it yourself, then bootstrap --uninstall again\n", err)
		return exitState(exitFailed)
	}
	if bak != "" {
		say("kept the config file as %s (mode 0600)", bak)
	}
	if err := os.Remove(m.binary()); err == nil {
		say("removed %s", m.binary())
	}
	fmt.Fprintln(out, "Uninstalled. `summoner bootstrap --domain …` sets it up again, with Mattermost's data as it was.")
	return nil
}
