// Package sshtest starts a real OpenSSH server (Debian's openssh-server) for
// a test: its own host key, client key, known_hosts and data folder, on a
// free loopback port, serving only SFTP.
//
// Without /usr/sbin/sshd the tests skip, unless SUMMONER_INTEGRATION=1 (as
// in CI), where it is a failure, never a silent skip.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/summoner-bot/summoner/internal/itgate"
)

// SSHD is the server binary; sshd insists on an absolute path (re-exec).
const SSHD = "/usr/sbin/sshd"

// Server is a running sshd.
type Server struct {
	Addr           string // 127.0.0.1:port
	User           string
	KeyFile        string // the client's private key (ed25519, no passphrase)
	KnownHostsFile string // holds the server's host key for Addr
	DataDir        string // the SFTP start folder (internal-sftp -d)

	dir     string
	config  string
	hostPub ssh.PublicKey

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been reaped
	log    *os.File
}

// Start starts an sshd for t and stops it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(SSHD); err != nil {
		itgate.Skip(t, "no %s: apt-get install openssh-server openssh-client (%v)", SSHD, err)
	}
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		itgate.Skip(t, "no ssh-keygen: apt-get install openssh-client")
	}
	// sshd refuses to start without its privilege separation folder.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		itgate.Skip(t, "cannot create /run/sshd (sshd needs it; run as root): %v", err)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	s := &Server{
		User:           u.Username,
		KeyFile:        filepath.Join(dir, "client_key"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		DataDir:        filepath.Join(dir, "data"),
		dir:            dir,
		config:         filepath.Join(dir, "sshd_config"),
	}
	if err := os.Mkdir(s.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(dir, "host_ed25519_key")
	keygen(t, hostKey)
	keygen(t, s.KeyFile)
	clientPub, err := os.ReadFile(s.KeyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	authKeys := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authKeys, clientPub, 0o600); err != nil {
		t.Fatal(err)
	}
	hostPubText, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	s.hostPub, _, _, _, err = ssh.ParseAuthorizedKey(hostPubText)
	if err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	config := strings.Join([]string{
		"ListenAddress " + s.Addr,
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"AllowUsers " + s.User,
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		// The temp folder belongs to the test, not to the login user.
		"StrictModes no",
		"UseDNS no",
		"PrintMotd no",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		// The conformance suite opens a connection per subtest.
		"MaxStartups 100",
		"Subsystem sftp internal-sftp",
		"ForceCommand internal-sftp -d " + s.DataDir,
		"",
	}, "\n")
	if err := os.WriteFile(s.config, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.hostPub)
	if err := os.WriteFile(s.KnownHostsFile, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(dir, "sshd.log")); err == nil {
				t.Logf("sshd log:\n%s", tail(log, 4000))
			}
		}
	})
	s.start(t)
	return s
}

// Kill SIGKILLs sshd and every process it started, at once, as a crash or
// a pulled cable would: connections break without a goodbye.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	pid := s.cmd.Process.Pid
	select {
	case <-s.exited:
		pid = 0 // died by itself: its pid may belong to another process now
	default:
	}
	// Stop the listener first so it forks nothing while we look for its
	// children, which sshd moves to sessions of their own (setsid): killing
	// the process group alone would leave live connections behind.
	if pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
		for _, p := range descendants(pid) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	<-s.exited
	s.cmd = nil
	if s.log != nil {
		s.log.Close()
		s.log = nil
	}
}

// Restart kills sshd if it runs and starts it again on the same port with
// the same keys and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Kill()
	s.start(t)
}

// Freeze stops (SIGSTOP) sshd and its children: connections stay open but
// nothing answers, like a stalled network. Thaw resumes them.
func (s *Server) Freeze() { s.signalAll(syscall.SIGSTOP) }

// Thaw resumes a frozen sshd.
func (s *Server) Thaw() { s.signalAll(syscall.SIGCONT) }

func (s *Server) signalAll(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(pid, sig)
	for _, p := range descendants(pid) {
		_ = syscall.Kill(p, sig)
	}
}

// OtherHostKeyKnownHosts writes a known_hosts file that holds a different
// key of the same type for Addr: what a client sees when the key changed.
func (s *Server) OtherHostKeyKnownHosts(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "known_hosts_other")
	line := knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, key)
	if err := os.WriteFile(f, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// HostKey is the server's public host key.
func (s *Server) HostKey() ssh.PublicKey { return s.hostPub }

func (s *Server) start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	log, err := os.OpenFile(filepath.Join(s.dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(SSHD, "-D", "-e", "-f", s.config)
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("starting sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			log.Close()
			out, _ := os.ReadFile(filepath.Join(s.dir, "sshd.log"))
			t.Fatalf("sshd exited at start: %s", tail(out, 2000))
		default:
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			log.Close()
			out, _ := os.ReadFile(filepath.Join(s.dir, "sshd.log"))
			t.Fatalf("sshd does not accept connections on %s after 15 s: %s", s.Addr, tail(out, 2000))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.cmd = cmd
	s.exited = exited
	s.log = log
}

func keygen(t testing.TB, file string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshtest", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// descendants lists every process below pid, from /proc.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name, in parentheses, may hold spaces: parse after it.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		ppid, err := strconv.Atoi(fields[1])
		if err != nil {
			continue
		}
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(bytes.TrimSpace(b))
}
