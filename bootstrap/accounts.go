package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattermost/mattermost-server/v6/model"
)

// Accounts creates what Summoner needs inside a fresh Mattermost, over
// loopback while Mattermost has no public route: the first admin (with a
// generated password, shown once), the settings a bot needs and open
// registration off (through the config API), an invite-only team and a
// private ops channel, the bot account with its personal access token, and
// the team's /summon slash command. An existing open team is made
// invite-only; an existing public ops channel is reported, not converted. It keeps the secrets in a JSON state file of mode 0600, so a
// second run logs in with them and changes nothing, and hands them to the
// next step through Result.
//
// It never makes a second admin, bot or slash command: an admin that exists
// while the state file is missing is a failure with a way out, and a bot
// token that stopped working (revoked) is replaced.
type Accounts struct {
	// URL is where this machine reaches Mattermost (http://127.0.0.1:8065).
	URL string
	// Team and OpsChannel are names (lowercase, as in URLs); their display
	// names are TeamDisplayName and OpsDisplayName (the names when empty).
	Team, TeamDisplayName      string
	OpsChannel, OpsDisplayName string
	// BotUsername is the bot account ("summoner").
	BotUsername string
	// AdminUsername (default "admin") and AdminEmail (default
	// admin@localhost) are used when the admin is created.
	AdminUsername, AdminEmail string
	// CallbackURL is what /summon posts to
	// (http://127.0.0.1:8079/mattermost/slash); its host is added to
	// Mattermost's allowed untrusted internal connections.
	CallbackURL string
	// StatePath is the JSON state file (mode 0600) holding the admin's
	// password, the bot's token and the slash command's token.
	StatePath string
	// Client is used for every call; nil: one with a 30 s timeout.
	Client *http.Client

	// st is the state as last read or written.
	st *accountsState
}

// AccountsResult is what the later steps need (the config step writes
// BotToken and SlashToken into config.yml).
type AccountsResult struct {
	URL            string
	Team           string
	OpsChannel     string
	AdminUsername  string
	BotUsername    string
	BotUserID      string
	BotToken       string
	SlashCommandID string
	SlashToken     string
}

// accountsState is the state file.
type accountsState struct {
	URL            string `json:"url,omitempty"`
	AdminUsername  string `json:"admin_username"`
	AdminPassword  string `json:"admin_password"`
	Team           string `json:"team,omitempty"`
	OpsChannel     string `json:"ops_channel,omitempty"`
	BotUsername    string `json:"bot_username,omitempty"`
	BotUserID      string `json:"bot_user_id,omitempty"`
	BotTokenID     string `json:"bot_token_id,omitempty"`
	BotToken       string `json:"bot_token,omitempty"`
	SlashCommandID string `json:"slash_command_id,omitempty"`
	SlashToken     string `json:"slash_token,omitempty"`
}

const (
	slashTrigger = "summon"
	// botTokenDesc marks the bot tokens this step makes: a token it made
	// and lost (a run interrupted before the state file was written) is
	// revoked when it makes a new one; other tokens are left alone.
	botTokenDesc = "summoner (made by summoner bootstrap)"
	accountsNext = "run `summoner bootstrap` again; if it fails the same way, `summoner logs mattermost` shows why"
)

// Name implements Step.
func (a *Accounts) Name() string { return "accounts" }

// Title implements Step.
func (a *Accounts) Title() string {
	return "Create the admin, the team, the bot account and the /summon command"
}

// Plan implements Planner.
func (a *Accounts) Plan(context.Context) string {
	return fmt.Sprintf("create the admin %s over loopback, close registration, invite-only team %s with private channel %s, bot @%s and its token, and /%s calling %s (secrets in %s, mode 0600)",
		a.adminUsername(), a.Team, a.OpsChannel, a.BotUsername, slashTrigger, a.CallbackURL, a.StatePath)
}

// Result is what the step made, from the state file. It fails when the
// step has not run (no state file) or has not finished.
func (a *Accounts) Result() (AccountsResult, error) {
	st := a.st
	if st == nil {
		var err error
		if st, err = a.load(); err != nil {
			return AccountsResult{}, err
		}
	}
	if st == nil || st.BotToken == "" || st.SlashToken == "" {
		return AccountsResult{}, Failf("run `summoner bootstrap` again: the accounts step comes before this one",
			"the accounts step has not finished: %s holds no bot token or slash command token", a.StatePath)
	}
	return AccountsResult{
		URL: a.URL, Team: a.Team, OpsChannel: a.OpsChannel,
		AdminUsername: st.AdminUsername,
		BotUsername:   a.BotUsername, BotUserID: st.BotUserID, BotToken: st.BotToken,
		SlashCommandID: st.SlashCommandID, SlashToken: st.SlashToken,
	}, nil
}

