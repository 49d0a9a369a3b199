package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/summoner-bot/summoner/notifications"
)

const token = "tok-4f9a8b7c6d5e4f3a"

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeFile(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yml")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadBody loads a config file with that body (none for ""), mode 0600.
func loadBody(t *testing.T, body string, env map[string]string, purpose Purpose) (Config, error) {
	t.Helper()
	path := ""
	if body != "" {
		path = writeFile(t, body, 0o600)
	}
	return Load(path, envOf(env), purpose)
}

func TestLoadGood(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  string // "" for no file
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{
			name: "no file, environment only",
			env:  map[string]string{"SUMMONER_CHAT_URL": "https://chat.example.com", "SUMMONER_CHAT_TOKEN": token},
			check: func(t *testing.T, c Config) {
				if c.Chat.URL != "https://chat.example.com" || c.Chat.Token.Reveal() != token {
					t.Errorf("chat = %+v", c.Chat)
				}
				if c.Chat.MaxCommandAge.D() != 10*time.Minute || c.Chat.Workers != 8 || c.Summoner.VSRoot != "/srv/summoner/volumes" {
					t.Errorf("defaults not applied: %+v", c)
				}
			},
		},
		{
			name: "seed block and interpolation",
			file: `summoner:
  domain: example.org
  vsroot: /data/vs
  dbsroot: /data/dbs
  applications: [wekan, ghost]
chat:
  url: https://chat.example.org
  token: ${MM_TOKEN}
  team: ${TEAM:-crew}
  max_command_age: 90s
permissions:
  admins: [alice]
  operators: ["@bob"]
  mutating_channels: [ops, direct]
`,
			env: map[string]string{"MM_TOKEN": token},
			check: func(t *testing.T, c Config) {
				if c.Chat.Token.Reveal() != token || c.Chat.Team != "crew" || c.Chat.MaxCommandAge.D() != 90*time.Second {
					t.Errorf("chat = %+v", c.Chat)
				}
				if !slices.Equal(c.Summoner.Applications, []string{"wekan", "ghost"}) || c.Summoner.Domain != "example.org" {
					t.Errorf("summoner = %+v", c.Summoner)
				}
			},
		},
		{
			name: "environment overrides the file",
			file: "chat:\n  url: https://a.example\n  token: ${T}\npermissions:\n  admins: [alice]\n",
			env:  map[string]string{"T": token, "SUMMONER_CHAT_URL": "https://b.example", "SUMMONER_PERMISSIONS_ADMINS": "carol, dave", "SUMMONER_DOMAIN": "x.example"},
			check: func(t *testing.T, c Config) {
				if c.Chat.URL != "https://b.example" || !slices.Equal(c.Permissions.Admins, []string{"carol", "dave"}) || c.Summoner.Domain != "x.example" {
					t.Errorf("got %+v / %+v", c.Chat, c.Permissions)
				}
			},
		},
		{
			name: "token from a file named in the environment",
			env:  map[string]string{"SUMMONER_CHAT_URL": "http://127.0.0.1:8065", "SUMMONER_CHAT_TOKEN_FILE": tokenFile},
			check: func(t *testing.T, c Config) {
				if c.Chat.Token.Reveal() != token {
					t.Errorf("token not read from the file")
				}
			},
		},
		{
			name: "empty file is all defaults",
			file: "# nothing yet\n",
			env:  map[string]string{"SUMMONER_CHAT_URL": "http://x.example", "SUMMONER_CHAT_TOKEN": token},
			check: func(t *testing.T, c Config) {
				if c.HTTP.Listen != "127.0.0.1:8079" {
					t.Errorf("http = %+v", c.HTTP)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadBody(t, tt.file, tt.env, ForRun)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		mode    os.FileMode
		env     map[string]string
		purpose Purpose
		want    []string // one per problem, each a substring of its line
	}{
		{
			name: "unknown key with line and suggestion",
			file: "chat:\n  url: https://chat.example.com\n  tokn: abc\n",
			want: []string{"config.yml:3: chat.tokn: unknown key (did you mean token?)"},
		},
		{
			name: "unknown section",
			file: "chatt:\n  url: x\n",
			want: []string{"config.yml:1: chatt: unknown key (did you mean chat?)"},
		},
		{
			name:    "bad url",
			file:    "chat:\n  url: htp:/chat\n  token: ${T}\n",
			env:     map[string]string{"T": token},
			purpose: ForRun,
			want:    []string{"config.yml:2: chat.url: should start with https://"},
		},
		{
			name:    "url without host",
			env:     map[string]string{"SUMMONER_CHAT_URL": "https://", "SUMMONER_CHAT_TOKEN": token},
			purpose: ForRun,
			want:    []string{"SUMMONER_CHAT_URL: has no host name"},
		},
		{
			name:    "missing token",
			env:     map[string]string{"SUMMONER_CHAT_URL": "https://chat.example.com"},
			purpose: ForRun,
			want:    []string{"chat.token: missing; set it in the config file, SUMMONER_CHAT_TOKEN or SUMMONER_CHAT_TOKEN_FILE"},
		},
		{
			name:    "missing everything for run",
			purpose: ForRun,
			want:    []string{"chat.url: missing", "chat.token: missing"},
		},
		{
			name: "unset variable",
			file: "chat:\n  url: https://c.example\n  token: ${NOPE}\n",
			want: []string{"config.yml:3: chat.token: the variable NOPE is not set"},
		},
		{
			name: "required variable",
			file: "chat:\n  token: ${NOPE:?set the bot token}\n",
			want: []string{"config.yml:2: chat.token: the variable NOPE is required but not set"},
		},
		{
			name: "type error with line",
			file: "chat:\n  workers: lots\n",
			want: []string{"config.yml:2: cannot unmarshal"},
		},
		{
			name: "bad duration",
			file: "chat:\n  max_command_age: ten minutes\n",
			want: []string{`config.yml:2: "ten minutes" is not a duration like 10m`},
		},
		{
			name: "every problem at once",
			file: "summoner:\n  domain: Not A Domain\n  vsroot: relative\nchat:\n  workers: 0\nlog:\n  level: loud\n",
			want: []string{"config.yml:2: summoner.domain", "config.yml:3: summoner.vsroot", "config.yml:5: chat.workers", "config.yml:7: log.level"},
		},
		{
			name: "clear token in a file others can read",
			file: "chat:\n  url: https://c.example\n  token: " + token + "\n",
			mode: 0o644,
			want: []string{"holds chat.token and is readable by other users; run: chmod 600 "},
		},
		{
			name: "both token and token file",
			file: "chat:\n  token: ${T}\n  token_file: /nonexistent\n",
			env:  map[string]string{"T": token},
			want: []string{"config.yml:3: chat.token_file: set chat.token or chat.token_file, not both"},
		},
		{
			name: "token file missing",
			env:  map[string]string{"SUMMONER_CHAT_TOKEN_FILE": "/nonexistent/token"},
			want: []string{"SUMMONER_CHAT_TOKEN_FILE: cannot read /nonexistent/token: no such file or directory"},
		},
		{
			name: "broken yaml",
			file: "chat: [\n",
			want: []string{"config.yml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				mode := tt.mode
				if mode == 0 {
					mode = 0o600
				}
				path = writeFile(t, tt.file, mode)
				if err := os.Chmod(path, mode); err != nil { // umask may have trimmed it
					t.Fatal(err)
				}
			}
			_, err := Load(path, envOf(tt.env), tt.purpose)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load error = %v, want Problems", err)
			}
			if len(ps) != len(tt.want) && tt.name != "every problem at once" {
				t.Errorf("%d problems, want %d:\n%v", len(ps), len(tt.want), ps)
			}
			for _, w := range tt.want {
				if !strings.Contains(ps.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, ps)
				}
			}
			if strings.Contains(ps.Error(), token) {
				t.Errorf("the token leaked into the message: %v", ps)
			}
		})
	}
}

