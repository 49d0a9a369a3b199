package config

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/summoner-bot/summoner/notifications"
)

var (
	usernameRE = regexp.MustCompile(`^[a-z0-9._-]{1,64}$`)
	handleRE   = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	domainRE   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// validate adds a problem for every bad value; it does not stop at the first.
func (l *loader) validate(c *Config, purpose Purpose) {
	if c.Summoner.Domain != "" && !domainRE.MatchString(c.Summoner.Domain) {
		l.add("summoner.domain", "%q is not a domain name like example.com", c.Summoner.Domain)
	}
	for _, k := range []struct {
		key, val string
	}{{"summoner.vsroot", c.Summoner.VSRoot}, {"summoner.dbsroot", c.Summoner.DBSRoot}} {
		if !strings.HasPrefix(k.val, "/") {
			l.add(k.key, "%q should be an absolute path", k.val)
		}
	}

	ch := c.Chat
	switch {
	case ch.URL == "" && purpose == ForRun:
		l.add("chat.url", "missing; set it in the config file or SUMMONER_CHAT_URL, e.g. https://chat.example.com")
	case ch.URL != "":
		if msg := checkURL(ch.URL); msg != "" {
			l.add("chat.url", "%s", msg)
		}
	}
	if ch.Token == "" && purpose == ForRun {
		l.add("chat.token", "missing; set it in the config file, SUMMONER_CHAT_TOKEN or SUMMONER_CHAT_TOKEN_FILE (a bot account's access token)")
	} else if ch.Token != "" && (len(ch.Token) < 8 || strings.ContainsAny(string(ch.Token), " \t\r\n")) {
		l.add("chat.token", "does not look like a Mattermost access token")
	}
	if ch.Team != "" && !handleRE.MatchString(ch.Team) {
		l.add("chat.team", "%q is not a team handle (the lowercase name in the team's URL)", ch.Team)
	}
	if ch.OpsChannel != "" && !handleRE.MatchString(strings.TrimPrefix(ch.OpsChannel, "~")) {
		l.add("chat.ops_channel", "%q is not a channel handle (the lowercase name in the channel's URL)", ch.OpsChannel)
	}
	if strings.ContainsAny(ch.Prefix, " \t") {
		l.add("chat.prefix", "must not contain spaces")
	}
	if ch.MaxCommandAge.D() <= 0 {
		l.add("chat.max_command_age", "must be more than zero")
	}
	if ch.Workers < 1 || ch.Workers > 64 {
		l.add("chat.workers", "must be between 1 and 64, not %d", ch.Workers)
	}
	if ch.QueueSize < 1 || ch.QueueSize > 1024 {
		l.add("chat.queue_size", "must be between 1 and 1024, not %d", ch.QueueSize)
	}
	if ch.StateFile == "" && purpose == ForRun {
		l.add("chat.state_file", "missing; the bot remembers there which posts it handled")
	}

	for _, k := range []struct {
		key   string
		names []string
	}{{"permissions.admins", c.Permissions.Admins}, {"permissions.operators", c.Permissions.Operators}} {
		for _, n := range k.names {
			if !usernameRE.MatchString(strings.TrimPrefix(n, "@")) {
				l.add(k.key, "%q is not a Mattermost username", n)
			}
		}
	}
	for _, n := range c.Permissions.MutatingChannels {
		if !handleRE.MatchString(strings.TrimPrefix(n, "~")) {
			l.add("permissions.mutating_channels", "%q is not a channel handle", n)
		}
	}
	if d := c.Docker; d.RegistryMirror != "" && strings.Contains(d.RegistryMirror, "://") {
		l.add("docker.registry_mirror", "%q should be a registry host like registry.example.com:5000, without http://", d.RegistryMirror)
	}
	if c.Docker.MinionsDir != "" && !strings.HasPrefix(c.Docker.MinionsDir, "/") {
		l.add("docker.minions_dir", "%q should be an absolute path", c.Docker.MinionsDir)
	}
	if !strings.HasPrefix(c.Docker.StateDir, "/") {
		l.add("docker.state_dir", "%q should be an absolute path", c.Docker.StateDir)
	}
	l.validateBackups(c.Backups)
	l.validateMaintenance(c.Maintenance, purpose)
	l.validateNotifications(c)
	l.validateGateway(c)
	if c.HTTP.Listen != "" {
		if _, port, err := net.SplitHostPort(c.HTTP.Listen); err != nil || port == "" {
			l.add("http.listen", "%q is not an address like 127.0.0.1:8079", c.HTTP.Listen)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		l.add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		l.add("log.format", "%q is not text or json", c.Log.Format)
	}
}

func checkURL(raw string) string {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "not a URL like https://chat.example.com"
	case u.Scheme != "http" && u.Scheme != "https":
		return "should start with https:// (or http://), like https://chat.example.com"
	case u.Host == "":
		return "has no host name, expected something like https://chat.example.com"
	case u.User != nil:
		return "must not contain a user name or password; use chat.token"
	case u.RawQuery != "" || u.Fragment != "":
		return "should be the server's address only, without ?query or #fragment"
	}
	return ""
}

func (l *loader) validateBackups(b Backups) {
	names := map[string]bool{}
	for i, d := range b.Destinations {
		key := fmt.Sprintf("backups.destinations[%d]", i)
		if d.Name == "" {
			l.add("backups.destinations", "destination %d has no name", i+1)
		} else if names[d.Name] {
			l.add("backups.destinations", "two destinations are called %q", d.Name)
		}
		names[d.Name] = true
		kinds := 0
		if d.Local != nil {
			kinds++
			if !strings.HasPrefix(d.Local.Path, "/") {
				l.add("backups.destinations", "%s (%s): local.path %q should be an absolute path", key, d.Name, d.Local.Path)
			}
		}
		if s := d.SFTP; s != nil {
			kinds++
			if _, _, err := net.SplitHostPort(s.Addr); err != nil {
				l.add("backups.destinations", "%s (%s): sftp.addr %q should be host:port", key, d.Name, s.Addr)
			}
			for _, f := range []struct{ k, v string }{{"user", s.User}, {"key_file", s.KeyFile}, {"known_hosts", s.KnownHosts}} {
				if f.v == "" {
					l.add("backups.destinations", "%s (%s): sftp.%s is missing", key, d.Name, f.k)
				}
			}
		}
		if x := d.Dropbox; x != nil {
			kinds++
			if x.AppKey == "" || x.AppSecret == "" || x.RefreshToken == "" {
				l.add("backups.destinations", "%s (%s): dropbox needs app_key, app_secret and refresh_token", key, d.Name)
			}
		}
		if kinds != 1 {
			l.add("backups.destinations", "%s (%s): set exactly one of local, sftp and dropbox", key, d.Name)
		}
	}
	for _, r := range b.Encryption.Recipients {
		if !strings.HasPrefix(r, "age1") {
			l.add("backups.encryption.recipients", "%q is not an age public key (age1…)", r)
		}
	}
	if r := b.Retention; r.KeepLast < 0 || r.Daily < 0 || r.Weekly < 0 || r.Monthly < 0 {
		l.add("backups.retention", "counts cannot be negative")
	}
}

// scheduleParser reads schedules as the scheduler does: five fields, or six
// with seconds first, or a descriptor such as @daily.
var scheduleParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

func (l *loader) validateMaintenance(m Maintenance, purpose Purpose) {
	for _, s := range m.Schedules() {
		key := "maintenance." + s.Job
		switch spec := strings.TrimSpace(s.Spec); {
		case strings.EqualFold(spec, ScheduleOff):
		case spec == "":
			l.add(key, `is empty; write a schedule like "0 3 * * *" (minute hour day month weekday) or off`)
		default:
			if _, err := scheduleParser.Parse(spec); err != nil {
				l.add(key, `%q is not a schedule (%v); write minute hour day month weekday like "0 3 * * *", optionally with seconds first, or off`, s.Spec, err)
			}
		}
	}
	if _, err := m.Location(); err != nil {
		l.add("maintenance.timezone", "%q is not a time zone like Europe/Paris or UTC (leave it empty for the server's)", m.Timezone)
	}
	if m.RunTimeout.D() <= 0 {
		l.add("maintenance.run_timeout", "must be more than zero")
	}
	switch {
	case m.StateFile == "" && purpose == ForRun:
		l.add("maintenance.state_file", "missing; the bot keeps schedule changes and last runs there")
	case m.StateFile != "" && !strings.HasPrefix(m.StateFile, "/"):
		l.add("maintenance.state_file", "%q should be an absolute path", m.StateFile)
	}
}

// validateNotifications checks sources and recipes the way the webhook
// server and the recipe engine will, so a bad one is refused at start with
// its name and the problem.
func (l *loader) validateNotifications(c *Config) {
	n := c.Notifications
	if n.Listen != "" {
		if _, port, err := net.SplitHostPort(n.Listen); err != nil || port == "" {
			l.add("notifications.listen", "%q is not an address like 0.0.0.0:8080", n.Listen)
		}
	}
	if (len(n.Sources) > 0 || len(n.Recipes) > 0) && n.Listen == "" && c.HTTP.Listen == "" {
		l.add("notifications.listen", "webhooks need an address: set notifications.listen or http.listen")
	}
	if n.PublicURL != "" {
		if msg := checkURL(n.PublicURL); msg != "" {
			l.add("notifications.public_url", "%s", msg)
		}
	}
	if n.StoreFile != "" && !strings.HasPrefix(n.StoreFile, "/") {
		l.add("notifications.store_file", "%q should be an absolute path", n.StoreFile)
	}
	names := map[string]bool{}
	var sources []string
	for i, s := range n.Sources {
		key := fmt.Sprintf("notifications.sources[%d]", i)
		src := notifications.Source{Name: s.Name, Kind: s.Kind, Secret: s.Secret.Reveal()}
		if err := src.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				l.add(key, "%s", line)
			}
		}
		if names[s.Name] {
			l.add(key, "source %s: defined twice", s.Name)
		}
		names[s.Name] = true
		sources = append(sources, s.Name)
	}
	if err := notifications.Validate(n.Recipes, sources); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			l.add("notifications.recipes", "%s", line)
		}
	}
	ub := n.UnverifiedBodies
	for _, f := range []struct {
		key string
		v   int
	}{{"total", ub.Total}, {"per_source", ub.PerSource}, {"per_address", ub.PerAddress}} {
		if f.v < 0 {
			l.add("notifications.unverified_bodies."+f.key, "must be 0 (the default) or more, not %d", f.v)
		}
	}
	a := n.Alerts
	if a.Channel != "" && !handleRE.MatchString(strings.TrimPrefix(a.Channel, "~")) {
		l.add("notifications.alerts.channel", "%q is not a channel handle", a.Channel)
	}
	if a.Window.D() < 0 {
		l.add("notifications.alerts.window", "must not be negative")
	}
	if a.LogLines < 0 || a.LogLines > 200 {
		l.add("notifications.alerts.log_lines", "must be between 0 and 200, not %d", a.LogLines)
	}
	if u := c.Chat.CallbackURL; u != "" {
		if msg := checkURL(u); msg != "" {
			l.add("chat.callback_url", "%s", msg)
		}
		if c.HTTP.Listen == "" {
			l.add("chat.callback_url", "Mattermost calls back on http.listen, which is off")
		}
	}
	if t := c.Chat.SlashToken; t != "" && (len(t) < 16 || strings.ContainsAny(string(t), " \t\r\n")) {
		l.add("chat.slash_token", "does not look like a Mattermost slash command token")
	}
}

