// Command summoner is the Summoner ChatOps bot: `summoner run` is the
// daemon, `summoner shell` a local chat in the terminal, and any chat
// command also runs once from the terminal (`summoner ping`).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/summoner-bot/summoner/config"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // the command ran and failed, or the daemon stopped on an error
	exitConfig = 2 // bad usage or configuration: fix it and try again
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// run is the whole program; main only adds the process around it.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env config.Env) int {
	inv, err := parseArgs(args, env)
	if err == nil {
		err = inv.exec(ctx, stdin, stdout, stderr, env)
	}
	return exitCode(err, stderr)
}

// exitCode is the one place errors become exit codes and final lines.
func exitCode(err error, stderr io.Writer) int {
	var (
		ps    config.Problems
		ue    *usageError
		ce    *configError
		state exitState
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &state):
		return int(state)
	case errors.As(err, &ps):
		for _, p := range ps {
			fmt.Fprintf(stderr, "summoner: %s\n", p)
		}
		return exitConfig
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "summoner: %s\nRun `summoner --help` for usage.\n", ue.msg)
		return exitConfig
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "summoner: %s\n", ce.msg)
		return exitConfig
	}
	fmt.Fprintf(stderr, "summoner: %v\n", err)
	return exitFailed
}

// exitState carries a plain exit code out of a one-shot command, whose
// output was already printed.
type exitState int

func (e exitState) Error() string { return fmt.Sprintf("exit %d", int(e)) }

// configError is a configuration problem found only when using it (a token
// the server refuses); it exits like a bad config file.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

type invocation struct {
	configPath string
	command    string // run, shell, or a chat command
	args       []string
	help       bool
}

func parseArgs(args []string, env config.Env) (*invocation, error) {
	inv := &invocation{}
	if p, ok := env("SUMMONER_CONFIG"); ok {
		inv.configPath = p
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--config" || a == "-config" || a == "-c":
			if i+1 >= len(args) {
				return nil, &usageError{msg: a + " needs a file name"}
			}
			inv.configPath = args[i+1]
			i++
		case strings.HasPrefix(a, "--config="):
			inv.configPath = strings.TrimPrefix(a, "--config=")
		case (a == "--help" || a == "-h") && inv.command == "":
			inv.help = true
		case a == "--version" && inv.command == "":
			inv.command = "version"
		case inv.command == "":
			inv.command = a
		default:
			inv.args = append(inv.args, a)
		}
	}
	if inv.command == "" {
		inv.help = true
	}
	return inv, nil
}

func (inv *invocation) exec(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, env config.Env) error {
	switch {
	case inv.help:
		return printUsage(stdout)
	case inv.command == "run":
		if len(inv.args) > 0 {
			return &usageError{msg: "run takes no arguments, only --config FILE"}
		}
		cfg, err := loadConfig(inv.configPath, env, config.ForRun)
		if err != nil {
			return err
		}
		return runDaemon(ctx, cfg, inv.configPath, stderr)
	case inv.command == "gateway":
		if len(inv.args) == 2 && inv.args[0] == "--settings" {
			return runGatewayServe(ctx, inv.args[1], stdin, stderr)
		}
		if len(inv.args) > 0 {
			return &usageError{msg: "gateway takes no arguments, only --config FILE (or --settings FILE, - for standard input)"}
		}
		cfg, err := loadConfig(inv.configPath, env, config.ForShell)
		if err != nil {
			return err
		}
		return runGateway(ctx, cfg, stderr)
	case inv.command == "bootstrap":
		return runBootstrap(ctx, inv, stdin, stdout, stderr, env)
	case inv.command == "shell":
		cfg, err := loadConfig(inv.configPath, env, config.ForShell)
		if err != nil {
			return err
		}
		return runShell(ctx, cfg, stdin, stdout, stderr)
	}
	cfg, err := loadConfig(inv.configPath, env, config.ForShell)
	if err != nil {
		return err
	}
	return runOnce(ctx, cfg, inv.command, inv.args, stdin, stdout, stderr)
}

// loadConfig loads the named file, or the default file if it exists, or
// nothing (defaults and environment only).
func loadConfig(path string, env config.Env, purpose config.Purpose) (config.Config, error) {
	if path == "" {
		if _, err := os.Stat(config.DefaultPath()); err == nil {
			path = config.DefaultPath()
		}
	}
	return config.Load(path, env, purpose)
}

func printUsage(w io.Writer) error {
	fmt.Fprintf(w, `Summoner %s: run your team's self-hosted apps from chat.

Usage:
  summoner [--config FILE] run          start the bot (needs chat.url and chat.token)
  summoner [--config FILE] shell        chat with the bot in this terminal
  summoner [--config FILE] gateway      serve minions over HTTPS (its own user, no
                                        Docker socket, no secret)
  summoner [--config FILE] bootstrap --domain DOMAIN
                                        turn this server into Mattermost plus
                                        Summoner (as root; see bootstrap --help)
  summoner [--config FILE] COMMAND ...  run one chat command and exit
                                        (--yes answers a confirmation up front)

Without --config, /etc/summoner/config.yml is read if it exists; SUMMONER_*
variables override the file (SUMMONER_CHAT_URL, SUMMONER_CHAT_TOKEN, ...).

`, versionString())
	svc, err := newServices(config.Defaults(), nil)
	if err != nil {
		return err
	}
	rt, _, err := newRouter(config.Defaults(), nil, svc, nil)
	if err != nil {
		return err
	}
	for _, d := range rt.Registry().All() {
		fmt.Fprintf(w, "  %-22s %s\n", d.Usage(), d.Summary)
	}
	return nil
}

func versionString() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "dev-" + s.Value[:12]
			}
		}
	}
	return version
}
