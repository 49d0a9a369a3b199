package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/summoner-bot/summoner/bootstrap"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/gateway"
	"github.com/summoner-bot/summoner/internal/privsep"
)

// gatewayUser is the system user the gateway runs as when started by root.
const gatewayUser = "summoner-gateway"

// gatewayEnvKeep are the only variables of ours the gateway process gets,
// beside a fixed PATH: the time zone of its log and the CA bundle Go
// reads. No SUMMONER_* variable, so no secret, ever reaches it.
var gatewayEnvKeep = []string{"TZ", "SSL_CERT_FILE", "SSL_CERT_DIR"}

// gatewaySettings is all the gateway process is told: no chat token, no
// webhook secret, no storage credential. It arrives as JSON on its
// standard input (from `summoner run`, or `summoner gateway` as a parent)
// or in a file of its own that systemd hands it as standard input.
type gatewaySettings struct {
	HTTPListen  string `json:"http_listen"`
	HTTPSListen string `json:"https_listen"`
	Dir         string `json:"dir"` // certificates in certs/, owned by the gateway's user
	AdminSocket string `json:"admin_socket"`
	ACMECA      string `json:"acme_ca"`
	ACMECARoot  string `json:"acme_ca_root_pem,omitempty"` // the PEM itself: the file may be out of its reach
	Email       string `json:"email,omitempty"`
	LogLevel    string `json:"log_level,omitempty"`
	LogFormat   string `json:"log_format,omitempty"`
	// HandedOver: the parent bound the ports; the listeners are
	// descriptors 3 (HTTP) and 4 (HTTPS).
	HandedOver bool `json:"handed_over,omitempty"`
}

// newGatewaySettings takes the gateway's part of the configuration,
// reading the private CA's root so the gateway need not.
func newGatewaySettings(cfg config.Config) (gatewaySettings, error) {
	g := cfg.Gateway
	s := gatewaySettings{HTTPListen: g.HTTPListen, HTTPSListen: g.HTTPSListen, Dir: g.Dir, AdminSocket: gatewaySocket(cfg),
		ACMECA: g.ACMECA, Email: g.Email, LogLevel: cfg.Log.Level, LogFormat: cfg.Log.Format}
	if g.ACMECARoot != "" {
		pem, err := os.ReadFile(g.ACMECARoot)
		if err != nil {
			return s, fmt.Errorf("gateway.acme_ca_root: %w", err)
		}
		s.ACMECARoot = string(pem)
	}
	return s, nil
}

// gatewaySocket is the gateway's admin socket: gateway.admin_socket, or
// gateway.sock in gateway.dir.
func gatewaySocket(cfg config.Config) string {
	if cfg.Gateway.AdminSocket != "" {
		return cfg.Gateway.AdminSocket
	}
	return filepath.Join(cfg.Gateway.Dir, "gateway.sock")
}

// gatewayCertsDir is where the gateway keeps its certificates.
func gatewayCertsDir(dir string) string { return filepath.Join(dir, "certs") }

// runGatewayServe is `summoner gateway --settings FILE` (- for standard
// input): the process that faces the internet. It reads nothing of the
// bot's configuration and serves until ctx ends (SIGTERM, SIGINT).
func runGatewayServe(ctx context.Context, path string, stdin io.Reader, stderr io.Writer) error {
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return &configError{msg: "gateway settings: " + err.Error()}
		}
		defer f.Close()
		stdin = f
	}
	var s gatewaySettings
	dec := json.NewDecoder(io.LimitReader(stdin, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return &configError{msg: "gateway settings: " + err.Error()}
	}
	o := gateway.Options{
		HTTPAddr: s.HTTPListen, HTTPSAddr: s.HTTPSListen, AdminSocket: s.AdminSocket,
		StorageDir: gatewayCertsDir(s.Dir), CA: s.ACMECA, CARootPEM: []byte(s.ACMECARoot), Email: s.Email,
		Logger: newLogger(config.Log{Level: s.LogLevel, Format: s.LogFormat}, stderr, false),
	}
	if s.Dir == "" {
		return &configError{msg: "gateway settings: no dir"}
	}
	if os.Geteuid() == 0 {
		o.Logger.Warn("the gateway runs as root: start it with `summoner gateway` and the config file (it then runs as " + gatewayUser + "), or as its own user")
	}
	if s.HandedOver {
		var err error
		if o.HTTPListener, err = inheritedListener(3, "http"); err != nil {
			return err
		}
		if o.HTTPSListener, err = inheritedListener(4, "https"); err != nil {
			o.HTTPListener.Close()
			return err
		}
	}
	return gateway.Run(ctx, o)
}

func inheritedListener(fd uintptr, name string) (net.Listener, error) {
	f := os.NewFile(fd, name)
	if f == nil {
		return nil, fmt.Errorf("gateway: no %s listener on descriptor %d", name, fd)
	}
	defer f.Close() // FileListener made its own copy
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("gateway: the %s listener handed over on descriptor %d: %w", name, fd, err)
	}
	return ln, nil
}

// runGateway is `summoner gateway` with the bot's configuration: the
// parent of the gateway, for a gateway run as its own service without
// systemd (bootstrap's) or by hand. It starts the gateway process as
// `summoner run` does and ends with it.
func runGateway(ctx context.Context, cfg config.Config, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr, false).With("component", "gateway")
	l, err := newGatewayLauncher(ctx, cfg, log, stderr)
	if err != nil {
		return err
	}
	cmd, err := l.start(ctx)
	if err != nil {
		return err
	}
	if err := cmd.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("the gateway process: %w", err)
	}
	return nil
}