func TestTokenFileReadableByOthers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load("", envOf(map[string]string{"SUMMONER_CHAT_TOKEN_FILE": p}), ForShell)
	if err == nil || !strings.Contains(err.Error(), "readable by other users; run: chmod 600 "+p) {
		t.Fatalf("err = %v", err)
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c := Defaults()
	c.Chat.Token = Secret(token)
	for _, s := range []string{
		fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s %q", c.Chat.Token, c.Chat.Token),
	} {
		if strings.Contains(s, token) {
			t.Fatalf("token printed: %s", s)
		}
	}
}

func TestExampleConfigLoads(t *testing.T) {
	_, err := Load("../config.example.yml", envOf(map[string]string{"SUMMONER_BOT_TOKEN": token}), ForRun)
	if err != nil {
		t.Fatalf("config.example.yml: %v", err)
	}
}

func TestBackupsSection(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "refresh")
	if err := os.WriteFile(secretFile, []byte("refresh-"+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := `backups:
  destinations:
    - name: disk
      local: {path: /var/backups/summoner}
    - name: second
      sftp: {addr: "backup.example.com:22", user: s, key_file: /k, known_hosts: /kh, root: /srv/b}
    - name: box
      dropbox: {app_key: k, app_secret: "${SECRET}", refresh_token_file: ` + secretFile + `, root: /summoner}
  encryption: {recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]}
  retention: {keep_last: 3}
`
	c, err := Load(writeFile(t, good, 0o600), envOf(map[string]string{"SECRET": token}), ForShell)
	if err != nil {
		t.Fatal(err)
	}
	box := c.Backups.Destinations[2].Dropbox
	if box.RefreshToken.Reveal() != "refresh-"+token || box.AppSecret.Reveal() != token || c.Backups.Retention.KeepLast != 3 || c.Backups.Retention.Daily != 7 {
		t.Fatalf("backups = %+v", c.Backups)
	}
	bad := `backups:
  destinations:
    - name: disk
      local: {path: relative}
    - name: disk
      local: {path: /x}
      sftp: {addr: nohost, user: s, key_file: /k, known_hosts: /kh}
    - name: box
      dropbox: {app_key: k}
      locl: {}
  encryption: {recipients: [ssh-ed25519 AAAA]}
`
	_, err = Load(writeFile(t, bad, 0o600), envOf(nil), ForShell)
	for _, w := range []string{"locl: unknown key (did you mean local?)"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("problems %v lack %q", err, w)
		}
	}
	bad = strings.Replace(bad, "      locl: {}\n", "", 1)
	_, err = Load(writeFile(t, bad, 0o600), envOf(nil), ForShell)
	for _, w := range []string{`local.path "relative" should be an absolute path`, `two destinations are called "disk"`,
		`sftp.addr "nohost" should be host:port`, "set exactly one of local, sftp and dropbox", "dropbox needs app_key, app_secret and refresh_token",
		`"ssh-ed25519 AAAA" is not an age public key`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("problems lack %q:\n%v", w, err)
		}
	}
}

