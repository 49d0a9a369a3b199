package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/client"
	"golang.org/x/sync/errgroup"

	"github.com/summoner-bot/summoner/chat"
	"github.com/summoner-bot/summoner/chat/mattermost"
	"github.com/summoner-bot/summoner/chat/outbox"
	"github.com/summoner-bot/summoner/chat/shell"
	"github.com/summoner-bot/summoner/commands"
	"github.com/summoner-bot/summoner/config"
	"github.com/summoner-bot/summoner/maintenance"
	"github.com/summoner-bot/summoner/minions"
	"github.com/summoner-bot/summoner/storage"
)

func newLogger(c config.Log, w io.Writer, quiet bool) *slog.Logger {
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[c.Level]
	if quiet && level < slog.LevelWarn {
		level = slog.LevelWarn // the shell's output is the replies, not the audit log
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// newRouter builds the command tree every front end shares. levelOf may be
// nil to use the configured permissions.
// services are the domain services the commands drive.
type services struct {
	engine  *minions.Engine
	docker  *client.Client
	gateway *gatewayLink         // nil without gateway.enabled
	repo    *storage.Repository  // nil without backup destinations
	maint   *maintenance.Service // nil without backup destinations
	sched   *maintenance.Scheduler
	// schedules is what `schedule` sees: the daemon's scheduler, or a
	// read-only view of it in the terminal.
	schedules commands.Schedules
	hooks     commands.Hooks // the daemon's webhook centre; nil elsewhere
}

// newServices builds the engine and the backup repository from config.
func newServices(cfg config.Config, log *slog.Logger) (services, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var gw *gatewayLink
	if cfg.Gateway.Enabled {
		gw = newGatewayLink(cfg, log.With("component", "gateway"))
	}
	engine, dc, err := newEngine(cfg, gw, log.With("component", "minions"))
	if err != nil {
		return services{}, err
	}
	repo, err := newRepository(cfg, log.With("component", "storage"))
	if err != nil {
		return services{}, err
	}
	svc := services{engine: engine, docker: dc, repo: repo, gateway: gw}
	if repo != nil {
		svc.maint = maintenance.New(maintenance.Options{Docker: dc, Engine: engine, Repo: repo, Logger: log.With("component", "maintenance")})
	}
	return svc, nil
}

func newRouter(cfg config.Config, poster chat.Poster, svc services, log *slog.Logger, opts ...func(*commands.Options)) (*commands.Router, *commands.Registry, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var (
		repo  commands.BackupRepo
		maint commands.Maintenance
		safe  commands.SafeUpdater
		sched commands.Schedules
	)
	if svc.repo != nil {
		repo = svc.repo
	}
	if svc.maint != nil {
		maint, safe = svc.maint, svc.maint
	}
	if svc.schedules != nil {
		sched = svc.schedules
	}
	defs := append(commands.MinionCommands(svc.engine, safe), commands.BackupCommands(repo)...)
	defs = append(defs, commands.MaintenanceCommands(maint, svc.engine, repo, sched)...)
	defs = append(defs, commands.HooksCommands(svc.hooks, nil)...)
	var certs commands.CertLister
	if svc.gateway != nil {
		certs = svc.gateway
	}
	defs = append(defs, commands.CertCommands(certs, nil)...)
	reg, err := commands.NewRegistry(defs...)
	if err != nil {
		return nil, nil, err
	}
	o := commands.Options{
		Registry:         reg,
		Poster:           poster,
		LevelOf:          levelsFrom(cfg.Permissions),
		MutatingChannels: trimAll(cfg.Permissions.MutatingChannels, "~"),
		Logger:           log,
		Version:          versionString(),
	}
	for _, f := range opts {
		f(&o)
	}
	rt, err := commands.NewRouter(o)
	return rt, reg, err
}

func levelsFrom(p config.Permissions) func(chat.User) commands.Level {
	admins, operators := trimAll(p.Admins, "@"), trimAll(p.Operators, "@")
	return func(u chat.User) commands.Level {
		switch {
		case slices.Contains(admins, u.Username):
			return commands.Admin
		case slices.Contains(operators, u.Username):
			return commands.Operator
		}
		return commands.Everyone
	}
}

func trimAll(names []string, prefix string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strings.ToLower(strings.TrimPrefix(n, prefix))
	}
	return out
}

// localUser is who types in the shell and the one-shot CLI: whoever can run
// the binary on the server already has every power, so they are admin.
func localUser() chat.User {
	name := "local"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return chat.User{ID: "local:" + name, Username: name}
}

func asAdmin(o *commands.Options) {
	o.LevelOf = func(chat.User) commands.Level { return commands.Admin }
}

// localRouter is the command tree for the terminal: the local user is
// admin, and only warnings are logged, since the output is the replies.
func localRouter(cfg config.Config, sh *shell.Shell, stderr io.Writer) (*commands.Router, error) {
	log := newLogger(cfg.Log, stderr, true)
	svc, err := newServices(cfg, log)
	if err != nil {
		return nil, err
	}
	// The terminal sees the schedules as the bot keeps them, but changes
	// are the running bot's: two writers of its state file would lose one.
	cfg.Maintenance.StateFile = maintenanceStateFile(cfg)
	if s, err := newScheduler(cfg, svc, logReports{log}, log); err == nil {
		svc.schedules = readOnlySchedules{s}
	}
	rt, _, err := newRouter(cfg, sh, svc, log, asAdmin)
	return rt, err
}

// readOnlySchedules lists the schedules and refuses changes.
type readOnlySchedules struct{ *maintenance.Scheduler }

var errSchedulesInChat = errors.New("schedules are changed in chat (`schedule set …`), where the running bot keeps them; here they are only listed")

func (readOnlySchedules) Set(string, string) (maintenance.ScheduleInfo, error) {
	return maintenance.ScheduleInfo{}, errSchedulesInChat
}

func (readOnlySchedules) Off(string) (maintenance.ScheduleInfo, error) {
	return maintenance.ScheduleInfo{}, errSchedulesInChat
}

func (readOnlySchedules) Reset(string) (maintenance.ScheduleInfo, error) {
	return maintenance.ScheduleInfo{}, errSchedulesInChat
}

// logReports is where reports go where no chat is: the log.
type logReports struct{ log *slog.Logger }

func (l logReports) Publish(_ context.Context, rep maintenance.Report) error {
	l.log.Info("maintenance report", "job", rep.Job, "report", rep.Render())
	return nil
}

// maintenanceStateFile is the configured one, or by default the one beside
// the chat state, wherever that was put.
func maintenanceStateFile(cfg config.Config) string {
	if cfg.Maintenance.StateFile != config.Defaults().Maintenance.StateFile {
		return cfg.Maintenance.StateFile
	}
	return filepath.Join(filepath.Dir(cfg.Chat.StateFile), "maintenance-state.json")
}

func runShell(ctx context.Context, cfg config.Config, stdin io.Reader, stdout, stderr io.Writer) error {
	sh := &shell.Shell{In: stdin, Out: stdout, User: localUser()}
	rt, err := localRouter(cfg, sh, stderr)
	if err != nil {
		return err
	}
	if isTerminal(stdin) {
		sh.Prompt = "summoner> "
		fmt.Fprintf(stdout, "Summoner %s. Type `help` for the commands, `exit` to leave.\n", versionString())
	}
	return sh.Run(ctx, rt)
}

// runOnce runs one chat command from the terminal. A command that asks for
// confirmation reads the answer from stdin.
func runOnce(ctx context.Context, cfg config.Config, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sh := &shell.Shell{Out: stdout, User: localUser()}
	rt, err := localRouter(cfg, sh, stderr)
	if err != nil {
		return err
	}
	// --yes confirms a destructive command up front, for scripts; without
	// it the command asks on the terminal as in chat.
	yes := false
	args = slices.DeleteFunc(slices.Clone(args), func(a string) bool {
		if a == "--yes" || a == "-y" {
			yes = true
			return true
		}
		return false
	})
	text := strings.Join(append([]string{name}, quoteArgs(args)...), " ")
	now := time.Now()
	msg := chat.Message{ID: "cli", Text: text, User: sh.User, Channel: shell.Channel, At: now, Received: now}
	var out commands.Outcome
	if yes {
		out = rt.ExecuteConfirmed(ctx, msg)
	} else {
		out = rt.Execute(ctx, msg)
	}
	if out == commands.Pending {
		fmt.Fprint(stdout, "Type the code to go ahead (Enter cancels): ")
		answer, _ := bufio.NewReader(stdin).ReadString('\n')
		answer = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(answer), "confirm"))
		if answer == "" {
			fmt.Fprintln(stdout, "Not confirmed; nothing was done.")
			return exitState(exitFailed)
		}
		msg.Text, msg.ID = "confirm "+answer, "cli-confirm"
		out = rt.Execute(ctx, msg)
	}
	switch out {
	case commands.OK:
		return nil
	case commands.Unknown:
		return exitState(exitConfig)
	}
	return exitState(exitFailed)
}

