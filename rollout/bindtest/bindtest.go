// Package bindtest runs a private BIND (Debian's bind9, /usr/sbin/named)
// for integration tests: one primary zone on a loopback high port that
// accepts RFC 2136 dynamic updates signed with a fresh TSIG key
// (hmac-sha256, RFC 8945), its config, zone, journal and pid file in the
// test's temporary directory. It never touches the system's named service:
// it starts its own process in the foreground and stops only that process
// when the test ends.
package bindtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
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

	"github.com/miekg/dns"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
)

// NamedPath is where Debian's bind9 package installs named.
const NamedPath = "/usr/sbin/named"

// Algorithm is the TSIG algorithm of the key, in the spelling named.conf
// and tlsrpt's settings use.
const Algorithm = "hmac-sha256"

// Server is a running private named.
type Server struct {
	t       testing.TB
	addr    string
	zone    string // FQDN, lower case
	keyName string // FQDN
	secret  string // base64
	dir     string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *lockedBuffer
}

// KeyName is the name of the TSIG key every Server makes (its secret is
// new each time), for update policies written before Start.
const KeyName = "tlsrpt-test."

// Start runs named serving zone (e.g. "example.com") until the test ends.
// The zone holds an SOA, an NS (ns1.<zone>) and the NS's A record
// (127.0.0.1); the key may update any name in it (allow-update). Start
// skips the test when named is missing, unless TLSRPT_TEST_REQUIRE lists
// bind.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	return StartUpdatePolicy(t, zone, "")
}

// StartUpdatePolicy is Start with the zone's update-policy statements
// instead of allow-update, e.g. the narrow grant docs/publishing.md
// recommends: `grant tlsrpt-test. name _mta-sts.example.com. TXT;`
// (KeyName is the key). AddRecord and SetA then work only where the
// policy lets the key write.
func StartUpdatePolicy(t testing.TB, zone, policy string) *Server {
	t.Helper()
	if _, err := os.Stat(NamedPath); err != nil {
		testreq.Need(t, "bind", "BIND (Debian package bind9)", err)
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatalf("making the TSIG secret: %v", err)
	}
	s := &Server{
		t:       t,
		zone:    dns.Fqdn(strings.ToLower(zone)),
		keyName: KeyName,
		secret:  base64.StdEncoding.EncodeToString(key),
		dir:     t.TempDir(),
	}
	if err := s.writeConfig(policy); err != nil {
		t.Fatalf("writing the named config: %v", err)
	}
	// The port is picked free on UDP and TCP, then handed to named; another
	// process may take it in between, so a failed start is retried.
	var err error
	for range 5 {
		if err = s.start(); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("starting named: %v", err)
	return nil
}

// writeConfig writes named.conf, the key and the zone file. When the test
// runs as root, named drops to the bind user (-u), so the directory is
// handed to that user and its parent made traversable.
func (s *Server) writeConfig(policy string) error {
	update := fmt.Sprintf("allow-update { key %q; };", s.keyName)
	if policy != "" {
		update = "update-policy { " + policy + " };"
	}
	conf := fmt.Sprintf(`key %q {
	algorithm %s;
	secret %q;
};
controls { };
options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	managed-keys-directory %q;
	listen-on port %s { 127.0.0.1; };
	listen-on-v6 { none; };
	recursion no;
	notify no;
	dnssec-validation no;
};
zone %q {
	type primary;
	file "zone.db";
	journal "zone.db.jnl";
	%s
};
`, s.keyName, Algorithm, s.secret, s.dir, filepath.Join(s.dir, "named.pid"), filepath.Join(s.dir, "session.key"),
		s.dir, "@PORT@", s.zone, update)
	zoneFile := fmt.Sprintf(`$TTL 300
@	IN SOA ns1.%[1]s hostmaster.%[1]s 1 3600 600 86400 300
@	IN NS ns1.%[1]s
ns1	IN A 127.0.0.1
`, s.zone)
	if err := os.WriteFile(filepath.Join(s.dir, "named.conf.in"), []byte(conf), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "zone.db"), []byte(zoneFile), 0o644); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup("bind")
	if err != nil {
		return fmt.Errorf("finding the bind user named runs as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// t.TempDir's parent is private (0700) to the test; named only needs
	// to pass through it.
	if err := os.Chmod(filepath.Dir(s.dir), 0o711); err != nil {
		return err
	}
	return filepath.Walk(s.dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

// start picks a port, runs named on it and waits until it answers the
// zone's SOA.
func (s *Server) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	in, err := os.ReadFile(filepath.Join(s.dir, "named.conf.in"))
	if err != nil {
		return err
	}
	confPath := filepath.Join(s.dir, "named.conf")
	if err := os.WriteFile(confPath, bytes.ReplaceAll(in, []byte("@PORT@"), []byte(strconv.Itoa(port))), 0o644); err != nil {
		return err
	}
	// -g: foreground, logs to stderr; -n 1: one worker thread (the test
	// machines are small); -4: IPv4 only.
	args := []string{"-g", "-4", "-n", "1", "-c", confPath, "-p", strconv.Itoa(port)}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "bind")
	}
	cmd := exec.Command(NamedPath, args...)
	stderr := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", NamedPath, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.addr, s.cmd, s.done, s.stderr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd, done, stderr
	s.mu.Unlock()

	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("named exited: %s", tail(stderr.String()))
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion(s.zone, dns.TypeSOA)
		c := &dns.Client{Timeout: 500 * time.Millisecond}
		if r, _, err := c.Exchange(m, s.addr); err == nil && r.Rcode == dns.RcodeSuccess && r.Authoritative && len(r.Answer) > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("named did not answer the SOA of %s at %s within 20s: %s", s.zone, s.addr, tail(stderr.String()))
}

// Stop ends named (SIGTERM, then SIGKILL after 5 s); the test's cleanup
// calls it, and a test may call it earlier to see how a client copes with
// a server that is gone. It only signals the process Start began.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// Log returns what named wrote so far (its -g log), for failure messages.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// Addr returns the host:port named serves on, UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Zone returns the served zone as an FQDN in lower case.
func (s *Server) Zone() string { return s.zone }

// KeyName returns the TSIG key's name (FQDN) that may update the zone.
func (s *Server) KeyName() string { return s.keyName }

// Secret returns the TSIG key's secret in base64.
func (s *Server) Secret() string { return s.secret }

// Algorithm returns the TSIG key's algorithm (hmac-sha256).
func (s *Server) Algorithm() string { return Algorithm }

// Resolver returns a Go resolver that asks this server, for code that
// takes a *net.Resolver. named runs with recursion off, so it answers for
// its own zone only.
func (s *Server) Resolver() *net.Resolver {
	addr := s.addr
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// TXT asks named for the TXT records at name (over TCP) and returns each
// record's strings joined, unescaped: the octets on the wire.
func (s *Server) TXT(name string) []string {
	s.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, s.addr)
	if err != nil {
		s.t.Fatalf("asking %s for TXT %s: %v", s.addr, name, err)
	}
	if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
		s.t.Fatalf("asking %s for TXT %s: %s", s.addr, name, dns.RcodeToString[r.Rcode])
	}
	var out []string
	for _, rr := range r.Answer {
		if txt, ok := rr.(*dns.TXT); ok {
			var b strings.Builder
			for _, part := range txt.Txt {
				b.WriteString(unescape(part))
			}
			out = append(out, b.String())
		}
	}
	return out
}

