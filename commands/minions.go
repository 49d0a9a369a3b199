package commands

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/summoner-bot/summoner/internal/human"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
)

// MinionEngine is what the minion commands need from minions.Engine.
type MinionEngine interface {
	Catalog() *minions.Catalog
	Summon(ctx context.Context, name, version string, settings map[string]string, progress minions.Progress) (*minions.Result, error)
	Update(ctx context.Context, name, version string, progress minions.Progress) (*minions.Result, error)
	Status(ctx context.Context, name string) ([]minions.MinionStatus, error)
	Logs(ctx context.Context, name, service string, tail int) (string, error)
	Restart(ctx context.Context, name string) error
	Stop(ctx context.Context, name string) error
	Start(ctx context.Context, name string) error
	Banish(ctx context.Context, name string, purge bool) error
	Summoned(ctx context.Context, name string) (bool, error)
	UpdateTarget(ctx context.Context, name, version string) (*minions.UpdateTarget, error)
	Versions(ctx context.Context, name string) ([]string, string, error)
}

// SafeUpdater dumps a minion's database before an update and puts the data
// back if the update rolls back (maintenance.Service).
type SafeUpdater interface {
	Update(ctx context.Context, u maintenance.Updater, minion, version string, hasDB bool, progress minions.Progress) (*maintenance.UpdateResult, error)
}