func (a *Accounts) adminUsername() string { return orDefault(a.AdminUsername, "admin") }

// Done is true when the admin can log in with the stored password, the
// team and the channel exist with the bot in them, the settings are on,
// the bot's stored token works, and /summon calls the callback URL. A
// Mattermost that does not answer is "not done" (a dry run asks before it
// is up); what says what is missing.
func (a *Accounts) Done(ctx context.Context) (bool, string, error) {
	st, err := a.load()
	if err != nil {
		return false, "", err
	}
	if st == nil || st.AdminPassword == "" {
		return false, "no state file yet", nil
	}
	c := a.client(ctx)
	if u, _, err := c.Login(st.AdminUsername, st.AdminPassword); err != nil {
		return false, "the admin cannot log in: " + apiWhy(err), nil
	} else if !u.IsSystemAdmin() {
		return false, st.AdminUsername + " is not a system admin", nil
	}
	cfg, _, err := c.GetConfig()
	if err != nil {
		return false, "cannot read the config: " + apiWhy(err), nil
	}
	if off := a.settingsOff(cfg); len(off) > 0 {
		return false, "settings to change: " + strings.Join(off, ", "), nil
	}
	team, _, err := c.GetTeamByName(a.Team, "")
	if err != nil {
		return false, "no team " + a.Team, nil
	}
	if teamOpen(team) {
		return false, "team " + a.Team + " is open to every account on the server", nil
	}
	ch, _, err := c.GetChannelByName(a.OpsChannel, team.Id, "")
	if err != nil {
		return false, "no channel " + a.OpsChannel, nil
	}
	bot, _, err := c.GetUserByUsername(a.BotUsername, "")
	if err != nil || !bot.IsBot || bot.DeleteAt != 0 {
		return false, "no bot @" + a.BotUsername, nil
	}
	if _, _, err := c.GetTeamMember(team.Id, bot.Id, ""); err != nil {
		return false, "the bot is not in team " + a.Team, nil
	}
	if _, _, err := c.GetChannelMember(ch.Id, bot.Id, ""); err != nil {
		return false, "the bot is not in channel " + a.OpsChannel, nil
	}
	if !a.tokenWorks(ctx, st.BotToken, bot.Id) {
		return false, "the bot's stored token does not work", nil
	}
	cmds, _, err := c.ListCommands(team.Id, true)
	if err != nil {
		return false, "cannot list the slash commands: " + apiWhy(err), nil
	}
	cmd := findCommand(cmds, st.SlashCommandID)
	if cmd == nil || cmd.Trigger != slashTrigger || !a.commandRight(cmd) || cmd.Token != st.SlashToken {
		return false, "no /" + slashTrigger + " command calling " + a.CallbackURL, nil
	}
	what := fmt.Sprintf("admin %s, registration closed, invite-only team %s, private channel %s, bot @%s with a working token, /%s calls %s",
		st.AdminUsername, a.Team, a.OpsChannel, a.BotUsername, slashTrigger, a.CallbackURL)
	if ch.Type == model.ChannelTypeOpen {
		what = strings.Replace(what, "private channel", "channel", 1) + "; " + a.publicChannel()
	}
	return true, what, nil
}

// teamOpen: any account on the server may join the team by itself.
func teamOpen(t *model.Team) bool { return t.Type != model.TeamInvite || t.AllowOpenInvite }

// publicChannel is the warning about an ops channel that is public. The
// step does not convert it: its members would lose nothing, but people
// who read it without being members would, and that is the owner's call.
func (a *Accounts) publicChannel() string {
	return fmt.Sprintf("⚠ channel %s is public: everyone in team %s can read the reports; make it private in Mattermost (channel menu > Convert to Private Channel), bootstrap does not convert it", a.OpsChannel, a.Team)
}

