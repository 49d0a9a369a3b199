package storage

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SFTPConfig says where and how to reach a second server over SFTP.
type SFTPConfig struct {
	Addr           string // host:port
	User           string
	KeyFile        string // path of the private key (OpenSSH or PEM, no passphrase)
	Key            []byte // the private key itself, instead of KeyFile
	KnownHostsFile string // OpenSSH known_hosts that must hold the server's key
	Root           string // folder on the server; relative to the login folder unless absolute
	DialTimeout    time.Duration
}

// SFTP stores files on another server over SFTP. It connects on first use,
// shares one connection between concurrent calls, and reconnects on the
// next call after the connection broke.
type SFTP struct {
	cfg    SFTPConfig
	root   string
	signer ssh.Signer

	// sem guards cur and orphans; a channel so waiters can honour ctx
	// while another call dials.
	sem     chan struct{}
	cur     *sftpConn
	orphans []string // temp files a broken connection kept us from removing
}

var _ Backend = (*SFTP)(nil)

const (
	defaultSFTPDialTimeout = 15 * time.Second
	// How long an operation may outlive its context before the connection
	// under it is closed: a stalled server must not hold Save forever, but
	// closing also fails the other calls on that connection, so give the
	// operation a moment to stop by itself first.
	sftpAbortGrace = 2 * time.Second
	sftpKeepalive  = 30 * time.Second
	// Bounds removing a temp file after a failed Save.
	sftpCleanupTimeout = 10 * time.Second
)

// NewSFTP checks cfg and reads the key. It does not connect.
func NewSFTP(cfg SFTPConfig) (*SFTP, error) {
	if cfg.Addr == "" {
		return nil, errors.New("sftp: Addr is required (host:port, e.g. backup.example.org:22)")
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" || port == "" {
		return nil, fmt.Errorf("sftp: Addr %q must be host:port, e.g. backup.example.org:22", cfg.Addr)
	}
	if cfg.User == "" {
		return nil, errors.New("sftp: User is required")
	}
	if cfg.KnownHostsFile == "" {
		return nil, errors.New("sftp: KnownHostsFile is required: the server's host key must be known (fill it with: ssh-keyscan " + sftpKeyscanArgs(cfg.Addr) + " >> FILE)")
	}
	if _, err := os.Stat(cfg.KnownHostsFile); err != nil {
		return nil, fmt.Errorf("sftp: KnownHostsFile: %w (create it with: ssh-keyscan %s >> %s)", err, sftpKeyscanArgs(cfg.Addr), cfg.KnownHostsFile)
	}
	if cfg.Root == "" {
		return nil, errors.New("sftp: Root is required (the folder on the server, e.g. /srv/backups, or backups for one in the login folder)")
	}
	key, what := cfg.Key, "Key"
	switch {
	case len(key) > 0 && cfg.KeyFile != "":
		return nil, errors.New("sftp: set KeyFile or Key, not both")
	case len(key) == 0 && cfg.KeyFile == "":
		return nil, errors.New("sftp: KeyFile is required (path of the private key)")
	case len(key) == 0:
		what = "KeyFile " + cfg.KeyFile
		if key, err = os.ReadFile(cfg.KeyFile); err != nil {
			return nil, fmt.Errorf("sftp: KeyFile: %w", err)
		}
	}
	signer, err := ssh.ParsePrivateKey(key)
	if err != nil {
		var pp *ssh.PassphraseMissingError
		if errors.As(err, &pp) {
			return nil, fmt.Errorf("sftp: %s is protected by a passphrase; use a key without one (ssh-keygen -t ed25519 -N '' -f FILE)", what)
		}
		// The parser's message never quotes the key.
		return nil, fmt.Errorf("sftp: %s is not a private key: %v", what, err)
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultSFTPDialTimeout
	}
	cfg.Key = nil // keep the key only as the signer
	return &SFTP{cfg: cfg, root: path.Clean(cfg.Root), signer: signer, sem: make(chan struct{}, 1)}, nil
}

// Name says where the files go: sftp:user@host:port/root (a relative root
// shows as /./root).
func (s *SFTP) Name() string {
	root := s.root
	if !strings.HasPrefix(root, "/") {
		root = "/./" + root
	}
	return "sftp:" + s.cfg.User + "@" + s.cfg.Addr + strings.TrimSuffix(root, "/.")
}

// Close closes the connection; a later call opens a new one.
func (s *SFTP) Close() error {
	s.sem <- struct{}{}
	defer func() { <-s.sem }()
	if s.cur != nil {
		s.cur.close()
		s.cur = nil
	}
	return nil
}

func (s *SFTP) full(name string) string { return path.Join(s.root, name) }

