package smtptest

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
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

	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// Postfix is a private Postfix instance of a test: Debian's binaries, a
// configuration, queue and log in a temporary directory, master(8) in the
// foreground (not a daemon), smtpd on loopback addresses of a free port,
// STARTTLS with a certificate the test made. It shares nothing with a
// Postfix the machine may run.
type Postfix struct {
	// Port is the port smtpd listens on, at every address.
	Port int

	cmd *exec.Cmd
	log *lockedBuffer
}

// postfixRoot is where the Debian package's files are: "/" when it is
// installed, or TLSRPT_POSTFIX_ROOT, a directory the package was
// extracted into with dpkg -x (its libraries are then found through
// LD_LIBRARY_PATH).
func postfixRoot() string {
	if r := os.Getenv("TLSRPT_POSTFIX_ROOT"); r != "" {
		return r
	}
	return "/"
}

// PostfixAvailable reports why Postfix cannot run here, or nil.
func PostfixAvailable() error {
	master := filepath.Join(postfixRoot(), "usr/lib/postfix/sbin/master")
	if _, err := os.Stat(master); err != nil {
		return fmt.Errorf("postfix not installed (apt-get install postfix): %w", err)
	}
	if _, _, err := postfixUsers(); err != nil {
		return err
	}
	return nil
}

// postfixUsers returns mail_owner and setgid_group: the package's
// postfix and postdrop; without them (an extracted package), the
// system's mail user and news group, which Postfix accepts as long as
// they differ from default_privs (nobody/nogroup).
func postfixUsers() (owner, group string, err error) {
	if _, err := user.Lookup("postfix"); err == nil {
		if _, err := user.LookupGroup("postdrop"); err == nil {
			return "postfix", "postdrop", nil
		}
	}
	if _, err := user.Lookup("mail"); err != nil {
		return "", "", fmt.Errorf("no user postfix or mail for mail_owner: %w", err)
	}
	if _, err := user.LookupGroup("news"); err != nil {
		return "", "", fmt.Errorf("no group postdrop or news for setgid_group: %w", err)
	}
	return "mail", "news", nil
}