// Apply makes what is missing, in order, writing the state file as soon as
// a secret exists so that an interrupted run resumes without losing it.
func (a *Accounts) Apply(ctx context.Context, say func(string, ...any)) error {
	if err := a.check(); err != nil {
		return err
	}
	st, err := a.load()
	if err != nil {
		return err
	}
	c := a.client(ctx)
	admin, st, err := a.ensureAdmin(c, st, say)
	if err != nil {
		return err
	}
	st.URL, st.Team, st.OpsChannel, st.BotUsername = a.URL, a.Team, a.OpsChannel, a.BotUsername

	if err := a.ensureSettings(c, say); err != nil {
		return err
	}
	team, err := a.ensureTeam(c, admin, say)
	if err != nil {
		return err
	}
	ch, err := a.ensureChannel(c, team, admin, say)
	if err != nil {
		return err
	}
	bot, err := a.ensureBot(c, say)
	if err != nil {
		return err
	}
	if _, _, err := c.AddTeamMember(team.Id, bot.UserId); err != nil {
		return a.apiFail(err, "adding @%s to team %s", a.BotUsername, a.Team)
	}
	if _, _, err := c.AddChannelMember(ch.Id, bot.UserId); err != nil {
		return a.apiFail(err, "adding @%s to channel %s", a.BotUsername, a.OpsChannel)
	}
	st.BotUserID = bot.UserId
	if err := a.ensureToken(ctx, c, st, say); err != nil {
		return err
	}
	return a.ensureCommand(c, team, st, say)
}

// check refuses an incomplete step before it changes anything.
func (a *Accounts) check() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"Mattermost URL", a.URL}, {"team", a.Team}, {"ops channel", a.OpsChannel},
		{"bot username", a.BotUsername}, {"callback URL", a.CallbackURL}, {"state file", a.StatePath},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("accounts step: no %s given", strings.Join(missing, ", "))
	}
	if _, err := callbackHost(a.CallbackURL); err != nil {
		return Failf("fix the bot's listen address in the config file, then run `summoner bootstrap` again", "%v", err)
	}
	return nil
}

// ensureAdmin logs in as the admin, creating it on a server with no
// accounts. The password is generated and written to the state file before
// the account is made, so it is never lost.
func (a *Accounts) ensureAdmin(c *model.Client4, st *accountsState, say func(string, ...any)) (*model.User, *accountsState, error) {
	fresh := st == nil || st.AdminPassword == ""
	if !fresh {
		u, resp, err := c.Login(st.AdminUsername, st.AdminPassword)
		if err == nil {
			if !u.IsSystemAdmin() {
				return nil, nil, Failf("make "+st.AdminUsername+" a system admin (System Console > Users), or put a system admin's username and password in "+a.StatePath+", then run `summoner bootstrap` again",
					"%s can log in but is not a system admin", st.AdminUsername)
			}
			return u, st, nil
		}
		if s := status(resp); s != http.StatusUnauthorized && s != http.StatusBadRequest {
			return nil, nil, a.apiFail(err, "logging in as %s", st.AdminUsername)
		}
		// Refused: either the admin was never made (a run interrupted
		// between writing the state and creating it) or the password
		// changed. Only a server with no accounts tells them apart.
	}
	empty, err := a.noAccounts(c)
	if err != nil {
		return nil, nil, err
	}
	if !empty {
		if fresh {
			return nil, nil, Failf(fmt.Sprintf(`write {"admin_username": "<a system admin>", "admin_password": "<their password>"} to %s (mode 0600) and run `+"`summoner bootstrap`"+` again`, a.StatePath),
				"Mattermost at %s already has accounts and %s is missing, so bootstrap will not make a second admin", a.URL, a.StatePath)
		}
		return nil, nil, Failf(fmt.Sprintf("put %s's current password in admin_password in %s and run `summoner bootstrap` again", st.AdminUsername, a.StatePath),
			"Mattermost refuses the password of %s stored in %s (changed since?)", st.AdminUsername, a.StatePath)
	}
	if fresh {
		pw, err := newPassword()
		if err != nil {
			return nil, nil, err
		}
		st = &accountsState{AdminUsername: a.adminUsername(), AdminPassword: pw}
		if err := a.save(st); err != nil {
			return nil, nil, err
		}
	}
	email := strings.ToLower(orDefault(a.AdminEmail, "admin@localhost"))
	if _, _, err := c.CreateUser(&model.User{Username: st.AdminUsername, Email: email, Password: st.AdminPassword}); err != nil {
		return nil, nil, a.apiFail(err, "creating the admin %s", st.AdminUsername)
	}
	u, _, err := c.Login(st.AdminUsername, st.AdminPassword)
	if err != nil {
		return nil, nil, a.apiFail(err, "logging in as the new admin %s", st.AdminUsername)
	}
	if !u.IsSystemAdmin() {
		return nil, nil, Failf("report this: Mattermost makes the first account a system admin",
			"the new account %s is not a system admin (roles %q)", u.Username, u.Roles)
	}
	say("admin account: %s / %s (shown once; also in %s, mode 0600)", st.AdminUsername, st.AdminPassword, a.StatePath)
	return u, st, nil
}