func TestMaintenanceSection(t *testing.T) {
	good := []struct {
		name  string
		file  string
		env   map[string]string
		check func(t *testing.T, m Maintenance)
	}{
		{
			name: "defaults",
			check: func(t *testing.T, m Maintenance) {
				if m.Dump != "0 3 * * *" || m.Prune == "" || m.Digest == "" || m.RunTimeout.D() != 6*time.Hour {
					t.Errorf("maintenance = %+v", m)
				}
				if !strings.HasSuffix(m.StateFile, "/maintenance-state.json") {
					t.Errorf("state file %q is not beside the other state", m.StateFile)
				}
				if loc, err := m.Location(); err != nil || loc != time.Local {
					t.Errorf("location = %v, %v; want the server's", loc, err)
				}
			},
		},
		{
			name: "seconds field, descriptor, off and a time zone",
			file: "maintenance:\n  dump: \"*/30 * * * * *\"\n  cold_backup: \"@weekly\"\n  verify_restore: off\n  prune: \"CRON_TZ=UTC 15 4 * * *\"\n  digest: \"Off\"\n  timezone: Europe/Paris\n  run_timeout: 90m\n  state_file: /var/lib/s/m.json\n",
			check: func(t *testing.T, m Maintenance) {
				want := []Schedule{{"dump", "*/30 * * * * *"}, {"cold_backup", "@weekly"}, {"verify_restore", "off"}, {"verify_cold_restore", "0 6 * * 0"}, {"prune", "CRON_TZ=UTC 15 4 * * *"}, {"digest", "Off"}}
				if !slices.Equal(m.Schedules(), want) {
					t.Errorf("schedules = %v, want %v", m.Schedules(), want)
				}
				if loc, err := m.Location(); err != nil || loc.String() != "Europe/Paris" {
					t.Errorf("location = %v, %v", loc, err)
				}
				if m.RunTimeout.D() != 90*time.Minute || m.StateFile != "/var/lib/s/m.json" {
					t.Errorf("maintenance = %+v", m)
				}
			},
		},
		{
			name: "environment sets a schedule",
			env:  map[string]string{"SUMMONER_MAINTENANCE_DUMP": "0 1 * * *", "SUMMONER_MAINTENANCE_TIMEZONE": "UTC"},
			check: func(t *testing.T, m Maintenance) {
				if m.Dump != "0 1 * * *" || m.Timezone != "UTC" {
					t.Errorf("maintenance = %+v", m)
				}
			},
		},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadBody(t, tt.file, tt.env, ForShell)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, c.Maintenance)
		})
	}

	bad := []struct {
		name string
		file string
		env  map[string]string
		want []string // one per problem
	}{
		{
			name: "four fields",
			file: "maintenance:\n  dump: \"0 3 * *\"\n",
			want: []string{`config.yml:2: maintenance.dump: "0 3 * *" is not a schedule (expected 5 to 6 fields, found 4`},
		},
		{
			name: "out of range, named by its key",
			file: "maintenance:\n  digest: \"0 25 * * 1\"\n",
			want: []string{`config.yml:2: maintenance.digest: "0 25 * * 1" is not a schedule (`},
		},
		{
			name: "empty schedule",
			file: "maintenance:\n  prune: \"\"\n",
			want: []string{`config.yml:2: maintenance.prune: is empty; write a schedule like "0 3 * * *"`},
		},
		{
			name: "unknown key with a suggestion",
			file: "maintenance:\n  cold_backups: \"@weekly\"\n",
			want: []string{"config.yml:2: maintenance.cold_backups: unknown key (did you mean cold_backup?)"},
		},
		{
			name: "bad time zone and timeout and state file",
			file: "maintenance:\n  timezone: Mars/Olympus\n  run_timeout: 0s\n  state_file: relative.json\n",
			want: []string{
				`config.yml:2: maintenance.timezone: "Mars/Olympus" is not a time zone`,
				"config.yml:3: maintenance.run_timeout: must be more than zero",
				`config.yml:4: maintenance.state_file: "relative.json" should be an absolute path`,
			},
		},
		{
			name: "bad schedule from the environment",
			env:  map[string]string{"SUMMONER_MAINTENANCE_COLD_BACKUP": "weekly"},
			want: []string{`SUMMONER_MAINTENANCE_COLD_BACKUP: "weekly" is not a schedule`},
		},
		{
			name: "every bad schedule at once",
			file: "maintenance:\n  dump: x\n  cold_backup: y\n  verify_restore: z\n  verify_cold_restore: w\n  prune: \"61 * * * *\"\n  digest: \"@fortnightly\"\n",
			want: []string{"config.yml:2: maintenance.dump", "config.yml:3: maintenance.cold_backup", "config.yml:4: maintenance.verify_restore",
				"config.yml:5: maintenance.verify_cold_restore", "config.yml:6: maintenance.prune", "config.yml:7: maintenance.digest"},
		},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := loadBody(t, tt.file, tt.env, ForShell)
			var ps Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load error = %v, want Problems", err)
			}
			if len(ps) != len(tt.want) {
				t.Errorf("%d problems, want %d:\n%v", len(ps), len(tt.want), ps)
			}
			for _, w := range tt.want {
				if !strings.Contains(ps.Error(), w) {
					t.Errorf("problems lack %q:\n%v", w, ps)
				}
			}
		})
	}
}