// Save streams r to a temp file beside name, then renames it into place,
// so name holds the old content or the new, never part.
func (s *SFTP) Save(ctx context.Context, name string, r io.Reader) (err error) {
	if err := checkName(name); err != nil {
		return err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return fmt.Errorf("saving %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			err = s.failed(ctx, cn, "saving "+name, err)
		}
	}()
	stop := s.watch(ctx, cn)
	defer stop()

	full := s.full(name)
	dir := path.Dir(full)
	if err := sftpMkdirAll(cn.sftp, dir); err != nil {
		return err
	}
	tmp := path.Join(dir, "."+path.Base(full)+".part-"+sftpRandomSuffix())
	f, err := cn.sftp.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	committed := false
	defer func() {
		if !committed {
			s.removeTemp(cn, tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	// Plain ReadFrom only writes concurrently when it can tell r's size;
	// without that a 200 MiB upload waits one round trip per 32 KiB.
	if _, err := f.ReadFromWithConcurrency(sftpSource{ctx, r}, 0); err != nil {
		f.Close()
		return err
	}
	if _, ok := cn.sftp.HasExtension("fsync@openssh.com"); ok {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := cn.sftp.HasExtension("posix-rename@openssh.com"); ok {
		err = cn.sftp.PosixRename(tmp, full)
	} else {
		// Plain SFTP rename refuses to replace: not atomic, but the best
		// such a server allows.
		if err = cn.sftp.Remove(full); err == nil || errors.Is(err, fs.ErrNotExist) {
			err = cn.sftp.Rename(tmp, full)
		}
	}
	if err != nil {
		return err
	}
	committed = true
	return nil
}

// Open opens a stored file for reading.
func (s *SFTP) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	stop := s.watch(ctx, cn)
	defer stop()
	f, err := cn.sftp.Open(s.full(name))
	if err != nil {
		return nil, s.failed(ctx, cn, "opening "+name, err)
	}
	return &sftpReader{s: s, cn: cn, ctx: ctx, f: f}, nil
}

// List walks Root for files whose names start with prefix.
func (s *SFTP) List(ctx context.Context, prefix string) ([]FileInfo, error) {
	cn, err := s.conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", s.Name(), err)
	}
	var out []FileInfo
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := cn.sftp.ReadDirContext(ctx, path.Join(s.root, rel))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // no root yet, or removed meanwhile
			}
			return err
		}
		for _, e := range entries {
			name := e.Name()
			if rel != "." {
				name = rel + "/" + name
			}
			if e.IsDir() {
				if strings.HasPrefix(name+"/", prefix) || strings.HasPrefix(prefix, name+"/") {
					if err := walk(name); err != nil {
						return err
					}
				}
				continue
			}
			if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".part-") {
				continue // an upload in progress or left by a crash
			}
			if strings.HasPrefix(name, prefix) {
				out = append(out, FileInfo{Name: name, Size: e.Size(), ModTime: e.ModTime()})
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, s.failed(ctx, cn, "listing "+s.Name(), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a file, and its folders up to Root that become empty.
func (s *SFTP) Remove(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	cn, err := s.conn(ctx)
	if err != nil {
		return fmt.Errorf("removing %s: %w", name, err)
	}
	stop := s.watch(ctx, cn)
	defer stop()
	if err := cn.sftp.Remove(s.full(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.failed(ctx, cn, "removing "+name, err)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if cn.sftp.RemoveDirectory(s.full(dir)) != nil {
			break // not empty
		}
	}
	return nil
}

// failed wraps err with what was being done, tells ctx's end apart from a
// server problem, and drops the connection when it is broken.
func (s *SFTP) failed(ctx context.Context, cn *sftpConn, doing string, err error) error {
	if sftpConnBroken(err) {
		cn.close()
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s on %s: %w (%v)", doing, s.Name(), cerr, err)
	}
	return fmt.Errorf("%s on %s: %w", doing, s.Name(), err)
}

func sftpConnBroken(err error) bool {
	var st *sftp.StatusError
	if errors.As(err, &st) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, new(*sftpSourceError)) {
		return false
	}
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// sftpSource stops Save when ctx ends and marks the errors of the
// caller's reader, which say nothing about the connection.
type sftpSource struct {
	ctx context.Context
	r   io.Reader
}

func (s sftpSource) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sftpSourceError{err}
	}
	return n, err
}

type sftpSourceError struct{ err error }

func (e *sftpSourceError) Error() string { return "reading the data to save: " + e.err.Error() }
func (e *sftpSourceError) Unwrap() error { return e.err }

// watch closes cn if the operation is still running sftpAbortGrace after
// ctx ended: the pkg/sftp calls take no context, and a stalled server would
// otherwise hold them until TCP gives up. The returned func ends the watch.
func (s *SFTP) watch(ctx context.Context, cn *sftpConn) (stop func()) {
	done := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		t := time.NewTimer(sftpAbortGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			cn.close()
		}
	})
	return func() {
		close(done)
		stopAfter()
	}
}