// SetA replaces the A records at name with one for ip.
func (s *Server) SetA(name, ip string) {
	s.t.Helper()
	rr := s.rr(fmt.Sprintf("%s 300 IN A %s", dns.Fqdn(name), ip))
	m := s.updateMsg()
	m.RemoveRRset([]dns.RR{&dns.A{Hdr: dns.RR_Header{Name: rr.Header().Name, Rrtype: dns.TypeA, Class: dns.ClassINET}}})
	m.Insert([]dns.RR{rr})
	s.update(m)
}

// AddRecord adds records given in zone-file syntax (e.g.
// `_mta-sts.example.com. 300 IN TXT "v=STSv1; id=1"`) by a signed dynamic
// update, keeping those already at the name.
func (s *Server) AddRecord(lines ...string) {
	s.t.Helper()
	m := s.updateMsg()
	for _, l := range lines {
		m.Insert([]dns.RR{s.rr(l)})
	}
	s.update(m)
}

func (s *Server) rr(line string) dns.RR {
	s.t.Helper()
	rr, err := dns.NewRR(line)
	if err != nil || rr == nil {
		s.t.Fatalf("parsing record %q: %v", line, err)
	}
	return rr
}

func (s *Server) updateMsg() *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(s.zone)
	m.SetTsig(s.keyName, dns.HmacSHA256, 300, time.Now().Unix())
	return m
}

func (s *Server) update(m *dns.Msg) {
	s.t.Helper()
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second, TsigSecret: map[string]string{s.keyName: s.secret}}
	r, _, err := c.Exchange(m, s.addr)
	if err != nil {
		s.t.Fatalf("updating zone %s at %s: %v", s.zone, s.addr, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		s.t.Fatalf("updating zone %s at %s: %s\n%s", s.zone, s.addr, dns.RcodeToString[r.Rcode], tail(s.Log()))
	}
}

// unescape turns miekg/dns's presentation form of a TXT string (\" \\
// \DDD) back into its octets.
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			n, _ := strconv.Atoi(s[i+1 : i+4])
			b.WriteByte(byte(n))
			i += 3
			continue
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// freePort returns a loopback port that was free on both UDP and TCP.
func freePort() (int, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		pc.Close()
		if err == nil {
			ln.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no loopback port free on both udp and tcp")
}

// tail returns the last lines of named's log, enough to see why it failed.
func tail(log string) string {
	lines := strings.Split(strings.TrimSpace(log), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// lockedBuffer collects named's output, written by exec's copying
// goroutine and read by the test.
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
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