// MinionCommands are the commands that summon and manage minions. safe may
// be nil (no backup destination): updates then take no dump first.
func MinionCommands(e MinionEngine, safe SafeUpdater) []Definition {
	progress := func(ctx context.Context, r *Request) minions.Progress {
		return func(step string) { r.Progress(ctx, step) }
	}
	simple := func(name, summary, done string, f func(context.Context, string) error) Definition {
		return Definition{
			Name: name, Args: "<minion>", Summary: summary, Level: Operator, Mutating: true, Timeout: 5 * time.Minute,
			Run: func(ctx context.Context, r *Request) (string, error) {
				m, err := one(r, name+" <minion>")
				if err != nil {
					return "", err
				}
				if err := f(ctx, m); err != nil {
					return "", err
				}
				return fmt.Sprintf(done, m), nil
			},
		}
	}
	return []Definition{
		{
			Name: "catalog", Summary: "list the minions I can summon",
			Run: func(context.Context, *Request) (string, error) { return renderCatalog(e.Catalog()), nil },
		},
		{
			Name: "summon", Args: "<minion> [version] [KEY=value…]", Summary: "bring a minion up (or update its settings)",
			Help:    "Deploys the minion with its database, keeps its data under the configured folders and tells you its address. Settings you give are remembered for later summons; summoning a minion that already runs unchanged does nothing. `catalog` lists the minions.",
			Timeout: 30 * time.Minute,
			Level:   Operator, Mutating: true,
			Run: func(ctx context.Context, r *Request) (string, error) {
				name, version, settings, err := summonArgs(r.Args)
				if err != nil {
					return "", err
				}
				res, err := e.Summon(ctx, name, version, settings, progress(ctx, r))
				if err != nil {
					return "", err
				}
				return renderSummoned(res), nil
			},
		},
		{
			Name: "status", Args: "[minion]", Summary: "show what runs: state, health, version, uptime, URL, CPU and memory",
			Timeout: 20 * time.Second,
			Run: func(ctx context.Context, r *Request) (string, error) {
				pos, _, err := Flags(r.Args, nil)
				if err != nil {
					return "", err
				}
				if len(pos) > 1 {
					return "", Errorf("Usage: `status [minion]`")
				}
				name := ""
				if len(pos) == 1 {
					name = strings.ToLower(pos[0])
				}
				st, err := e.Status(ctx, name)
				if err != nil {
					return "", err
				}
				return renderStatus(st, time.Now()), nil
			},
		},
		{
			Name: "logs", Args: "<minion> [service] [--tail N]", Summary: "show a minion's last log lines (secrets hidden)",
			Level: Operator,
			Run: func(ctx context.Context, r *Request) (string, error) {
				pos, flags, err := Flags(r.Args, []string{"tail"})
				if err != nil {
					return "", err
				}
				if len(pos) < 1 || len(pos) > 2 {
					return "", Errorf("Usage: `logs <minion> [service] [--tail N]`")
				}
				tail := 50
				if v, ok := flags["tail"]; ok {
					if tail, err = strconv.Atoi(v); err != nil || tail < 1 || tail > 5000 {
						return "", Errorf("`--tail` takes a number of lines from 1 to 5000.")
					}
				}
				service := ""
				if len(pos) == 2 {
					service = pos[1]
				}
				out, err := e.Logs(ctx, strings.ToLower(pos[0]), service, tail)
				if err != nil {
					return "", err
				}
				if strings.TrimSpace(out) == "" {
					return "No log lines yet.", nil
				}
				return "```\n" + strings.TrimRight(strings.ReplaceAll(out, "```", "'''"), "\n") + "\n```", nil
			},
		},
		simple("restart", "restart a minion's containers", "%s restarted.", e.Restart),
		simple("stop", "stop a minion (containers and data stay)", "%s stopped. `start %[1]s` brings it back.", e.Stop),
		simple("start", "start a stopped minion", "%s started.", e.Start),
		{
			Name: "banish", Args: "<minion> [--purge]", Summary: "remove a minion's containers; --purge deletes its data too (admin)",
			Help:    "Without --purge the data stays, and `summon <minion>` brings the minion back as it was. With --purge (admins only) its data folders and database are deleted for good, after a confirmation, and only once its containers are proven gone.",
			Timeout: 10 * time.Minute,
			Level:   Operator, Mutating: true,
			Confirm: func(ctx context.Context, r *Request) (string, error) {
				name, purge, err := banishArgs(r)
				if err != nil || !purge {
					return "", err
				}
				there, err := e.Summoned(ctx, name)
				if err != nil {
					return "", err
				}
				if !there {
					return "", Errorf("%s has no containers and no data here: there is nothing to banish.", name)
				}
				return fmt.Sprintf("⚠️ This deletes every file of %s: its data and its database, for good.", name), nil
			},
			Run: func(ctx context.Context, r *Request) (string, error) {
				name, purge, err := banishArgs(r)
				if err != nil {
					return "", err
				}
				if err := e.Banish(ctx, name, purge); err != nil {
					return "", err
				}
				if purge {
					return fmt.Sprintf("%s is gone, with its data.", name), nil
				}
				return fmt.Sprintf("%s is banished; its data stays, and `summon %s` brings it back as it was.", name, name), nil
			},
		},
		{
			Name: "versions", Args: "<minion>", Summary: "list the published versions of a minion, newest first",
			Timeout: time.Minute,
			Run: func(ctx context.Context, r *Request) (string, error) {
				name, err := one(r, "versions <minion>")
				if err != nil {
					return "", err
				}
				vs, current, err := e.Versions(ctx, name)
				if err != nil {
					return "", err
				}
				return renderVersions(name, vs, current), nil
			},
		},
		{
			Name: "update", Args: "<minion> [version]", Summary: "move a minion to a newer version (the newest of its major version by default), rolling back if it fails",
			Help:    "Without a version, update moves to the newest release of the same major version. A new major version must be written out and confirmed, since the app may migrate its data then. If the new version does not come up healthy, the old containers run again as before.",
			Timeout: 30 * time.Minute,
			Level:   Operator, Mutating: true,
			Confirm: func(ctx context.Context, r *Request) (string, error) {
				name, version, err := updateArgs(r)
				if err != nil {
					return "", err
				}
				t, err := e.UpdateTarget(ctx, name, version)
				if err != nil || !t.NewMajor {
					return "", err
				}
				return fmt.Sprintf("⚠️ This moves %s from %s to %s, a new major version. The app may migrate its data when it starts, and going back to %s may then need a restore from a backup.",
					t.Minion, t.From, t.To, t.From), nil
			},
			Run: func(ctx context.Context, r *Request) (string, error) {
				name, version, err := updateArgs(r)
				if err != nil {
					return "", err
				}
				t, err := e.UpdateTarget(ctx, name, version)
				if err != nil {
					return "", err
				}
				if t.To == t.From {
					return fmt.Sprintf("%s already runs %s, the newest %s release.%s", t.Minion, t.From, majorOf(t.From), newerMajor(t)), nil
				}
				var (
					res    *minions.Result
					dumped string
				)
				if safe != nil {
					m, _ := e.Catalog().Get(name)
					var ur *maintenance.UpdateResult
					ur, err = safe.Update(ctx, e, name, t.To, m != nil && m.Database != nil, progress(ctx, r))
					if ur != nil {
						res, dumped = ur.Result, ur.Dump
					}
				} else {
					res, err = e.Update(ctx, name, t.To, progress(ctx, r))
				}
				if err != nil {
					return "", err
				}
				if res.Unchanged {
					return fmt.Sprintf("%s already runs %s.", res.Minion, res.Version), nil
				}
				before := ""
				if dumped != "" {
					before = fmt.Sprintf(" Its data were dumped first: %s.", dumped)
				}
				return fmt.Sprintf("%s now runs %s (was %s): %s. Took %s.%s%s", res.Minion, res.Version, res.Previous, where(res), res.Took.Round(time.Second), before, newerMajor(t)), nil
			},
		},
	}
}