func (l *loader) validateGateway(c *Config) {
	g := c.Gateway
	if !g.Enabled {
		return
	}
	if c.Summoner.Domain == "" {
		l.add("gateway.enabled", "the gateway serves <minion>.<domain>: set summoner.domain")
	}
	for _, k := range []struct{ key, val string }{{"gateway.http_listen", g.HTTPListen}, {"gateway.https_listen", g.HTTPSListen}} {
		if _, port, err := net.SplitHostPort(k.val); err != nil || port == "" {
			l.add(k.key, "%q is not an address like :443 or 0.0.0.0:443", k.val)
		}
	}
	for _, k := range []struct{ key, val string }{{"gateway.dir", g.Dir}, {"gateway.admin_socket", g.AdminSocket}, {"gateway.storage_dir", g.StorageDir}, {"gateway.acme_ca_root", g.ACMECARoot}} {
		if k.val != "" && !strings.HasPrefix(k.val, "/") {
			l.add(k.key, "%q should be an absolute path", k.val)
		}
	}
	if g.Dir == "" || filepath.Clean(g.Dir) == "/" {
		l.add("gateway.dir", "the gateway needs a folder of its own, like /var/lib/summoner-gateway")
	}
	if msg := checkURL(g.ACMECA); msg != "" {
		l.add("gateway.acme_ca", "%s", msg)
	}
	if g.Email != "" && !strings.Contains(g.Email, "@") {
		l.add("gateway.email", "%q is not an email address", g.Email)
	}
	for minion, h := range g.Hosts {
		if h.Subdomain != "" && !domainRE.MatchString(h.Subdomain) {
			l.add("gateway.hosts."+minion+".subdomain", "%q is not a host name label like boards", h.Subdomain)
		}
		for _, a := range h.Aliases {
			if !domainRE.MatchString(a) || !strings.Contains(a, ".") {
				l.add("gateway.hosts."+minion+".aliases", "%q is not a full host name like boards.example.com", a)
			}
		}
	}
}
