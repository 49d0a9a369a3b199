// Command provision prepares a running Mattermost server for the integration
// tests: it ensures a system admin, a team, two users, a channel and two bot
// accounts exist, issues a fresh personal access token for each bot, and
// writes everything the tests need into a shell env file.
//
// It is idempotent: existing users, team, channel and bots are reused, and
// each run revokes the bots' earlier tokens before issuing new ones.
//
//	go run ./internal/mmtest/provision -url http://127.0.0.1:18065 -out /var/tmp/summoner-ci/it.env
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mattermost/mattermost-server/v6/model"
)

// Fixed test fixtures. Passwords only need to satisfy Mattermost's default
// password rules (at least 5 characters).
const (
	teamName       = "summoner-it"
	opsChannelName = "it-ops"
	townSquareName = "town-square"
	tokenDesc      = "summoner CI integration tests"
)

type account struct {
	username, password string
}

var (
	adminAcct    = account{"sysadmin", "Sysadmin-pass-1"}
	operatorAcct = account{"operator1", "Operator-pass-1"}
	memberAcct   = account{"member1", "Member-pass-1"}
)

type botSpec struct {
	username, displayName, description string
}

var (
	summonerBot = botSpec{"summoner", "Summoner", "Summoner ChatOps bot (integration tests)"}
	otherBot    = botSpec{"otherbot", "Other Bot", "A second bot the Summoner bot must ignore"}
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("provision: ")
	url := flag.String("url", "http://127.0.0.1:18065", "Mattermost server URL")
	out := flag.String("out", "/var/tmp/summoner-ci/it.env", "env file to write (mode 0600)")
	restart := flag.String("restart", "", "shell command that restarts Mattermost (default: bash <cwd>/.ci/services.sh restart-mattermost)")
	flag.Parse()

	if *restart == "" {
		script, err := filepath.Abs(filepath.Join(".ci", "services.sh"))
		if err != nil {
			log.Fatalf("resolving services.sh: %v", err)
		}
		*restart = "bash " + script + " restart-mattermost"
	}
	if err := run(*url, *out, *restart); err != nil {
		log.Fatal(err)
	}
}

func run(url, out, restart string) error {
	admin, adminUser, err := ensureAdmin(url)
	if err != nil {
		return err
	}
	log.Printf("admin %s ready", adminUser.Username)

	team, err := ensureTeam(admin)
	if err != nil {
		return err
	}
	ops, err := ensureChannel(admin, team.Id)
	if err != nil {
		return err
	}
	town, _, err := admin.GetChannelByName(townSquareName, team.Id, "")
	if err != nil {
		return fmt.Errorf("getting channel %s: %w", townSquareName, err)
	}
	channels := []*model.Channel{town, ops}

	for _, a := range []account{operatorAcct, memberAcct} {
		u, err := ensureUser(admin, a)
		if err != nil {
			return err
		}
		if err := join(admin, team, channels, u.Id, u.Username); err != nil {
			return err
		}
	}

	tokens := map[string]string{}
	for _, b := range []botSpec{summonerBot, otherBot} {
		bot, err := ensureBot(admin, adminUser.Id, b)
		if err != nil {
			return err
		}
		if err := join(admin, team, channels, bot.UserId, bot.Username); err != nil {
			return err
		}
		tok, err := freshToken(admin, bot)
		if err != nil {
			return err
		}
		tokens[b.username] = tok
	}

	env := map[string]string{
		"SUMMONER_IT_MM_URL":            url,
		"SUMMONER_IT_TEAM":              teamName,
		"SUMMONER_IT_OPS_CHANNEL":       opsChannelName,
		"SUMMONER_IT_ADMIN_USERNAME":    adminAcct.username,
		"SUMMONER_IT_ADMIN_PASSWORD":    adminAcct.password,
		"SUMMONER_IT_OPERATOR_USERNAME": operatorAcct.username,
		"SUMMONER_IT_OPERATOR_PASSWORD": operatorAcct.password,
		"SUMMONER_IT_MEMBER_USERNAME":   memberAcct.username,
		"SUMMONER_IT_MEMBER_PASSWORD":   memberAcct.password,
		"SUMMONER_IT_BOT_USERNAME":      summonerBot.username,
		"SUMMONER_IT_BOT_TOKEN":         tokens[summonerBot.username],
		"SUMMONER_IT_OTHERBOT_USERNAME": otherBot.username,
		"SUMMONER_IT_OTHERBOT_TOKEN":    tokens[otherBot.username],
		"SUMMONER_IT_MM_RESTART":        restart,
	}
	if err := writeEnv(out, env); err != nil {
		return fmt.Errorf("writing env file: %w", err)
	}
	log.Printf("wrote %s", out)
	return nil
}