// removeTemp removes a failed upload's temp file, or, when the connection
// is gone, remembers it for the next connection.
func (s *SFTP) removeTemp(cn *sftpConn, tmp string) {
	if !cn.broken() {
		ctx, cancel := context.WithTimeout(context.Background(), sftpCleanupTimeout)
		stop := s.watch(ctx, cn)
		err := cn.sftp.Remove(tmp)
		stop()
		cancel()
		if err == nil || errors.Is(err, fs.ErrNotExist) {
			return
		}
		if !sftpConnBroken(err) {
			return // e.g. permissions: retrying will not help
		}
		cn.close()
	}
	s.sem <- struct{}{}
	s.orphans = append(s.orphans, tmp)
	<-s.sem
}

// conn returns the live connection, or dials a new one.
func (s *SFTP) conn(ctx context.Context) (*sftpConn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.sem }()
	if s.cur != nil && !s.cur.broken() {
		return s.cur, nil
	}
	if s.cur != nil {
		s.cur.close()
		s.cur = nil
	}
	cn, err := s.dial(ctx)
	if err != nil {
		return nil, err
	}
	s.cur = cn
	// Temp files of uploads that the last connection's end interrupted.
	var kept []string
	for _, p := range s.orphans {
		if err := cn.sftp.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) && sftpConnBroken(err) {
			kept = append(kept, p)
		}
	}
	s.orphans = kept
	return cn, nil
}

func (s *SFTP) dial(ctx context.Context) (*sftpConn, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", s.cfg.Addr, err)
	}
	// The SSH handshake and the SFTP start take no context: close the
	// socket if ctx ends first.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	cn, err := s.handshake(nc)
	if !stop() {
		if cn != nil {
			cn.close()
		}
		nc.Close()
		return nil, fmt.Errorf("connecting to %s: %w", s.cfg.Addr, ctx.Err())
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	return cn, nil
}

func (s *SFTP) handshake(nc net.Conn) (*sftpConn, error) {
	check, err := knownhosts.New(s.cfg.KnownHostsFile)
	if err != nil {
		return nil, fmt.Errorf("sftp: KnownHostsFile: %w", err)
	}
	var hostKeyErr error
	cfg := &ssh.ClientConfig{
		User: s.cfg.User,
		Auth: []ssh.AuthMethod{ssh.PublicKeys(s.signer)},
		HostKeyCallback: func(hostname string, remote net.Addr, key ssh.PublicKey) error {
			if err := check(hostname, remote, key); err != nil {
				hostKeyErr = s.hostKeyError(err, key)
				return hostKeyErr
			}
			return nil
		},
		// Ask only for key types known_hosts has for this server, or a
		// server with several host keys may show one we do not know, which
		// would look like a changed key.
		HostKeyAlgorithms: sftpKnownAlgorithms(check, s.cfg.Addr, nc.RemoteAddr()),
	}
	sc, chans, reqs, err := ssh.NewClientConn(nc, s.cfg.Addr, cfg)
	if err != nil {
		if hostKeyErr != nil {
			return nil, hostKeyErr
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, fmt.Errorf("connecting to %s: the server refused the key for user %s: add its public key (ssh-keygen -y -f KEYFILE) to that user's authorized_keys on the server: %w", s.cfg.Addr, s.cfg.User, err)
		}
		return nil, fmt.Errorf("connecting to %s: %w", s.cfg.Addr, err)
	}
	client := ssh.NewClient(sc, chans, reqs)
	sc2, err := sftp.NewClient(client, sftp.UseConcurrentWrites(true), sftp.MaxPacketUnchecked(250<<10))
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("starting SFTP on %s (is the sftp subsystem enabled?): %w", s.cfg.Addr, err)
	}
	cn := &sftpConn{ssh: client, sftp: sc2, dead: make(chan struct{})}
	go func() {
		_ = client.Wait()
		cn.close()
	}()
	go cn.keepalive()
	return cn, nil
}

// HostKeyError says the server's host key is not the one known_hosts holds.
type HostKeyError struct {
	Addr, KnownHostsFile string
	Changed              bool   // known_hosts has other keys for Addr
	Revoked              bool   // the key is marked @revoked
	Offered              string // type and fingerprint of the server's key
	msg                  string
}

func (e *HostKeyError) Error() string { return e.msg }