// noAccounts asks the server whether it has no accounts yet (the first
// account made becomes system admin), without logging in.
func (a *Accounts) noAccounts(c *model.Client4) (bool, error) {
	none, err := noAccounts(c)
	var se *StepError
	if err != nil && !errors.As(err, &se) {
		return false, a.apiFail(err, "asking whether it has accounts")
	}
	return none, err
}

// noAccounts asks a Mattermost server whether it has no accounts yet.
func noAccounts(c *model.Client4) (bool, error) {
	cfg, _, err := c.GetOldClientConfig("")
	if err != nil {
		return false, err
	}
	v, ok := cfg["NoAccounts"]
	if !ok {
		return false, Failf("report this with Mattermost's version", "Mattermost at %s does not say whether it has accounts", c.URL)
	}
	return v == "true", nil
}

// ensureSettings turns on what a bot needs, read-modify-write, keeping the
// hosts already allowed.
func (a *Accounts) ensureSettings(c *model.Client4, say func(string, ...any)) error {
	cfg, _, err := c.GetConfig()
	if err != nil {
		return a.apiFail(err, "reading the config")
	}
	off := a.settingsOff(cfg)
	if len(off) == 0 {
		return nil
	}
	a.turnOn(cfg)
	got, _, err := c.UpdateConfig(cfg)
	if err != nil {
		return Failf("turn them on in the System Console (or with MM_SERVICESETTINGS_* variables), then run `summoner bootstrap` again",
			"Mattermost refused the config update (%s): %s", strings.Join(off, ", "), apiWhy(err))
	}
	if still := a.settingsOff(got); len(still) > 0 {
		// An MM_* environment variable or a read-only config wins over
		// the API.
		return Failf("remove the MM_* variables or the read-only config that set them, or set them there, then run `summoner bootstrap` again",
			"Mattermost kept these settings as they were after the update: %s", strings.Join(still, ", "))
	}
	say("set %s", strings.Join(off, ", "))
	return nil
}

// settingsOff lists the settings that are not as bootstrap needs them:
// what a bot needs on, and registration closed to strangers.
func (a *Accounts) settingsOff(cfg *model.Config) []string {
	var off []string
	s := cfg.ServiceSettings
	for _, b := range []struct {
		name string
		v    *bool
		want bool
	}{
		{"bot accounts on", s.EnableBotAccountCreation, true},
		{"personal access tokens on", s.EnableUserAccessTokens, true},
		{"incoming webhooks on", s.EnableIncomingWebhooks, true},
		{"slash commands on", s.EnableCommands, true},
		// Set false explicitly, not left to the default: without an
		// invitation nobody may make an account.
		{"open registration off (EnableOpenServer)", cfg.TeamSettings.EnableOpenServer, false},
	} {
		if b.v == nil || *b.v != b.want {
			off = append(off, b.name)
		}
	}
	host, _ := callbackHost(a.CallbackURL)
	if host != "" && !hostAllowed(s.AllowedUntrustedInternalConnections, host) {
		off = append(off, "untrusted internal connections to "+host)
	}
	return off
}

func (a *Accounts) turnOn(cfg *model.Config) {
	s := &cfg.ServiceSettings
	s.EnableBotAccountCreation = model.NewBool(true)
	s.EnableUserAccessTokens = model.NewBool(true)
	s.EnableIncomingWebhooks = model.NewBool(true)
	s.EnableCommands = model.NewBool(true)
	cfg.TeamSettings.EnableOpenServer = model.NewBool(false)
	host, _ := callbackHost(a.CallbackURL)
	if host != "" && !hostAllowed(s.AllowedUntrustedInternalConnections, host) {
		have := ""
		if s.AllowedUntrustedInternalConnections != nil {
			have = strings.TrimSpace(*s.AllowedUntrustedInternalConnections)
		}
		if have != "" {
			have += " "
		}
		s.AllowedUntrustedInternalConnections = model.NewString(have + host)
	}
}

