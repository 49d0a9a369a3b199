package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/summoner-bot/summoner/notifications"
)

// Config is the whole configuration.
type Config struct {
	// Summoner is the seed's block, kept as the seed wrote it.
	Summoner      Summoner      `yaml:"summoner"`
	Chat          Chat          `yaml:"chat"`
	Permissions   Permissions   `yaml:"permissions"`
	HTTP          HTTP          `yaml:"http"`
	Log           Log           `yaml:"log"`
	Docker        Docker        `yaml:"docker"`
	Backups       Backups       `yaml:"backups"`
	Maintenance   Maintenance   `yaml:"maintenance"`
	Notifications Notifications `yaml:"notifications"`
	Gateway       Gateway       `yaml:"gateway"`
}

// Summoner is where minions live and which ones start with the bot.
type Summoner struct {
	Domain       string   `yaml:"domain"`
	VSRoot       string   `yaml:"vsroot"`  // app data, one folder per minion
	DBSRoot      string   `yaml:"dbsroot"` // database data, one folder per minion
	Applications []string `yaml:"applications"`
}

// Chat is the Mattermost connection.
type Chat struct {
	URL        string `yaml:"url"`
	Token      Secret `yaml:"token"`
	TokenFile  string `yaml:"token_file"`
	Team       string `yaml:"team"`        // the team whose channels names refer to
	OpsChannel string `yaml:"ops_channel"` // reports and alerts go here
	// Prefix, when set, makes "<prefix>command" address the bot too.
	Prefix string `yaml:"prefix"`
	// CallbackURL is how Mattermost reaches this bot's http.listen, for
	// the /summon slash command, buttons and dialogs, e.g.
	// http://127.0.0.1:8079 when both run on one server. "": no buttons
	// (confirmations are typed) and no slash command.
	CallbackURL string `yaml:"callback_url"`
	// SlashToken is the token Mattermost shows when the /summon slash
	// command is created; requests without it are refused.
	SlashToken     Secret `yaml:"slash_token"`
	SlashTokenFile string `yaml:"slash_token_file"`
	// MaxCommandAge: commands missed while offline and older than this are
	// not run when the bot comes back.
	MaxCommandAge Duration `yaml:"max_command_age"`
	StateFile     string   `yaml:"state_file"` // last handled post per channel
	Workers       int      `yaml:"workers"`    // commands handled at once
	QueueSize     int      `yaml:"queue_size"` // commands that may wait for a worker
}

// Permissions map usernames to levels and limit where mutating commands run.
type Permissions struct {
	Admins    []string `yaml:"admins"`
	Operators []string `yaml:"operators"`
	// MutatingChannels: channel names that accept commands that change
	// things; "direct" means direct messages. Empty: every channel.
	MutatingChannels []string `yaml:"mutating_channels"`
}

// HTTP is the bot's own HTTP server (health now, webhooks later).
type HTTP struct {
	Listen string `yaml:"listen"` // "" turns it off
}

// Log configures the log output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// Docker is where and how minions run.
type Docker struct {
	// Host is the Docker daemon; "" uses DOCKER_HOST or the local socket.
	Host string `yaml:"host"`
	// RegistryMirror serves every image: wekanteam/wekan:X is pulled as
	// <mirror>/wekanteam/wekan:X (for private or air-gapped installs).
	RegistryMirror string `yaml:"registry_mirror"`
	// ImageMirrors replaces single repositories, e.g.
	// "wekanteam/wekan": "registry.example.com/wekan".
	ImageMirrors map[string]string `yaml:"image_mirrors"`
	// MinionsDir holds your own minions (a folder each, with compose.yml
	// and minion.yml); they add to or replace the built-in ones.
	MinionsDir string `yaml:"minions_dir"`
	// StateDir keeps generated secrets and settings per minion (mode 0600).
	StateDir string `yaml:"state_dir"`
	// HealthTimeout, when set, replaces the minions' own wait for health.
	HealthTimeout Duration `yaml:"health_timeout"`
}

