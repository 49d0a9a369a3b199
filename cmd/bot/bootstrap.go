package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/summoner-bot/summoner/bootstrap"
	"github.com/summoner-bot/summoner/config"
)

// bootstrapOptions is `summoner bootstrap`'s command line and what it
// loaded: everything the steps are built from.
type bootstrapOptions struct {
	domain         string
	email          string
	registryMirror string
	dryRun         bool
	uninstall      bool
	yes            bool
	dockerPackages string // docker.io, docker-ce or none
	only           []string

	// Hidden, for tests and CI.
	osRelease  string
	daemonJSON string
	dockerdLog string
	chatPort   string // Mattermost's host port (8065)
	botPort    string // the bot's http.listen port (8079)
	binary     string // where the binary is installed (/usr/local/bin/summoner)

	cfg        config.Config
	configPath string
	dockerHost string // docker.host, else DOCKER_HOST
	stateDir   string // bootstrap's own state, /var/lib/summoner
}

const bootstrapUsage = `Usage: summoner [--config FILE] bootstrap --domain DOMAIN [flags]

Turns this Debian or Ubuntu server into Mattermost plus a running Summoner,
as root. Each step first checks whether it is already done, so running it
again is safe: it resumes where it stopped and changes nothing when done.

Flags:
  --domain DOMAIN         the server's domain; the chat is at https://chat.DOMAIN
  --email EMAIL           the admin's address (and the ACME account's)
  --registry-mirror HOST  pull every image from this registry
  --docker-packages P     docker.io (the distribution's, default), docker-ce
                          (Docker's own, if its apt repository is set up) or
                          none (use the engine that runs; install nothing)
  --dry-run               print what each step would do; change nothing
  --uninstall             remove what bootstrap created, except data; the
                          config is kept as config.yml.<date>.bak
  --yes                   answer confirmations up front
`

// parseBootstrapArgs parses the subcommand's flags.
func parseBootstrapArgs(args []string, env config.Env) (*bootstrapOptions, error) {
	o := &bootstrapOptions{}
	fs := flag.NewFlagSet("bootstrap", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.domain, "domain", "", "")
	fs.StringVar(&o.email, "email", "", "")
	fs.StringVar(&o.registryMirror, "registry-mirror", "", "")
	fs.StringVar(&o.dockerPackages, "docker-packages", bootstrap.DockerIO, "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	fs.BoolVar(&o.uninstall, "uninstall", false, "")
	fs.BoolVar(&o.yes, "yes", false, "")
	only := fs.String("only", "", "")
	fs.StringVar(&o.osRelease, "os-release", bootstrap.DefaultOSRelease, "")
	fs.StringVar(&o.daemonJSON, "daemon-json", bootstrap.DefaultDaemonJSON, "")
	fs.StringVar(&o.dockerdLog, "dockerd-log", bootstrap.DefaultDockerdLog, "")
	fs.StringVar(&o.chatPort, "chat-port", bootstrapChatPort, "")
	fs.StringVar(&o.botPort, "bot-port", "", "")
	fs.StringVar(&o.binary, "bin", bootstrapBinary, "")
	stateDir := fs.String("state-dir", "/var/lib/summoner", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flag.ErrHelp
		}
		return nil, &usageError{msg: "bootstrap: " + err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{msg: fmt.Sprintf("bootstrap takes no arguments, only flags (got %q)", fs.Arg(0))}
	}
	switch o.dockerPackages {
	case bootstrap.DockerIO, bootstrap.DockerCE, bootstrap.DockerNone:
	default:
		return nil, &usageError{msg: fmt.Sprintf("bootstrap: --docker-packages is docker.io, docker-ce or none, not %q", o.dockerPackages)}
	}
	if *only != "" {
		for _, n := range strings.Split(*only, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.only = append(o.only, n)
			}
		}
	}
	if o.domain != "" && !domainRE.MatchString(o.domain) {
		return nil, &usageError{msg: fmt.Sprintf("bootstrap: --domain %q is not a domain name like example.com", o.domain)}
	}
	if h, ok := env("DOCKER_HOST"); ok {
		o.dockerHost = h
	}
	o.stateDir = *stateDir
	return o, nil
}

var domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// runBootstrap is `summoner bootstrap`.
func runBootstrap(ctx context.Context, inv *invocation, stdin io.Reader, stdout, stderr io.Writer, env config.Env) error {
	o, err := parseBootstrapArgs(inv.args, env)
	if errors.Is(err, flag.ErrHelp) {
		_, err := io.WriteString(stdout, bootstrapUsage)
		return err
	}
	if err != nil {
		return err
	}
	// The file bootstrap writes may not exist yet: then the defaults and
	// the environment are the start.
	var cfg config.Config
	if _, serr := os.Stat(inv.configPath); inv.configPath != "" && errors.Is(serr, fs.ErrNotExist) {
		cfg, err = config.Load("", env, config.ForShell)
	} else {
		cfg, err = loadConfig(inv.configPath, env, config.ForShell)
	}
	if err != nil {
		return err
	}
	o.cfg, o.configPath = cfg, inv.configPath
	if cfg.Docker.Host != "" {
		o.dockerHost = cfg.Docker.Host
	}
	if o.domain == "" {
		o.domain = cfg.Summoner.Domain
	}
	if o.domain == "" && len(o.only) == 0 {
		return &usageError{msg: "bootstrap needs --domain, the server's domain (the chat will be at https://chat.DOMAIN)"}
	}
	if o.uninstall {
		return newMission(*o).uninstall(ctx, stdin, stdout, o.yes || o.dryRun)
	}
	steps := bootstrapSteps(*o)
	if len(o.only) > 0 {
		var names []string
		for _, s := range steps {
			names = append(names, s.Name())
		}
		for _, n := range o.only {
			if !slices.Contains(names, n) {
				return &usageError{msg: fmt.Sprintf("bootstrap: --only %s: no such step (steps: %s)", n, strings.Join(names, ", "))}
			}
		}
		steps = slices.DeleteFunc(steps, func(s bootstrap.Step) bool { return !slices.Contains(o.only, s.Name()) })
	}
	r := &bootstrap.Runner{Steps: steps, Out: stdout, Err: stderr, DryRun: o.dryRun}
	if err := r.Run(ctx); err != nil {
		var f *bootstrap.Failure
		if errors.As(err, &f) {
			return exitState(exitFailed) // the runner printed the step, why and next
		}
		return err
	}
	return nil
}

// bootstrapSteps is the list of steps, in order.
func bootstrapSteps(o bootstrapOptions) []bootstrap.Step {
	steps := []bootstrap.Step{
		&bootstrap.OSStep{ReleaseFile: o.osRelease, AllowNonRoot: o.dryRun},
		&bootstrap.DockerStep{
			Host:       o.dockerHost,
			Packages:   o.dockerPackages,
			DaemonJSON: o.daemonJSON,
			DockerdLog: o.dockerdLog,
		},
		&bootstrap.DirsStep{Dirs: slices.DeleteFunc([]bootstrap.Dir{
			{Path: o.cfg.Summoner.VSRoot, Mode: 0o755, What: "app data (summoner.vsroot)"},
			{Path: o.cfg.Summoner.DBSRoot, Mode: 0o700, What: "database data (summoner.dbsroot)"},
			{Path: o.stateDir, Mode: 0o755, What: "bootstrap's state"},
			{Path: o.cfg.Docker.StateDir, Mode: 0o700, What: "minion secrets (docker.state_dir)"},
		}, func(d bootstrap.Dir) bool { return d.Path == "" })},
	}
	// Then the mission: config, gateway, mattermost, accounts, chat, bot,
	// backups (bootstrap_steps.go).
	return append(steps, newMission(o).steps()...)
}