// StartPostfix serves hostname on addrs (loopback addresses) with the
// certificate chain and key given in PEM, until the test ends. It skips
// the test when Postfix cannot run, or fails it when TLSRPT_TEST_REQUIRE
// lists postfix. Postfix's master runs only as root: for other users the
// test is skipped even then.
func StartPostfix(t testing.TB, hostname string, addrs []string, certPEM, keyPEM []byte) *Postfix {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("Postfix's master runs only as root")
	}
	testreq.Need(t, "postfix", "Postfix", PostfixAvailable())
	owner, group, _ := postfixUsers()
	ownerUID, groupGID := lookupIDs(t, owner, group)
	root := postfixRoot()
	// Not t.TempDir, whose parent is 0700: the smtpd processes run as
	// mail_owner and must reach the queue.
	dir, err := os.MkdirTemp("", "tlsrpt-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf, queue, data := filepath.Join(dir, "conf"), filepath.Join(dir, "queue"), filepath.Join(dir, "data")
	for _, d := range []struct {
		path     string
		mode     os.FileMode
		uid, gid int
	}{
		{conf, 0o755, 0, 0}, {queue, 0o755, 0, 0}, {filepath.Join(queue, "pid"), 0o755, 0, 0},
		{filepath.Join(queue, "private"), 0o700, ownerUID, 0}, {filepath.Join(queue, "public"), 0o710, ownerUID, groupGID},
		{data, 0o700, ownerUID, 0},
	} {
		if err := os.Mkdir(d.path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d.path, d.uid, d.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	// smtpd reads the key as root, before it drops privileges.
	chain := filepath.Join(conf, "chain.pem")
	if err := os.WriteFile(chain, append(append([]byte{}, keyPEM...), certPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t, addrs)
	libs := filepath.Join(root, "usr/lib/postfix")
	env := "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C"
	if root != "/" {
		env += " LD_LIBRARY_PATH=" + libs
	}
	mainCF := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + queue,
		"data_directory = " + data,
		"config_directory = " + conf,
		"meta_directory = " + conf,
		"daemon_directory = " + filepath.Join(root, "usr/lib/postfix/sbin"),
		"command_directory = " + filepath.Join(root, "usr/sbin"),
		"shlib_directory = " + libs,
		"mail_owner = " + owner,
		"setgid_group = " + group,
		"default_privs = nobody",
		"myhostname = " + hostname,
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"import_environment = " + env,
		"maillog_file = /dev/stdout",
		"smtpd_banner = $myhostname ESMTP Postfix (tlsrpt test)",
		"smtpd_tls_security_level = may",
		"smtpd_tls_chain_files = " + chain,
		"smtpd_tls_loglevel = 1",
		// No maps and no limits: no proxymap or anvil service needed.
		"local_recipient_maps =",
		"alias_maps =",
		"alias_database =",
		"smtpd_client_connection_count_limit = 0",
		"smtpd_client_connection_rate_limit = 0",
		"biff = no",
	}, "\n") + "\n"
	var masterCF strings.Builder
	for _, a := range addrs {
		fmt.Fprintf(&masterCF, "%s:%d inet n - n - - smtpd\n", a, port)
	}
	masterCF.WriteString("postlog unix-dgram n - n - 1 postlogd\ntlsmgr unix - - n 1000? 1 tlsmgr\n")
	for name, body := range map[string]string{"main.cf": mainCF, "master.cf": masterCF.String()} {
		if err := os.WriteFile(filepath.Join(conf, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p := &Postfix{Port: port, log: &lockedBuffer{}}
	// -d: stay in the foreground; -s: keep stdout, where the log goes.
	p.cmd = exec.Command(filepath.Join(root, "usr/lib/postfix/sbin/master"), "-d", "-s", "-c", conf)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	if root != "/" {
		p.cmd.Env = append(p.cmd.Env, "LD_LIBRARY_PATH="+libs)
	}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting postfix: %v", err)
	}
	exited := make(chan struct{})
	go func() { p.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// master stops its children on SIGTERM; the group kill is for
		// whatever it left.
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("postfix did not stop within 10s; killing it")
		}
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	for _, a := range addrs {
		if err := waitBanner(net.JoinHostPort(a, strconv.Itoa(port)), exited); err != nil {
			t.Fatalf("postfix on %s:%d: %v\nlog:\n%s", a, port, err, p.Log())
		}
	}
	return p
}

// Log returns what Postfix logged so far.
func (p *Postfix) Log() string { return p.log.String() }

// waitBanner waits up to 15 seconds for addr to send an SMTP banner.
func waitBanner(addr string, exited chan struct{}) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-exited:
			return errors.New("master exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			b := make([]byte, 4)
			_, err = c.Read(b)
			c.Write([]byte("QUIT\r\n"))
			c.Close()
			if err == nil && string(b[:3]) == "220" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no banner within 15s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a port free on every address (a short race with other
// programs remains: the test then fails at start, it never talks to them,
// as the banner names the host).
func freePort(t testing.TB, addrs []string) int {
	t.Helper()
	for try := 0; try < 20; try++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{ln}
		ok := true
		for _, a := range addrs[1:] {
			l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			lns = append(lns, l)
		}
		for _, l := range lns {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no port free on all of %v", addrs)
	return 0
}

func lookupIDs(t testing.TB, owner, group string) (int, int) {
	t.Helper()
	u, err := user.Lookup(owner)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return uid, gid
}

// lockedBuffer is a bytes.Buffer written by the process and read by the
// test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// LeafPEM issues a server certificate like Leaf and returns it and its
// key in PEM, for servers that read files.
func (ca *CA) LeafPEM(t testing.TB, notBefore, notAfter time.Time, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	c := ca.Leaf(t, notBefore, notAfter, names...)
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return certPEM, keyPEM
}
