package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/mholt/acmez/v3"
	"golang.org/x/sync/errgroup"

	"github.com/summoner-bot/summoner/internal/atomicfile"
)

// Options configure a gateway.
type Options struct {
	HTTPAddr, HTTPSAddr string // ":80", ":443"
	// AdminSocket is the unix socket of the admin API, created mode 0600
	// (a stale one is removed at start).
	AdminSocket string
	// StorageDir holds certificates and keys (certmagic FileStorage),
	// files 0600 and folders 0700, enforced at start. It also keeps the
	// last route table, served again at once after a restart.
	StorageDir string
	CA         string // ACME directory URL
	CARootFile string // PEM to trust for the CA's own HTTPS (Pebble); "" = system roots
	CARootPEM  []byte // the same, already read (a gateway that may not read the file)
	Email      string
	Logger     *slog.Logger
	// HTTPListener and HTTPSListener, when set, are used instead of
	// binding HTTPAddr and HTTPSAddr: a privileged parent bound them and
	// handed them over, so this process needs no right to bind ports 80
	// and 443. The addresses still say what was configured (the redirect
	// names the configured HTTPS port). Run closes them.
	HTTPListener, HTTPSListener net.Listener

	// ready, for tests, is told the bound addresses and the gateway.
	ready func(httpAddr, httpsAddr net.Addr, g *gateway)
	// baseLogger is Logger before the gateway's own attributes.
	baseLogger *slog.Logger
}

// shutdownGrace is how long in-flight requests get when ctx ends.
const shutdownGrace = 10 * time.Second

// routesFile, in StorageDir, keeps the last table the bot sent.
const routesFile = "routes.json"

type gateway struct {
	o      Options
	log    *slog.Logger
	router *router
	certs  *certManager

	setMu sync.Mutex // one table change at a time: the table and the certificates stay in step
}

// Run serves until ctx ends: HTTPS on HTTPSAddr, the ACME HTTP-01
// challenges and the redirect to HTTPS on HTTPAddr, and the admin API on
// AdminSocket.
func Run(ctx context.Context, o Options) error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case o.HTTPAddr == "" || o.HTTPSAddr == "":
		return errors.New("gateway: both listen addresses are needed")
	case o.AdminSocket == "":
		return errors.New("gateway: no admin socket")
	case o.StorageDir == "":
		return errors.New("gateway: no certificate storage folder")
	}
	o.baseLogger = o.Logger
	log := o.Logger.With("component", "gateway")
	o.Logger = log
	if err := securePerms(o.StorageDir, log); err != nil {
		return fmt.Errorf("gateway: certificate storage: %w", err)
	}

	// Bind first: certmagic's challenge solvers then find the ports taken
	// and leave the challenges to our handlers.
	httpLn, err := listenTCP(o.HTTPListener, o.HTTPAddr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer httpLn.Close()
	tcpLn, err := listenTCP(o.HTTPSListener, o.HTTPSAddr)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer tcpLn.Close()
	adminLn, err := listenUnix(o.AdminSocket)
	if err != nil {
		return fmt.Errorf("gateway: admin socket: %w", err)
	}
	defer os.Remove(o.AdminSocket)
	defer adminLn.Close()

	host, httpPort := splitPort(httpLn.Addr().String())
	_, httpsPort := splitPort(tcpLn.Addr().String())
	certCtx, stopCerts := context.WithCancel(ctx)
	defer stopCerts()
	cm, err := newCertManager(certCtx, o, challengePorts{host: listenHost(o.HTTPAddr, host), httpPort: httpPort, tlsPt: httpsPort})
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	defer cm.stop()

	g := &gateway{o: o, log: log, router: newRouter(log), certs: cm}
	g.loadRoutes()

	tlsCfg := cm.cfg.TLSConfig()
	tlsCfg.MinVersion = tls.VersionTLS12
	tlsCfg.NextProtos = []string{"h2", "http/1.1", acmez.ACMETLS1Protocol}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelDebug) // handshake noise from scanners
	httpsSrv := &http.Server{
		Handler:           g.router,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 15 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          errLog,
	}
	httpSrv := &http.Server{
		Handler:           cm.issuer.HTTPChallengeHandler(redirectHandler(strconv.Itoa(publicPort(o.HTTPSAddr, httpsPort)))),
		ReadHeaderTimeout: 15 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          errLog,
	}
	adminSrv := &http.Server{Handler: g.adminHandler(), ReadHeaderTimeout: 15 * time.Second}

	if o.ready != nil {
		o.ready(httpLn.Addr(), tcpLn.Addr(), g)
	}
	log.Info("gateway listening", "http", httpLn.Addr().String(), "https", tcpLn.Addr().String(), "admin", o.AdminSocket, "ca", o.CA)
	eg, ectx := errgroup.WithContext(ctx)
	serve := func(name string, f func() error) {
		eg.Go(func() error {
			if err := f(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("gateway: %s: %w", name, err)
			}
			return nil
		})
	}
	serve("https", func() error { return httpsSrv.Serve(tls.NewListener(tcpLn, tlsCfg)) })
	serve("http", func() error { return httpSrv.Serve(httpLn) })
	serve("admin", func() error { return adminSrv.Serve(adminLn) })
	eg.Go(func() error {
		<-ectx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
		defer cancel()
		var wg sync.WaitGroup
		for _, s := range []*http.Server{httpsSrv, httpSrv, adminSrv} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if s.Shutdown(sctx) != nil {
					s.Close()
				}
			}()
		}
		wg.Wait()
		return nil
	})
	err = eg.Wait()
	log.Info("gateway stopped")
	return err
}