// quoteArgs keeps arguments the shell already split intact through the
// chat parser.
func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\“”‘’") {
			a = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(a) + `"`
		}
		out[i] = a
	}
	return out
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// runDaemon runs the bot. The gateway process it starts gets only the
// gateway's settings, never the config file.
func runDaemon(ctx context.Context, cfg config.Config, _ string, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr, false)
	if err := checkWritable(cfg.Chat.StateFile); err != nil {
		return &configError{msg: "chat.state_file: " + err.Error()}
	}
	stateDir := filepath.Dir(cfg.Chat.StateFile)
	perms, err := commands.NewPermissions(commands.PermissionsOptions{
		Admins: cfg.Permissions.Admins, Operators: cfg.Permissions.Operators,
		StateFile: filepath.Join(stateDir, "permissions.json"), Logger: log.With("component", "permissions"),
	})
	if err != nil {
		return &configError{msg: "permissions: " + err.Error()}
	}
	var (
		mm *mattermost.Adapter
		ob *outbox.Outbox
	)
	// The outbox forwards to the adapter, which is made next: the notes the
	// adapter posts itself go through the outbox too.
	notes := posterFunc(func() chat.Poster { return ob })
	mm, err = mattermost.New(mattermost.Options{
		URL: cfg.Chat.URL, Token: cfg.Chat.Token.Reveal(), Team: cfg.Chat.Team, Prefix: cfg.Chat.Prefix,
		MaxAge: cfg.Chat.MaxCommandAge.D(), StateFile: cfg.Chat.StateFile,
		Logger: log.With("component", "chat"), Notes: notes,
		OnConnect: func(ctx context.Context) {
			// People, not names: bind the configured names to accounts.
			if err := perms.Resolve(ctx, mm); err != nil && ctx.Err() == nil {
				log.Warn("resolving admins and operators", "err", err)
			}
		},
	})
	if err != nil {
		return &configError{msg: "chat.url: " + err.Error()}
	}
	ob, err = outbox.Open(outbox.Options{
		Path: filepath.Join(stateDir, "outbox.db"), Sender: mm.OutboxSender(), Permanent: mattermost.Permanent,
		Logger: log.With("component", "outbox"),
	})
	if err != nil {
		return &configError{msg: "chat.state_file: " + err.Error()}
	}
	closeOutbox := func() {
		if err := ob.Close(5 * time.Second); err != nil {
			log.Error("closing the outbox", "err", err)
		}
	}
	if err := checkLogin(ctx, mm, cfg, log); err != nil {
		closeOutbox()
		return err
	}
	ob.Start()
	defer closeOutbox()
	svc, err := newServices(cfg, log)
	if err != nil {
		return err
	}
	// The webhook centre hands recipes' commands to the queue, made below.
	var queue *commands.Queue
	hooks, err := newNotifier(cfg, ob, takerFunc(func() commandTaker { return queue }), log.With("component", "notifications"))
	if err != nil {
		return err
	}
	defer hooks.Close()
	svc.hooks = hooksView{n: hooks, base: hooks.publicBase(cfg.HTTP.Listen)}
	cfg.Maintenance.StateFile = maintenanceStateFile(cfg)
	reports := notifyReports{next: newReporter(ob, cfg.Chat.OpsChannel, log.With("component", "reports")), n: hooks}
	svc.sched, err = newScheduler(cfg, svc, reports, log.With("component", "schedule"))
	if err != nil {
		return err
	}
	svc.schedules = svc.sched
	in, err := newInteraction(cfg, ob, mm, svc.engine, perms.Level, log.With("component", "interact"))
	if err != nil {
		return err
	}
	rt, _, err := newRouter(cfg, in.poster(), svc, log.With("component", "commands"), func(o *commands.Options) { o.LevelOf = recipeLevels(perms.Level) })
	if err != nil {
		return err
	}
	queue = commands.NewQueue(rt, commands.QueueOptions{
		Workers: cfg.Chat.Workers, Size: cfg.Chat.QueueSize, Journal: in.journal(), MaxAge: cfg.Chat.MaxCommandAge.D(), Logger: log.With("component", "queue"),
	})
	in.use(rt, queue)
	hooksLn, err := hooks.listen()
	if err != nil {
		return err
	}

	var ln net.Listener
	if cfg.HTTP.Listen != "" {
		ln, err = net.Listen("tcp", cfg.HTTP.Listen)
		if err != nil {
			return fmt.Errorf("http.listen: cannot listen on %s: %w", cfg.HTTP.Listen, err)
		}
	}
	log.Info("starting", "version", versionString(), "chat", cfg.Chat.URL, "http", cfg.HTTP.Listen)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return mm.Run(gctx, queue) })
	g.Go(func() error { return queue.Run(gctx) })
	g.Go(func() error { return svc.sched.Run(gctx) })
	g.Go(func() error { return hooks.Run(gctx) })
	if cfg.Notifications.Alerts.Containers {
		w := containerWatcher(cfg, svc.docker, hooks, log.With("component", "alerts"))
		g.Go(func() error { return w.Run(gctx) })
	}
	if ln != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /healthz", healthHandler(health{chat: mm, queue: queue, outbox: ob}))
		in.mount(mux)
		if hooksLn == nil {
			mux.Handle("/hooks/", hooks.server)
		}
		// Webhook timeouts: a slow client cannot hold a connection long.
		srv := hooks.server.HTTPServer("")
		srv.Handler = mux
		serveHTTP(gctx, g, srv, ln, "http server")
	}
	if hooksLn != nil {
		serveHTTP(gctx, g, hooks.httpServer(), hooksLn, "webhook server")
	}
	ops := func(ctx context.Context, text string) {
		if cfg.Chat.OpsChannel == "" {
			return
		}
		// By name: the outbox resolves it when the server answers.
		if _, err := ob.Post(ctx, chat.Destination{ChannelID: "~" + strings.TrimPrefix(cfg.Chat.OpsChannel, "~")}, text); err != nil {
			log.Warn("cannot post to the ops channel", "channel", cfg.Chat.OpsChannel, "err", err)
		}
	}
	g.Go(func() error {
		ops(gctx, fmt.Sprintf("Summoner %s is up.", versionString()))
		summonApplications(gctx, svc.engine, cfg.Summoner.Applications, log, ops)
		return nil
	})
	if svc.gateway != nil {
		g.Go(func() error { return svc.gateway.Run(gctx, stderr, ops) })
	}
	g.Go(func() error { in.check(gctx, mm, ops); return nil })
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		log.Info("stopped")
		return nil
	}
	if errors.Is(err, mattermost.ErrUnauthorized) {
		return &configError{msg: fmt.Sprintf("chat.token: the Mattermost server at %s no longer accepts the token (revoked, or the bot account was disabled)", cfg.Chat.URL)}
	}
	return err
}