// callbackHost is the host of the slash command's URL, as Mattermost's
// allow list names it (no port).
func callbackHost(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "", fmt.Errorf("the slash command's callback URL %q is not an http(s) URL", raw)
	}
	return u.Hostname(), nil
}

// hostAllowed says whether Mattermost's allow list (hosts, IPs and CIDRs,
// separated by spaces or commas) lets it call host.
func hostAllowed(list *string, host string) bool {
	if list == nil {
		return false
	}
	ip := net.ParseIP(host)
	for _, e := range strings.FieldsFunc(*list, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
		if strings.EqualFold(e, host) {
			return true
		}
		if _, n, err := net.ParseCIDR(e); err == nil && ip != nil && n.Contains(ip) {
			return true
		}
	}
	return false
}

func (a *Accounts) ensureTeam(c *model.Client4, admin *model.User, say func(string, ...any)) (*model.Team, error) {
	team, resp, err := c.GetTeamByName(a.Team, "")
	if err != nil {
		if status(resp) != http.StatusNotFound {
			return nil, a.apiFail(err, "looking up team %s", a.Team)
		}
		if team, _, err = c.CreateTeam(&model.Team{Name: a.Team, DisplayName: orDefault(a.TeamDisplayName, a.Team), Type: model.TeamInvite}); err != nil {
			return nil, a.apiFail(err, "creating team %s", a.Team)
		}
		say("created team %s, invite-only", a.Team)
	}
	if teamOpen(team) {
		// Open, any account could join and read it; the coming single
		// sign-on trusts team membership. Closing it removes no member.
		if team, _, err = c.UpdateTeamPrivacy(team.Id, model.TeamInvite); err != nil {
			return nil, a.apiFail(err, "making team %s invite-only", a.Team)
		}
		say("team %s was open to every account on the server: made it invite-only (its members stay)", a.Team)
	}
	if _, _, err := c.AddTeamMember(team.Id, admin.Id); err != nil {
		return nil, a.apiFail(err, "adding %s to team %s", admin.Username, a.Team)
	}
	return team, nil
}

func (a *Accounts) ensureChannel(c *model.Client4, team *model.Team, admin *model.User, say func(string, ...any)) (*model.Channel, error) {
	ch, resp, err := c.GetChannelByName(a.OpsChannel, team.Id, "")
	if err != nil {
		if status(resp) != http.StatusNotFound {
			return nil, a.apiFail(err, "looking up channel %s", a.OpsChannel)
		}
		ch, _, err = c.CreateChannel(&model.Channel{TeamId: team.Id, Name: a.OpsChannel, DisplayName: orDefault(a.OpsDisplayName, a.OpsChannel), Type: model.ChannelTypePrivate})
		if err != nil {
			return nil, a.apiFail(err, "creating channel %s", a.OpsChannel)
		}
		say("created private channel %s in team %s", a.OpsChannel, a.Team)
	} else if ch.Type == model.ChannelTypeOpen {
		say("%s", a.publicChannel())
	}
	if _, _, err := c.AddChannelMember(ch.Id, admin.Id); err != nil {
		return nil, a.apiFail(err, "adding %s to channel %s", admin.Username, a.OpsChannel)
	}
	return ch, nil
}

// ensureBot finds the bot account, enabling it again if it was disabled,
// or makes it.
func (a *Accounts) ensureBot(c *model.Client4, say func(string, ...any)) (*model.Bot, error) {
	u, resp, err := c.GetUserByUsername(a.BotUsername, "")
	if err != nil {
		if status(resp) != http.StatusNotFound {
			return nil, a.apiFail(err, "looking up @%s", a.BotUsername)
		}
		bot, _, err := c.CreateBot(&model.Bot{Username: a.BotUsername, DisplayName: "Summoner", Description: "Summoner, the ChatOps bot"})
		if err != nil {
			return nil, a.apiFail(err, "creating the bot @%s", a.BotUsername)
		}
		say("created bot @%s", a.BotUsername)
		return bot, nil
	}
	if !u.IsBot {
		return nil, Failf("rename or remove that user, or choose another bot name in the config file, then run `summoner bootstrap` again",
			"@%s is a user account, not a bot", a.BotUsername)
	}
	bot, _, err := c.GetBotIncludeDeleted(u.Id, "")
	if err != nil {
		return nil, a.apiFail(err, "reading the bot @%s", a.BotUsername)
	}
	if bot.DeleteAt != 0 {
		if bot, _, err = c.EnableBot(u.Id); err != nil {
			return nil, a.apiFail(err, "enabling the bot @%s again", a.BotUsername)
		}
		say("enabled the bot @%s again", a.BotUsername)
	}
	return bot, nil
}