// setRoutes swaps in a new table and brings the certificates in step.
func (g *gateway) setRoutes(routes []Route) SetResult {
	g.setMu.Lock()
	defer g.setMu.Unlock()
	t, res := buildTable(routes)
	g.router.setTable(t)
	g.certs.sync(t.names())
	for k, why := range res.Rejected {
		g.log.Warn("route rejected", "route", k, "why", why)
	}
	g.log.Info("routes set", "served", len(res.Accepted), "rejected", len(res.Rejected))
	g.saveRoutes(routes)
	return res
}

// saveRoutes keeps the table so a restarted gateway serves at once.
func (g *gateway) saveRoutes(routes []Route) {
	b, err := json.Marshal(routesBody{Routes: routes})
	if err == nil {
		err = atomicfile.Write(filepath.Join(g.o.StorageDir, routesFile), b, 0o600)
	}
	if err != nil {
		g.log.Warn("saving the route table", "err", err)
	}
}

func (g *gateway) loadRoutes() {
	b, err := os.ReadFile(filepath.Join(g.o.StorageDir, routesFile))
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var body routesBody
	if err == nil {
		err = json.Unmarshal(b, &body)
	}
	if err != nil {
		g.log.Warn("reading the saved route table", "err", err)
		return
	}
	g.setRoutes(body.Routes)
}

// securePerms creates dir 0700 and brings what is in it to 0700 for
// folders and 0600 for files: it holds private keys.
func securePerms(dir string, log *slog.Logger) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			if err := os.Chmod(path, want); err != nil {
				return err
			}
			log.Warn("fixed permissions in certificate storage", "path", path, "was", fi.Mode().Perm().String(), "now", want.String())
		}
		return nil
	})
}

// listenTCP is the listener handed over, or a new one on addr.
func listenTCP(given net.Listener, addr string) (net.Listener, error) {
	if given != nil {
		return given, nil
	}
	return net.Listen("tcp", addr)
}

func splitPort(addr string) (string, int) {
	h, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return h, n
}

// listenHost is the host the addresses were given with ("" for all).
func listenHost(configured, bound string) string {
	h, _, _ := net.SplitHostPort(configured)
	if h == "" {
		return ""
	}
	return bound
}

// publicPort is the HTTPS port the redirect names.
func publicPort(configured string, bound int) int {
	_, p, _ := net.SplitHostPort(configured)
	if n, err := strconv.Atoi(p); err == nil && n != 0 {
		return n
	}
	return bound
}