// status returns the HTTP status of a failed Client4 call, or 0.
func status(resp *model.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// ensureAdmin logs in as the system admin, creating it first on a fresh
// server (the first user created on a server becomes system admin).
func ensureAdmin(url string) (*model.Client4, *model.User, error) {
	c := model.NewAPIv4Client(url)
	u, resp, err := c.Login(adminAcct.username, adminAcct.password)
	if err != nil {
		if st := status(resp); st != http.StatusUnauthorized && st != http.StatusBadRequest {
			return nil, nil, fmt.Errorf("logging in as %s: %w", adminAcct.username, err)
		}
		log.Printf("creating admin %s", adminAcct.username)
		if _, _, err := c.CreateUser(newUser(adminAcct)); err != nil {
			return nil, nil, fmt.Errorf("creating admin %s (login had failed too): %w", adminAcct.username, err)
		}
		if u, _, err = c.Login(adminAcct.username, adminAcct.password); err != nil {
			return nil, nil, fmt.Errorf("logging in as new admin %s: %w", adminAcct.username, err)
		}
	}
	if !u.IsSystemAdmin() {
		return nil, nil, fmt.Errorf("user %s exists but is not a system admin (roles %q); wipe the CI state dir", u.Username, u.Roles)
	}
	return c, u, nil
}

func newUser(a account) *model.User {
	return &model.User{
		Username: a.username,
		Password: a.password,
		Email:    a.username + "@summoner-it.example.com",
	}
}

func ensureUser(admin *model.Client4, a account) (*model.User, error) {
	u, resp, err := admin.GetUserByUsername(a.username, "")
	if err == nil {
		if u.IsBot {
			return nil, fmt.Errorf("user %s exists but is a bot", a.username)
		}
		return u, nil
	}
	if status(resp) != http.StatusNotFound {
		return nil, fmt.Errorf("looking up user %s: %w", a.username, err)
	}
	log.Printf("creating user %s", a.username)
	u, _, err = admin.CreateUser(newUser(a))
	if err != nil {
		return nil, fmt.Errorf("creating user %s: %w", a.username, err)
	}
	return u, nil
}

func ensureTeam(admin *model.Client4) (*model.Team, error) {
	t, resp, err := admin.GetTeamByName(teamName, "")
	if err == nil {
		return t, nil
	}
	if status(resp) != http.StatusNotFound {
		return nil, fmt.Errorf("looking up team %s: %w", teamName, err)
	}
	log.Printf("creating team %s", teamName)
	t, _, err = admin.CreateTeam(&model.Team{
		Name:        teamName,
		DisplayName: "Summoner IT",
		Type:        model.TeamOpen,
	})
	if err != nil {
		return nil, fmt.Errorf("creating team %s: %w", teamName, err)
	}
	return t, nil
}

func ensureChannel(admin *model.Client4, teamID string) (*model.Channel, error) {
	ch, resp, err := admin.GetChannelByName(opsChannelName, teamID, "")
	if err == nil {
		return ch, nil
	}
	if status(resp) != http.StatusNotFound {
		return nil, fmt.Errorf("looking up channel %s: %w", opsChannelName, err)
	}
	log.Printf("creating channel %s", opsChannelName)
	ch, _, err = admin.CreateChannel(&model.Channel{
		TeamId:      teamID,
		Name:        opsChannelName,
		DisplayName: "IT Ops",
		Type:        model.ChannelTypeOpen,
	})
	if err != nil {
		return nil, fmt.Errorf("creating channel %s: %w", opsChannelName, err)
	}
	return ch, nil
}

// join adds a user to the team and the channels; both calls are no-ops for
// existing members.
func join(admin *model.Client4, team *model.Team, channels []*model.Channel, userID, username string) error {
	if _, _, err := admin.AddTeamMember(team.Id, userID); err != nil {
		return fmt.Errorf("adding %s to team %s: %w", username, team.Name, err)
	}
	for _, ch := range channels {
		if _, _, err := admin.AddChannelMember(ch.Id, userID); err != nil {
			return fmt.Errorf("adding %s to channel %s: %w", username, ch.Name, err)
		}
	}
	return nil
}

// ensureBot returns the bot account, creating it, re-enabling it or handing
// it back to the admin as needed.
func ensureBot(admin *model.Client4, ownerID string, b botSpec) (*model.Bot, error) {
	u, resp, err := admin.GetUserByUsername(b.username, "")
	if err != nil {
		if status(resp) != http.StatusNotFound {
			return nil, fmt.Errorf("looking up bot %s: %w", b.username, err)
		}
		log.Printf("creating bot %s", b.username)
		bot, _, err := admin.CreateBot(&model.Bot{
			Username:    b.username,
			DisplayName: b.displayName,
			Description: b.description,
		})
		if err != nil {
			return nil, fmt.Errorf("creating bot %s: %w", b.username, err)
		}
		return bot, nil
	}
	if !u.IsBot {
		return nil, fmt.Errorf("user %s exists but is not a bot account; wipe the CI state dir", b.username)
	}
	bot, _, err := admin.GetBotIncludeDeleted(u.Id, "")
	if err != nil {
		return nil, fmt.Errorf("getting bot %s: %w", b.username, err)
	}
	if bot.DeleteAt != 0 {
		log.Printf("re-enabling bot %s", b.username)
		if bot, _, err = admin.EnableBot(u.Id); err != nil {
			return nil, fmt.Errorf("enabling bot %s: %w", b.username, err)
		}
	}
	if bot.OwnerId != ownerID {
		log.Printf("assigning bot %s to the admin", b.username)
		if bot, _, err = admin.AssignBot(u.Id, ownerID); err != nil {
			return nil, fmt.Errorf("assigning bot %s to the admin: %w", b.username, err)
		}
	}
	return bot, nil
}

// freshToken revokes every existing personal access token of the bot and
// issues a new one.
func freshToken(admin *model.Client4, bot *model.Bot) (string, error) {
	const perPage = 100
	var old []*model.UserAccessToken
	for page := 0; ; page++ {
		list, _, err := admin.GetUserAccessTokensForUser(bot.UserId, page, perPage)
		if err != nil {
			return "", fmt.Errorf("listing tokens of bot %s: %w", bot.Username, err)
		}
		old = append(old, list...)
		if len(list) < perPage {
			break
		}
	}
	for _, t := range old {
		if _, err := admin.RevokeUserAccessToken(t.Id); err != nil {
			return "", fmt.Errorf("revoking token %s of bot %s: %w", t.Id, bot.Username, err)
		}
	}
	t, _, err := admin.CreateUserAccessToken(bot.UserId, tokenDesc)
	if err != nil {
		return "", fmt.Errorf("creating token for bot %s: %w", bot.Username, err)
	}
	if t.Token == "" {
		return "", errors.New("server returned an empty token for bot " + bot.Username)
	}
	log.Printf("bot %s: revoked %d old token(s), issued a new one", bot.Username, len(old))
	return t.Token, nil
}

// writeEnv writes `export NAME='value'` lines, sorted, atomically and with
// mode 0600 since the file holds passwords and tokens.
func writeEnv(path string, env map[string]string) error {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# Written by internal/mmtest/provision; source it before running integration tests.\n")
	for _, k := range names {
		fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(env[k]))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".it.env-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// shellQuote single-quotes s for POSIX shells.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