// ensureToken keeps the stored token if it works; else it makes a new one,
// stores it, and revokes the tokens this step made before and lost.
func (a *Accounts) ensureToken(ctx context.Context, c *model.Client4, st *accountsState, say func(string, ...any)) error {
	if st.BotToken != "" && a.tokenWorks(ctx, st.BotToken, st.BotUserID) {
		return a.save(st)
	}
	hadOne := st.BotToken != ""
	tok, _, err := c.CreateUserAccessToken(st.BotUserID, botTokenDesc)
	if err != nil {
		return a.apiFail(err, "creating a token for @%s", a.BotUsername)
	}
	if tok.Token == "" {
		return Failf(accountsNext, "Mattermost made a token for @%s but did not return it", a.BotUsername)
	}
	st.BotTokenID, st.BotToken = tok.Id, tok.Token
	if err := a.save(st); err != nil {
		return err
	}
	if hadOne {
		say("the stored token of @%s no longer worked (revoked?): made a new one", a.BotUsername)
	} else {
		say("made a token for @%s", a.BotUsername)
	}
	const perPage = 100
	for page := 0; ; page++ {
		list, _, err := c.GetUserAccessTokensForUser(st.BotUserID, page, perPage)
		if err != nil {
			return a.apiFail(err, "listing the tokens of @%s", a.BotUsername)
		}
		for _, t := range list {
			if t.Id == tok.Id || t.Description != botTokenDesc {
				continue
			}
			if _, err := c.RevokeUserAccessToken(t.Id); err != nil {
				return a.apiFail(err, "revoking an old token of @%s", a.BotUsername)
			}
			say("revoked an earlier token of @%s that bootstrap had lost", a.BotUsername)
		}
		if len(list) < perPage {
			return nil
		}
	}
}

// tokenWorks says whether the token logs in as the bot.
func (a *Accounts) tokenWorks(ctx context.Context, token, botID string) bool {
	if token == "" {
		return false
	}
	c := a.client(ctx)
	c.SetToken(token)
	me, _, err := c.GetMe("")
	return err == nil && me.Id == botID
}

// ensureCommand makes the team's /summon command, or points the one that
// is there at the callback URL, and stores its token.
func (a *Accounts) ensureCommand(c *model.Client4, team *model.Team, st *accountsState, say func(string, ...any)) error {
	cmds, _, err := c.ListCommands(team.Id, true)
	if err != nil {
		return a.apiFail(err, "listing the slash commands of team %s", a.Team)
	}
	cmd := findCommand(cmds, st.SlashCommandID)
	if cmd == nil {
		// One lost by an interrupted run, or made by hand: adopted, never
		// doubled (Mattermost would refuse a second trigger anyway).
		for _, x := range cmds {
			if x.Trigger == slashTrigger && x.DeleteAt == 0 {
				cmd = x
				break
			}
		}
	}
	switch {
	case cmd == nil:
		cmd, _, err = c.CreateCommand(&model.Command{
			TeamId: team.Id, Trigger: slashTrigger, Method: model.CommandMethodPost, URL: a.CallbackURL,
			DisplayName: "Summoner", Description: "Talk to Summoner",
			AutoComplete: true, AutoCompleteDesc: "Summon, update and look after minions", AutoCompleteHint: "[help]",
		})
		if err != nil {
			return a.apiFail(err, "creating /%s", slashTrigger)
		}
		say("created /%s calling %s", slashTrigger, a.CallbackURL)
	case !a.commandRight(cmd):
		cmd.URL, cmd.Method = a.CallbackURL, model.CommandMethodPost
		if cmd, _, err = c.UpdateCommand(cmd); err != nil {
			return a.apiFail(err, "pointing /%s at %s", slashTrigger, a.CallbackURL)
		}
		say("/%s now calls %s", slashTrigger, a.CallbackURL)
	}
	if cmd.Token == "" {
		return Failf(accountsNext, "Mattermost did not return the token of /%s", slashTrigger)
	}
	st.SlashCommandID, st.SlashToken = cmd.Id, cmd.Token
	return a.save(st)
}