// Backups is where backups go and how they are kept.
type Backups struct {
	Destinations []Destination `yaml:"destinations"`
	Encryption   Encryption    `yaml:"encryption"`
	Retention    Retention     `yaml:"retention"`
	// VerifyCopies reads every copy back after writing it (slower, surer);
	// off, a copy is checked by its size (and by Dropbox's content hash).
	VerifyCopies bool `yaml:"verify_copies"`
}

// Destination is one place backups are copied to; set exactly one of
// local, sftp and dropbox.
type Destination struct {
	Name    string       `yaml:"name"`
	Local   *LocalDest   `yaml:"local"`
	SFTP    *SFTPDest    `yaml:"sftp"`
	Dropbox *DropboxDest `yaml:"dropbox"`
}

// LocalDest is a folder on this server (a second disk, say).
type LocalDest struct {
	Path string `yaml:"path"`
}

// SFTPDest is a second server reached over SSH with a key.
type SFTPDest struct {
	Addr       string `yaml:"addr"` // host:port
	User       string `yaml:"user"`
	KeyFile    string `yaml:"key_file"`
	KnownHosts string `yaml:"known_hosts"` // the server's host key must be in it
	Root       string `yaml:"root"`
}

// DropboxDest is a Dropbox app folder, with refresh-token auth.
type DropboxDest struct {
	AppKey           string `yaml:"app_key"`
	AppSecret        Secret `yaml:"app_secret"`
	AppSecretFile    string `yaml:"app_secret_file"`
	RefreshToken     Secret `yaml:"refresh_token"`
	RefreshTokenFile string `yaml:"refresh_token_file"`
	Root             string `yaml:"root"`
}

// Encryption encrypts backups to age recipients.
type Encryption struct {
	Recipients   []string `yaml:"recipients"`    // age1… public keys
	IdentityFile string   `yaml:"identity_file"` // the private key, for verify and restore
}

// Retention is the grandfather-father-son policy; zero keeps everything.
type Retention struct {
	KeepLast int `yaml:"keep_last"`
	Daily    int `yaml:"daily"`
	Weekly   int `yaml:"weekly"`
	Monthly  int `yaml:"monthly"`
}

// Maintenance is when backups and their checks run. Each schedule is a
// cron expression (minute hour day month weekday, with an optional seconds
// field first, or a descriptor like @daily) or "off". Admins can change
// them from chat; those changes are kept in StateFile and win over these.
type Maintenance struct {
	Dump       string `yaml:"dump"`        // a dump of every minion with a database
	ColdBackup string `yaml:"cold_backup"` // stops each minion to copy its data folders
	// VerifyRestore restores the newest backups into throwaway containers
	// and compares them with what was dumped.
	VerifyRestore string `yaml:"verify_restore"`
	// VerifyColdRestore test-restores the newest cold backup of each
	// minion that also has a database (verify_restore tests its dumps).
	VerifyColdRestore string `yaml:"verify_cold_restore"`
	// Prune applies the retention policy. It has its own schedule rather
	// than following the dump: prune never touches a backup still being
	// written and always keeps the newest complete one, so the two may
	// overlap safely, and an admin can move or stop either alone.
	Prune  string `yaml:"prune"`
	Digest string `yaml:"digest"` // each minion's last good backup and size trend
	// Timezone reads the schedules, e.g. Europe/Paris; "" is the server's.
	Timezone string `yaml:"timezone"`
	// RunTimeout is the deadline of each run of a job.
	RunTimeout Duration `yaml:"run_timeout"`
	// StateFile keeps schedule changes made from chat and each job's last
	// run, so a run missed while the bot was down is caught up.
	StateFile string `yaml:"state_file"`
}

// Schedule is one job's cron expression with its config key.
type Schedule struct {
	Job  string // "dump": the job's name and its key under maintenance
	Spec string // a cron expression or "off"
}

// ScheduleOff turns a job off.
const ScheduleOff = "off"

// Schedules lists the jobs' schedules in a fixed order.
func (m Maintenance) Schedules() []Schedule {
	return []Schedule{
		{"dump", m.Dump}, {"cold_backup", m.ColdBackup}, {"verify_restore", m.VerifyRestore},
		{"verify_cold_restore", m.VerifyColdRestore}, {"prune", m.Prune}, {"digest", m.Digest},
	}
}