// gatewayLauncher starts the gateway process. Run by root, it binds the
// ports, gives the gateway its own user and folder and starts it with that
// user's credentials, no supplementary group, its settings on standard
// input and an environment of gatewayEnvKeep only: it can read neither
// the configuration, nor the bot's state, nor the Docker socket. Run by
// anyone else, the gateway runs as the same user (and it is said).
type gatewayLauncher struct {
	cfg  config.Config
	log  *slog.Logger
	out  io.Writer // the gateway's stdout and stderr
	exe  string
	cred *syscall.Credential // nil: the same user as this process
}

func newGatewayLauncher(ctx context.Context, cfg config.Config, log *slog.Logger, out io.Writer) (*gatewayLauncher, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding my own binary to start the gateway: %w", err)
	}
	l := &gatewayLauncher{cfg: cfg, log: log, out: out, exe: exe}
	if os.Geteuid() != 0 {
		log.Warn("the gateway's privilege separation is off: summoner does not run as root, so it cannot start the gateway as the user "+gatewayUser+"; the gateway runs as this user and can read what it can",
			"uid", os.Geteuid())
		return l, nil
	}
	if l.cred, err = gatewayCredential(ctx, log); err != nil {
		return nil, err
	}
	if err := privsep.CanReach(exe, l.cred, 0o1); err != nil {
		return nil, fmt.Errorf("the gateway's user %s cannot run %s (%v): install the binary where every user may run it, as bootstrap does in /usr/local/bin", gatewayUser, exe, err)
	}
	return l, nil
}

// gatewayCredential is the gateway's user, created if missing.
func gatewayCredential(ctx context.Context, log *slog.Logger) (*syscall.Credential, error) {
	cred, created, err := privsep.EnsureUser(ctx, bootstrap.HostSystem{}, gatewayUser)
	if err != nil {
		return nil, fmt.Errorf("the gateway's user: %w", err)
	}
	if created {
		log.Info("created the system user the gateway runs as", "user", gatewayUser, "uid", cred.Uid)
	}
	return cred, nil
}

// prepareGatewayDir makes gateway.dir the gateway's own and moves in the
// certificates from gateway.storage_dir, where older versions kept them.
func prepareGatewayDir(cfg config.Config, cred *syscall.Credential, log *slog.Logger) error {
	g := cfg.Gateway
	if err := privsep.OwnDir(g.Dir, cred); err != nil {
		return fmt.Errorf("gateway.dir: %w", err)
	}
	if cred != nil {
		if err := privsep.CanReach(g.Dir, cred, 0o7); err != nil {
			return fmt.Errorf("gateway.dir: the user %s cannot reach its folder (%v): choose gateway.dir under a folder open to it, like /var/lib", gatewayUser, err)
		}
	}
	moved, err := privsep.MoveIn(g.StorageDir, gatewayCertsDir(g.Dir), cred)
	if errors.Is(err, fs.ErrPermission) && cred == nil {
		// Not root: a folder out of reach is not this user's install.
		log.Warn("cannot look for older certificates in gateway.storage_dir", "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("moving the certificates from gateway.storage_dir: %w", err)
	}
	if moved {
		log.Info("moved the gateway's certificates into its own folder", "from", g.StorageDir, "to", gatewayCertsDir(g.Dir))
	}
	return nil
}

// start binds the ports and starts the gateway process; the caller waits
// for it. The ports are this process's only until the child has them.
func (l *gatewayLauncher) start(ctx context.Context) (*exec.Cmd, error) {
	if err := prepareGatewayDir(l.cfg, l.cred, l.log); err != nil {
		return nil, err
	}
	s, err := newGatewaySettings(l.cfg)
	if err != nil {
		return nil, err
	}
	s.HandedOver = true
	body, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, addr := range []string{s.HTTPListen, s.HTTPSListen} {
		f, err := bindFile(addr)
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		files = append(files, f)
	}
	bootstrap.CloseInheritedFiles() // nothing but the listeners reaches it
	cmd := privsep.Cmd(ctx, l.cred, l.exe, "gateway", "--settings", "-")
	cmd.Env = privsep.Env(os.LookupEnv, gatewayEnvKeep...)
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(body)
	cmd.Stdout, cmd.Stderr = l.out, l.out
	cmd.ExtraFiles = files
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the gateway process: %w", err)
	}
	who := "this process's user"
	if l.cred != nil {
		who = gatewayUser
	}
	l.log.Info("started the gateway process", "pid", cmd.Process.Pid, "user", who)
	return cmd, nil
}

// bindFile listens on addr and returns the listener as a file to hand
// over; the listener itself is closed (the file keeps the socket).
func bindFile(addr string) (*os.File, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return nil, errors.New("not a TCP listener")
	}
	return tl.File()
}

// gatewaySandbox is the gateway's systemd unit as bootstrap installs it:
// as gatewayUser, binding its ports itself (the one capability it has),
// with its settings in settingsFile, which systemd reads for it.
func gatewaySandbox(cfg config.Config, settingsFile string, log *slog.Logger) *bootstrap.Sandbox {
	return &bootstrap.Sandbox{
		User: gatewayUser, Dir: cfg.Gateway.Dir, Args: []string{"gateway", "--settings", "-"},
		SettingsFile: settingsFile, BindPorts: true,
		Settings: func() ([]byte, error) {
			s, err := newGatewaySettings(cfg)
			if err != nil {
				return nil, err
			}
			b, err := json.MarshalIndent(s, "", "  ")
			return append(b, '\n'), err
		},
		Prepare: func(ctx context.Context) error {
			cred, err := gatewayCredential(ctx, log)
			if err != nil {
				return err
			}
			return prepareGatewayDir(cfg, cred, log)
		},
	}
}