// serveHTTP serves srv on ln in g and shuts it down when ctx ends.
func serveHTTP(ctx context.Context, g *errgroup.Group, srv *http.Server, ln net.Listener, what string) {
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
}

// takerFunc is a commandTaker made later than its first user.
type takerFunc func() commandTaker

func (f takerFunc) Submit(ctx context.Context, m chat.Message, finished func()) error {
	return f().Submit(ctx, m, finished)
}

// posterFunc is a chat.Poster made later than its first user.
type posterFunc func() chat.Poster

func (f posterFunc) Post(ctx context.Context, to chat.Destination, text string) (chat.PostRef, error) {
	return f().Post(ctx, to, text)
}

func (f posterFunc) Reply(ctx context.Context, m chat.Message, text string) (chat.PostRef, error) {
	return f().Reply(ctx, m, text)
}

func (f posterFunc) Update(ctx context.Context, ref chat.PostRef, text string) error {
	return f().Update(ctx, ref, text)
}

// checkLogin fails fast on what retrying cannot fix (a refused token, a
// host that does not exist, a server that is not Mattermost); a server that
// is down is waited for by the adapter's reconnect loop.
func checkLogin(ctx context.Context, mm *mattermost.Adapter, cfg config.Config, log *slog.Logger) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_, err := mm.Login(lctx)
	var (
		dnsErr *net.DNSError
		apiErr *mattermost.APIError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mattermost.ErrUnauthorized):
		return &configError{msg: fmt.Sprintf("chat.token: the Mattermost server at %s rejected the token; use the access token of the bot account (System Console > Integrations > Bot Accounts)", cfg.Chat.URL)}
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return &configError{msg: fmt.Sprintf("chat.url: the host %s does not exist", dnsErr.Name)}
	case errors.As(err, &apiErr) && (apiErr.Status == http.StatusNotFound || apiErr.Status == http.StatusMethodNotAllowed):
		return &configError{msg: fmt.Sprintf("chat.url: %s does not look like a Mattermost server (GET /api/v4/users/me answered %d)", cfg.Chat.URL, apiErr.Status)}
	case ctx.Err() != nil:
		return ctx.Err()
	}
	log.Warn("cannot reach Mattermost yet; will keep trying", "err", err)
	return nil
}