func (s *SFTP) hostKeyError(err error, key ssh.PublicKey) error {
	addr, file := s.cfg.Addr, s.cfg.KnownHostsFile
	e := &HostKeyError{Addr: addr, KnownHostsFile: file, Offered: key.Type() + " " + ssh.FingerprintSHA256(key)}
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		e.Revoked = true
		e.msg = fmt.Sprintf("the host key of %s (%s) is REVOKED in %s: refusing to connect", addr, e.Offered, re.Revoked.String())
	case errors.As(err, &ke) && len(ke.Want) == 0:
		e.msg = fmt.Sprintf("the server %s is not in %s; add its key with: ssh-keyscan %s >> %s (it offered %s: check that against the server's own, ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub)",
			addr, file, sftpKeyscanArgs(addr), file, e.Offered)
	case errors.As(err, &ke):
		e.Changed = true
		var known []string
		for _, k := range ke.Want {
			known = append(known, fmt.Sprintf("%s:%d has %s %s", k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key)))
		}
		e.msg = fmt.Sprintf("the host key of %s CHANGED: it offered %s, but %s. Someone may be intercepting the connection, or the server was reinstalled; nothing was sent. If you are sure the change is legitimate, replace the old key: ssh-keygen -R '%s' -f %s && ssh-keyscan %s >> %s",
			addr, e.Offered, strings.Join(known, ", "), knownhosts.Normalize(addr), file, sftpKeyscanArgs(addr), file)
	default:
		e.msg = fmt.Sprintf("checking the host key of %s against %s: %v", addr, file, err)
	}
	return e
}

func sftpKeyscanArgs(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if port == "22" {
		return host
	}
	return "-p " + port + " " + host
}

// sftpProbeKey is a key no known_hosts holds, to learn which keys it has.
var sftpProbeKey = func() ssh.PublicKey {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return k
}()

func sftpKnownAlgorithms(check ssh.HostKeyCallback, addr string, remote net.Addr) []string {
	var ke *knownhosts.KeyError
	if err := check(addr, remote, sftpProbeKey); !errors.As(err, &ke) {
		return nil
	}
	var algs []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algs = append(algs, x)
			}
		}
	}
	for _, k := range ke.Want {
		if t := k.Key.Type(); t == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(t)
		}
	}
	return algs // nil when the host is unknown: the callback says so
}

// sftpConn is one SSH connection with its SFTP session.
type sftpConn struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	once sync.Once
	dead chan struct{}
}

func (c *sftpConn) broken() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

func (c *sftpConn) close() {
	c.once.Do(func() {
		close(c.dead)
		// The SSH connection first: a write blocked on a stalled server
		// holds a lock that closing the SFTP session would wait for.
		c.ssh.Close()
		go c.sftp.Close()
	})
}

// keepalive notices a dead peer that sent no FIN (a cut cable).
func (c *sftpConn) keepalive() {
	t := time.NewTicker(sftpKeepalive)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-t.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case <-c.dead:
			return
		case err := <-reply:
			if err != nil {
				c.close()
				return
			}
		case <-time.After(sftpKeepalive / 2):
			c.close()
			return
		}
	}
}

// sftpReader is an open remote file that honours its context.
type sftpReader struct {
	s   *SFTP
	cn  *sftpConn
	ctx context.Context
	f   *sftp.File
}

func (r *sftpReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	stop := r.s.watch(r.ctx, r.cn)
	defer stop()
	n, err := r.f.Read(p)
	if err != nil && err != io.EOF && sftpConnBroken(err) {
		r.cn.close()
	}
	return n, err
}

// WriteTo keeps pkg/sftp's concurrent reads, which io.Copy would lose by
// calling Read.
func (r *sftpReader) WriteTo(w io.Writer) (int64, error) {
	stop := r.s.watch(r.ctx, r.cn)
	defer stop()
	n, err := r.f.WriteTo(sftpCtxWriter{r.ctx, w})
	if err != nil && sftpConnBroken(err) {
		r.cn.close()
	}
	return n, err
}

func (r *sftpReader) Close() error { return r.f.Close() }

type sftpCtxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c sftpCtxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// sftpMkdirAll is MkdirAll making folders 0700: backups are private.
func sftpMkdirAll(c *sftp.Client, dir string) error {
	fi, err := c.Stat(dir)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return fmt.Errorf("%s exists and is not a folder", dir)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if parent := path.Dir(dir); parent != dir && parent != "." && parent != "/" {
		if err := sftpMkdirAll(c, parent); err != nil {
			return err
		}
	}
	if err := c.Mkdir(dir); err != nil {
		if fi, err2 := c.Stat(dir); err2 == nil && fi.IsDir() {
			return nil // made meanwhile by a concurrent Save
		}
		return err
	}
	return c.Chmod(dir, 0o700)
}

func sftpRandomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