// Location is the time zone the schedules are read in: Timezone, or the
// server's own when it is "" (time.LoadLocation would give UTC).
func (m Maintenance) Location() (*time.Location, error) {
	if m.Timezone == "" || m.Timezone == "Local" {
		return time.Local, nil
	}
	loc, err := time.LoadLocation(m.Timezone)
	if err != nil {
		return nil, fmt.Errorf("maintenance.timezone %q: %w", m.Timezone, err)
	}
	return loc, nil
}

// Notifications are webhooks in, recipes, and alerts out.
type Notifications struct {
	// Listen, when set, serves the webhooks (/hooks/...) on an address of
	// their own, so they can face the internet while http.listen, with
	// /healthz and Mattermost's callbacks, stays on loopback. "": the
	// webhooks are served on http.listen.
	Listen string `yaml:"listen"`
	// PublicURL is where the providers reach the webhooks, as `hooks`
	// shows it, e.g. https://hooks.example.com; "" shows http://<listen>.
	PublicURL string `yaml:"public_url"`
	// StoreFile keeps accepted events until they are delivered, and the
	// IDs of recent deliveries; "" puts events.db beside the chat state.
	StoreFile string `yaml:"store_file"`
	// Sources are the senders of webhooks, each at /hooks/<name>.
	Sources []HookSource `yaml:"sources"`
	// Recipes turn events into posts, commands and forwards.
	Recipes []notifications.Recipe `yaml:"recipes"`
	// Alerts are the built-in ones: a minion's container died, restarts in
	// a loop or is unhealthy, and maintenance reports, to the ops channel.
	Alerts Alerts `yaml:"alerts"`
	// UnverifiedBodies caps the bodies read before their signature can be
	// checked (github, gitea, generic); 0 takes the default.
	UnverifiedBodies notifications.Limits `yaml:"unverified_bodies"`
}

// Gateway puts every web minion at https://<subdomain>.<domain>, with
// certificates from an ACME CA. It runs as its own process (`summoner
// gateway`), which holds no Docker socket; the bot tells it the routes
// over AdminSocket.
type Gateway struct {
	Enabled bool `yaml:"enabled"`
	// External: the gateway runs as its own service or container, and
	// `summoner run` only talks to it; otherwise the bot starts and
	// supervises it.
	External    bool   `yaml:"external"`
	HTTPListen  string `yaml:"http_listen"`  // ACME HTTP-01 and the redirect to HTTPS, ":80"
	HTTPSListen string `yaml:"https_listen"` // ":443"
	// Dir is the gateway's own folder, owned by its user (mode 0700): its
	// certificates and keys (certs/; losing them means asking the CA
	// again, and its rate limits count) and its admin socket.
	Dir string `yaml:"dir"`
	// AdminSocket is the unix socket the bot sends routes to (mode 0600);
	// "" is gateway.sock in Dir.
	AdminSocket string `yaml:"admin_socket"`
	// StorageDir is where certificates were kept before Dir existed; what
	// is found there is moved to Dir/certs on the next start.
	StorageDir string `yaml:"storage_dir"`
	// ACMECA is the CA's directory URL: Let's Encrypt by default, its
	// staging, or a private CA.
	ACMECA string `yaml:"acme_ca"`
	// ACMECARoot is a PEM file with the root of a private CA (Pebble,
	// step-ca) to trust when talking to it; "" trusts the system's roots.
	ACMECARoot string `yaml:"acme_ca_root"`
	Email      string `yaml:"email"` // for the CA's expiry notices
	// Hosts overrides a minion's subdomain and adds aliases, by minion.
	Hosts map[string]GatewayHost `yaml:"hosts"`
}

// GatewayHost is where one minion is served.
type GatewayHost struct {
	Subdomain string   `yaml:"subdomain"` // "" keeps the minion's own
	Aliases   []string `yaml:"aliases"`   // more full host names
}

// HookSource is one sender of webhooks.
type HookSource struct {
	Name       string `yaml:"name"`
	Kind       string `yaml:"kind"` // gitlab, github, gitea, nextcloud, generic, slack
	Secret     Secret `yaml:"secret"`
	SecretFile string `yaml:"secret_file"`
}