func TestMaintenanceStateFileRequiredToRun(t *testing.T) {
	_, err := Load("", envOf(map[string]string{"SUMMONER_CHAT_URL": "https://c.example", "SUMMONER_CHAT_TOKEN": token, "SUMMONER_MAINTENANCE_STATE_FILE": ""}), ForRun)
	if err == nil || !strings.Contains(err.Error(), "SUMMONER_MAINTENANCE_STATE_FILE: missing; the bot keeps schedule changes") {
		t.Fatalf("err = %v", err)
	}
}

func TestNotificationsSection(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "gl")
	if err := os.WriteFile(secretFile, []byte("gitlab-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "notifications:\n  sources:\n    - {name: gl, kind: gitlab, secret_file: " + secretFile + "}\n    - {name: gh, kind: github, secret: github-secret-0123456789}\n" +
		"  recipes:\n    - name: ci\n      source: gl\n      events: [pipeline]\n      branches: [main]\n      status_changed: true\n" +
		"      actions:\n        - post: {channel: dev, template: \"{{.Title}}\"}\n        - forward: {url: \"https://example.com/x\", timeout: 5s}\n" +
		"    - name: green\n      source: gh\n      actions:\n        - command: {line: update app, level: operator, channel: ops}\n"
	c, err := loadBody(t, good, nil, ForShell)
	if err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	n := c.Notifications
	if len(n.Sources) != 2 || n.Sources[0].Secret.Reveal() != "gitlab-token-0123456789" || len(n.Recipes) != 2 {
		t.Fatalf("notifications = %+v", n)
	}
	if f := n.Recipes[0].Actions[1].Forward; f == nil || f.Timeout != 5*time.Second {
		t.Errorf("forward = %+v", f)
	}
	if !n.Alerts.Containers || n.Alerts.Window.D() != 10*time.Minute || n.Alerts.LogLines != 20 {
		t.Errorf("alert defaults = %+v", n.Alerts)
	}
	if strings.Contains(fmt.Sprintf("%v %+v", c, c), "github-secret-0123456789") {
		t.Error("a source's secret prints")
	}

	c, err = loadBody(t, "notifications:\n  unverified_bodies: {total: 32, per_address: 2}\n", nil, ForShell)
	if err != nil || c.Notifications.UnverifiedBodies != (notifications.Limits{Total: 32, PerAddress: 2}) {
		t.Fatalf("unverified_bodies = %+v, %v", c.Notifications.UnverifiedBodies, err)
	}

	bad := []struct{ name, file, want string }{
		{"unknown kind", "notifications:\n  sources:\n    - {name: x, kind: jenkins, secret: 0123456789abcdef}\n", `unknown kind "jenkins"`},
		{"short secret", "notifications:\n  sources:\n    - {name: x, kind: github, secret: short}\n", "secret must be at least 16"},
		{"unknown source", "notifications:\n  recipes:\n    - {name: r, source: nope, actions: [{post: {channel: a, template: x}}]}\n", "r"},
		{"bad template", "notifications:\n  sources:\n    - {name: x, kind: github, secret: 0123456789abcdef}\n  recipes:\n    - {name: broken, source: x, actions: [{post: {channel: a, template: \"{{.Title\"}}]}\n", "broken"},
		{"unknown key", "notifications:\n  recipes:\n    - {name: r, source: docker, filter: x, actions: [{post: {channel: a, template: x}}]}\n", "filter"},
		{"callback without http", "http:\n  listen: \"\"\nchat:\n  callback_url: http://127.0.0.1:8079\n", "http.listen, which is off"},
		{"negative cap", "notifications:\n  unverified_bodies: {per_source: -1}\n", "notifications.unverified_bodies.per_source: must be 0 (the default) or more, not -1"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadBody(t, tc.file, nil, ForShell)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestGatewaySection(t *testing.T) {
	c, err := loadBody(t, "summoner:\n  domain: example.com\ngateway:\n  enabled: true\n  https_listen: 127.0.0.1:8443\n  hosts:\n    wekan: {subdomain: boards, aliases: [kanban.example.org]}\n", nil, ForShell)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gateway
	if c, err := loadBody(t, "docker:\n  image_mirrors: {wekanteam/wekan: \"${MIRROR}/wekan\"}\n", map[string]string{"MIRROR": "registry.example.com"}, ForShell); err != nil || c.Docker.ImageMirrors["wekanteam/wekan"] != "registry.example.com/wekan" {
		t.Errorf("a ${VAR} in a map's value: %v, %v", c.Docker.ImageMirrors, err)
	}
	if !g.Enabled || g.HTTPListen != ":80" || g.HTTPSListen != "127.0.0.1:8443" || g.Hosts["wekan"].Subdomain != "boards" || !strings.Contains(g.ACMECA, "letsencrypt") {
		t.Errorf("gateway = %+v", g)
	}
	for _, tc := range []struct{ file, want string }{
		{"gateway:\n  enabled: true\n", "set summoner.domain"},
		{"summoner:\n  domain: example.com\ngateway:\n  enabled: true\n  http_listen: eighty\n", "gateway.http_listen"},
		{"summoner:\n  domain: example.com\ngateway:\n  enabled: true\n  hosts:\n    wekan: {aliases: [boards]}\n", "full host name"},
		// Found by FuzzLoad: keys inside a minion's entry were not checked.
		{"gateway:\n  hosts:\n    wekan:\n      subdomian: boards\n", "config.yml:4: gateway.hosts.wekan.subdomian: unknown key (did you mean subdomain?)"},
	} {
		if _, err := loadBody(t, tc.file, nil, ForShell); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.file, err, tc.want)
		}
	}
}