func (a *Accounts) commandRight(cmd *model.Command) bool {
	return cmd.URL == a.CallbackURL && cmd.Method == model.CommandMethodPost && cmd.DeleteAt == 0
}

func findCommand(cmds []*model.Command, id string) *model.Command {
	if id == "" {
		return nil
	}
	for _, c := range cmds {
		if c.Id == id && c.DeleteAt == 0 {
			return c
		}
	}
	return nil
}

// client is a Mattermost client whose requests end with ctx (Client4 v6
// takes no context).
func (a *Accounts) client(ctx context.Context) *model.Client4 {
	return mmClient(ctx, a.Client, a.URL)
}

// mmClient is a Mattermost client at addr whose requests end with ctx;
// base nil: one with a 30 s timeout.
func mmClient(ctx context.Context, base *http.Client, addr string) *model.Client4 {
	if base == nil {
		base = &http.Client{Timeout: 30 * time.Second}
	}
	hc := *base
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = ctxTransport{ctx: ctx, rt: rt}
	c := model.NewAPIv4Client(strings.TrimRight(addr, "/"))
	c.HTTPClient = &hc
	return c
}

type ctxTransport struct {
	ctx context.Context
	rt  http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return t.rt.RoundTrip(r.WithContext(t.ctx))
}

// apiFail turns a failed call into a StepError that says what was being
// done. Mattermost's errors carry no secrets (ids and reasons).
func (a *Accounts) apiFail(err error, format string, args ...any) error {
	return Failf(accountsNext, "Mattermost at %s: %s: %s", a.URL, fmt.Sprintf(format, args...), apiWhy(err))
}

// apiWhy is the reason of a failed Client4 call in one line.
func apiWhy(err error) string {
	var ae *model.AppError
	if errors.As(err, &ae) {
		msg := ae.Message
		if ae.DetailedError != "" && ae.DetailedError != ae.Message {
			msg += " (" + ae.DetailedError + ")"
		}
		if ae.StatusCode != 0 {
			msg = fmt.Sprintf("%s [HTTP %d]", msg, ae.StatusCode)
		}
		return oneLine(msg)
	}
	return oneLine(err.Error())
}

func status(resp *model.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// newPassword is 4 groups of 6 letters and digits joined by dashes (about
// 143 bits), with a lowercase, an uppercase letter and a digit, so it meets
// any password policy Mattermost can be set to.
func newPassword() (string, error) {
	const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	for {
		var b strings.Builder
		for i := range 24 {
			if i > 0 && i%6 == 0 {
				b.WriteByte('-')
			}
			n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			if err != nil {
				return "", fmt.Errorf("generating the admin's password: %w", err)
			}
			b.WriteByte(alphabet[n.Int64()])
		}
		pw := b.String()
		if strings.ContainsAny(pw, "abcdefghijkmnopqrstuvwxyz") && strings.ContainsAny(pw, "ABCDEFGHJKLMNPQRSTUVWXYZ") && strings.ContainsAny(pw, "23456789") {
			return pw, nil
		}
	}
}

// load reads the state file; nil without one.
func (a *Accounts) load() (*accountsState, error) {
	b, err := os.ReadFile(a.StatePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, Failf("check the file's owner and mode (0600, readable by the user running bootstrap)", "cannot read %s: %v", a.StatePath, errors.Unwrap(err))
	}
	var st accountsState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, Failf(fmt.Sprintf(`fix it, or write {"admin_username": "…", "admin_password": "…"} to it, then run `+"`summoner bootstrap`"+` again`),
			"%s is not valid JSON (%v)", a.StatePath, jsonWhere(err))
	}
	if st.AdminUsername == "" {
		st.AdminUsername = a.adminUsername()
	}
	a.st = &st
	return &st, nil
}

// jsonWhere is a JSON error without the text it read (a secret could be
// quoted in it).
func jsonWhere(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	return "cannot be decoded"
}

// save writes the state file atomically with mode 0600 (its folder 0700
// when made here).
func (a *Accounts) save(st *accountsState) error {
	fail := func(err error) error {
		return Failf("make "+filepath.Dir(a.StatePath)+" writable by the user running bootstrap, then run `summoner bootstrap` again",
			"cannot write %s: %v", a.StatePath, err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(a.StatePath)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(a.StatePath)+"-*")
	if err != nil {
		return fail(errors.Unwrap(err))
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fail(err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(f.Name(), a.StatePath); err != nil {
		return fail(errors.Unwrap(err))
	}
	a.st = st
	return nil
}