// Alerts configure the built-in alerts.
type Alerts struct {
	// Containers turns on alerts for the containers of summoned minions.
	Containers bool `yaml:"containers"`
	// Channel gets the alerts and maintenance reports; "" is chat.ops_channel.
	Channel string `yaml:"channel"`
	// Window: after an alert, more trouble with the same minion within it
	// is summed up in one follow-up instead of one alert each.
	Window Duration `yaml:"window"`
	// LogLines is how many of the container's last log lines an alert shows.
	LogLines int `yaml:"log_lines"`
}

// Defaults is the configuration before any file or variable applies.
func Defaults() Config {
	return Config{
		Summoner: Summoner{
			VSRoot:  "/srv/summoner/volumes",
			DBSRoot: "/srv/summoner/databases",
		},
		Chat: Chat{
			MaxCommandAge: Duration(10 * time.Minute),
			StateFile:     defaultStateFile(),
			Workers:       8,
			QueueSize:     32,
		},
		HTTP:    HTTP{Listen: "127.0.0.1:8079"},
		Docker:  Docker{StateDir: defaultStateDir()},
		Backups: Backups{VerifyCopies: true, Retention: Retention{KeepLast: 7, Daily: 7, Weekly: 4, Monthly: 6}},
		Log:     Log{Level: "info", Format: "text"},
		Gateway: Gateway{
			HTTPListen: ":80", HTTPSListen: ":443",
			Dir:        defaultGatewayDir(),
			StorageDir: "/var/lib/summoner/certs",
			ACMECA:     "https://acme-v02.api.letsencrypt.org/directory",
		},
		Notifications: Notifications{
			Alerts: Alerts{Containers: true, Window: Duration(10 * time.Minute), LogLines: 20},
		},
		Maintenance: Maintenance{
			Dump:          "0 3 * * *", // nightly, at 03:00
			ColdBackup:    "0 2 * * 0", // Sundays at 02:00, before the dump
			VerifyRestore: "0 5 * * 0", // Sundays at 05:00, after both
			// Sundays at 06:00: the cold backups of minions with a database.
			VerifyColdRestore: "0 6 * * 0",
			Prune:             "30 4 * * *", // nightly, after the dump
			Digest:            "0 8 * * 1",  // Mondays at 08:00, for the week's start
			RunTimeout:        Duration(6 * time.Hour),
			StateFile:         defaultMaintenanceStateFile(),
		},
	}
}

// Secret is a string that never prints. Use Reveal where the real value
// is needed (an Authorization header), nowhere else.
type Secret string

const masked = "***"

// Reveal returns the secret itself.
func (s Secret) Reveal() string { return string(s) }

// String masks the secret, so %s, %v and %q print ***.
func (s Secret) String() string { return masked }

// GoString masks the secret for %#v.
func (s Secret) GoString() string { return masked }

// LogValue masks the secret in slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(masked) }

// MarshalJSON masks the secret.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(masked) }

// MarshalYAML masks the secret.
func (s Secret) MarshalYAML() (any, error) { return masked, nil }

// Duration is a time.Duration written as "10m" in YAML and environment.
type Duration time.Duration

// D is the duration as time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// defaultStateDir keeps minion state beside the chat state.
func defaultStateDir() string {
	return filepath.Join(filepath.Dir(filepath.Dir(defaultStateFile())), "summoner", "minions")
}

// defaultGatewayDir is beside the bot's state folder, not in it: the
// gateway's user may enter its own folder and nothing of the bot's.
func defaultGatewayDir() string {
	return filepath.Join(filepath.Dir(filepath.Dir(defaultStateFile())), "summoner-gateway")
}

// defaultMaintenanceStateFile sits beside the chat state.
func defaultMaintenanceStateFile() string {
	return filepath.Join(filepath.Dir(defaultStateFile()), "maintenance-state.json")
}

// defaultStateFile is under /var/lib for root (a service), else in the
// user's state folder, so `summoner run` works unprivileged too.
func defaultStateFile() string {
	if os.Geteuid() != 0 {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, ".local", "state", "summoner", "chat-state.json")
		}
	}
	return "/var/lib/summoner/chat-state.json"
}