func banishArgs(r *Request) (name string, purge bool, err error) {
	pos, flags, err := Flags(r.Args, nil, "purge")
	if err != nil {
		return "", false, err
	}
	if len(pos) != 1 {
		return "", false, Errorf("Usage: `banish <minion> [--purge]`")
	}
	purge = flags["purge"] != ""
	// Deleting data is an admin's decision; removing containers is not.
	if purge && r.Level < Admin {
		return "", false, Errorf("`banish --purge` deletes data for good, so it needs admin rights, and you have %s rights. `banish %s` without --purge keeps the data.", r.Level, strings.ToLower(pos[0]))
	}
	return strings.ToLower(pos[0]), purge, nil
}

func updateArgs(r *Request) (name, version string, err error) {
	pos, _, err := Flags(r.Args, nil)
	if err != nil {
		return "", "", err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return "", "", Errorf("Usage: `update <minion> [version]`")
	}
	if len(pos) == 2 {
		version = pos[1]
	}
	return strings.ToLower(pos[0]), version, nil
}

// majorOf names a version's major line: "1.x" for 1.4.2.
func majorOf(v string) string {
	major, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	return major + ".x"
}

// newerMajor points at a newer major version that update did not take.
func newerMajor(t *minions.UpdateTarget) string {
	if t.Newest == "" || t.Newest == t.To || majorOf(t.Newest) == majorOf(t.To) {
		return ""
	}
	return fmt.Sprintf("\n%s %s is out too, a new major version: `update %s %s` moves there (after a confirmation).", t.Minion, t.Newest, t.Minion, t.Newest)
}

func summonArgs(args []string) (name, version string, settings map[string]string, err error) {
	pos, _, err := Flags(args, nil)
	if err != nil {
		return "", "", nil, err
	}
	settings = map[string]string{}
	for _, a := range pos {
		if k, v, ok := strings.Cut(a, "="); ok {
			if k == "" {
				return "", "", nil, Errorf("`%s` has no setting name before =.", a)
			}
			settings[strings.ToUpper(k)] = v
			continue
		}
		switch {
		case name == "":
			name = strings.ToLower(a)
		case version == "":
			version = a
		default:
			return "", "", nil, Errorf("Usage: `summon <minion> [version] [KEY=value…]`; I don't know what `%s` is.", a)
		}
	}
	if name == "" {
		return "", "", nil, Errorf("Usage: `summon <minion> [version] [KEY=value…]`. `catalog` lists the minions.")
	}
	return name, version, settings, nil
}

// where says where users reach a minion: its https URL only when the
// gateway serves it, else the port it publishes (see minions.Address).
func where(res *minions.Result) string { return res.URL }

func renderSummoned(res *minions.Result) string {
	if res.Unchanged {
		return fmt.Sprintf("%s %s is already up and unchanged: %s. Nothing to do.", res.Minion, res.Version, where(res))
	}
	return fmt.Sprintf("%s %s is up: %s. Took %s.", res.Minion, res.Version, where(res), res.Took.Round(100*time.Millisecond))
}

func renderCatalog(c *minions.Catalog) string {
	var b strings.Builder
	b.WriteString("| minion | version | what it is |\n|---|---|---|\n")
	for _, m := range c.All() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", m.Name, m.Version, m.Description)
	}
	b.WriteString("\n`summon <minion>` brings one up.")
	return b.String()
}

func renderStatus(st []minions.MinionStatus, now time.Time) string {
	if len(st) == 0 {
		return "No minion is summoned. `catalog` lists what I can summon."
	}
	var b strings.Builder
	for i, m := range st {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "**%s** %s", m.Name, m.Version)
		if m.URL != "" {
			fmt.Fprintf(&b, " · %s", m.URL)
		}
		b.WriteString("\n| service | container | state | health | image | up | CPU | memory |\n|---|---|---|---|---|---|---|---|\n")
		for _, s := range m.Services {
			up := "-"
			if s.State == "running" && !s.Since.IsZero() {
				up = human.Age(now.Sub(s.Since))
			}
			health := s.Health
			if health == "" {
				health = "-"
			}
			mem := "-"
			if s.MemBytes > 0 {
				mem = human.Bytes(int64(s.MemBytes))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %.1f%% | %s |\n", s.Service, s.Container, s.State, health, s.Image, up, s.CPUPercent, mem)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func renderVersions(name string, vs []string, current string) string {
	if len(vs) == 0 {
		return fmt.Sprintf("The registry lists no versions of %s.", name)
	}
	const most = 20
	var b strings.Builder
	fmt.Fprintf(&b, "Versions of %s, newest first:\n", name)
	for i, v := range vs {
		if i == most {
			fmt.Fprintf(&b, "… and %d older.\n", len(vs)-most)
			break
		}
		mark := ""
		if v == current {
			mark = " ← running"
		}
		fmt.Fprintf(&b, "- %s%s\n", v, mark)
	}
	return strings.TrimRight(b.String(), "\n")
}