// health is what /healthz looks at.
type health struct {
	chat interface {
		Connected() bool
		LastActivity() time.Time
	}
	queue  interface{ Depth() (running, waiting int) }
	outbox interface{ Pending() int }
}

// staleAfter: the bot pings Mattermost every 30 s, so a minute and a half
// without a read or a pong means the connection is dead, whatever its flag.
const staleAfter = 90 * time.Second

func healthHandler(h health) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		running, waiting := h.queue.Depth()
		last := h.chat.LastActivity()
		body := map[string]any{
			"status": "ok", "chat": "connected", "version": versionString(),
			"commands_running": running, "commands_waiting": waiting, "outbox_pending": h.outbox.Pending(),
		}
		if !last.IsZero() {
			body["chat_last_activity"] = last.UTC().Format(time.RFC3339Nano)
		}
		if !h.chat.Connected() || last.IsZero() || time.Since(last) > staleAfter {
			body["status"], body["chat"] = "degraded", "disconnected"
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	return mux
}

// checkWritable makes sure the state file can be written before the bot
// answers anything: without it, it could not tell after a restart what it
// already answered.
func checkWritable(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create %s: %w", dir, errors.Unwrap(err))
	}
	f, err := os.CreateTemp(dir, ".summoner-probe-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %w", dir, errors.Unwrap(err))
	}
	f.Close()
	return os.Remove(f.Name())
}

// newEngine builds the minion engine. The Docker client connects lazily, so
// a daemon that is down shows up as a clear reply to the first command that
// needs it, not as a bot that will not start.
func newEngine(cfg config.Config, gw *gatewayLink, log *slog.Logger) (*minions.Engine, *client.Client, error) {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cat, err := minions.LoadCatalog(cfg.Docker.MinionsDir)
	if err != nil {
		return nil, nil, &configError{msg: "docker.minions_dir: " + err.Error()}
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Docker.Host != "" {
		opts = append(opts, client.WithHost(cfg.Docker.Host))
	}
	dc, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, nil, &configError{msg: "docker.host: " + err.Error()}
	}
	// Every Docker call gets a deadline of its own: a frozen daemon makes a
	// command fail clearly instead of hanging the bot.
	eo := minions.EngineOptions{
		Domain: cfg.Summoner.Domain, VSRoot: cfg.Summoner.VSRoot, DBSRoot: cfg.Summoner.DBSRoot,
		Mirror:        minions.Mirror{Registry: cfg.Docker.RegistryMirror, Images: cfg.Docker.ImageMirrors},
		State:         &minions.StateStore{Dir: cfg.Docker.StateDir},
		HealthTimeout: cfg.Docker.HealthTimeout.D(),
		Logger:        log,
	}
	if gw != nil {
		// The engine tells the gateway of every change, and asks it which
		// hosts it serves before it writes an https URL.
		eo.Gateway, eo.Hosts = gw, hostOverrides(cfg)
		if _, port, err := net.SplitHostPort(cfg.Gateway.HTTPSListen); err == nil {
			eo.HTTPSPort = port
		}
	}
	e := minions.NewEngine(minions.WithTimeouts(dc, minions.Timeouts{}), cat, eo)
	if gw != nil {
		gw.lister = e
	}
	return e, dc, nil
}

// summonApplications brings up the minions the config lists, one after the
// other, and reports each result to the ops channel; a failure is reported
// and the others still come up.
func summonApplications(ctx context.Context, engine *minions.Engine, apps []string, log *slog.Logger, report func(context.Context, string)) {
	for _, app := range apps {
		res, err := engine.Summon(ctx, app, "", nil, nil)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error("summoning an application at start-up", "minion", app, "err", err)
			report(ctx, fmt.Sprintf("I could not summon %s at start-up: %s", app, userText(err)))
		case res.Unchanged:
			log.Info("application already up", "minion", app)
		default:
			report(ctx, fmt.Sprintf("Summoned %s %s at start-up: %s", app, res.Version, res.URL))
		}
	}
}

// userText is an error's message if it was written for users, else a
// pointer to the log.
func userText(err error) string {
	var um interface{ UserMessage() string }
	if errors.As(err, &um) {
		return um.UserMessage()
	}
	return "an internal error; the details are in the bot's log"
}
