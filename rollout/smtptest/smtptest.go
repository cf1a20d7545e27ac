// Package smtptest runs SMTP servers for tests on loopback addresses, one
// port shared by all, each address answering as one MX host: with
// STARTTLS and a certificate, without STARTTLS, with a TLS handshake that
// never completes, or not at all. Tests of the STARTTLS probe (rollout,
// cmd/tlsrpt) point DNS names at the addresses (127.0.0.x) and the probe
// at the port. It also makes the certificates: a CA and leaves valid
// relative to one clock the test chooses.
package smtptest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mode is how a host answers.
type Mode int

// Modes of a Host.
const (
	// STARTTLS: banner, EHLO offering STARTTLS, the handshake with Cert,
	// then QUIT over TLS.
	STARTTLS Mode = iota
	// NoSTARTTLS: banner and EHLO without STARTTLS.
	NoSTARTTLS
	// HangHandshake: STARTTLS offered and answered 220, then no byte of
	// the handshake is ever sent.
	HangHandshake
	// Silent: the connection is accepted and no banner ever sent.
	Silent
)

// Host is one MX host of a test: the loopback addresses it answers on.
type Host struct {
	Name  string
	Addrs []string // e.g. "127.0.0.11"
	Mode  Mode
	Cert  tls.Certificate
}

// Server is the running set of hosts.
type Server struct {
	// Port is the port every host listens on.
	Port int

	byAddr map[string]*Host
	mu     sync.Mutex
	conns  map[net.Conn]bool
	cmds   []string
	closed bool
}

// maxLine bounds a command line read by the server.
const maxLine = 1024

// Start serves hosts until the test ends, all on one free port.
func Start(t testing.TB, hosts ...Host) *Server {
	t.Helper()
	s := &Server{byAddr: map[string]*Host{}, conns: map[net.Conn]bool{}}
	var addrs []string
	for i := range hosts {
		for _, a := range hosts[i].Addrs {
			s.byAddr[a] = &hosts[i]
			addrs = append(addrs, a)
		}
	}
	var lns []net.Listener
	for try := 0; ; try++ {
		lns = nil
		first, err := net.Listen("tcp", net.JoinHostPort(addrs[0], "0"))
		if err != nil {
			t.Fatalf("listening on %s: %v", addrs[0], err)
		}
		lns = append(lns, first)
		s.Port = first.Addr().(*net.TCPAddr).Port
		for _, a := range addrs[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(s.Port)))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(addrs) {
			break
		}
		for _, ln := range lns {
			ln.Close()
		}
		if try == 20 {
			t.Fatalf("no port free on all of %v", addrs)
		}
	}
	var wg sync.WaitGroup
	for _, ln := range lns {
		wg.Go(func() { s.accept(ln) })
	}
	t.Cleanup(func() {
		for _, ln := range lns {
			ln.Close()
		}
		s.mu.Lock()
		s.closed = true
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	return s
}

// Commands returns every command line the servers received, in order.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.cmds...)
}

func (s *Server) accept(ln net.Listener) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.mu.Unlock()
		wg.Go(func() {
			defer func() {
				c.Close()
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			}()
			s.serve(c)
		})
	}
}

func (s *Server) serve(c net.Conn) {
	ip, _, _ := net.SplitHostPort(c.LocalAddr().String())
	h := s.byAddr[ip]
	if h == nil || h.Mode == Silent {
		io.Copy(io.Discard, c) // until the client or the cleanup closes it
		return
	}
	var conn net.Conn = c
	r := bufio.NewReaderSize(conn, maxLine)
	write := func(lines ...string) bool {
		_, err := io.WriteString(conn, strings.Join(lines, "\r\n")+"\r\n")
		return err == nil
	}
	if !write("220 " + h.Name + " ESMTP smtptest") {
		return
	}
	tlsOn := false
	for {
		line, more, err := r.ReadLine()
		if err != nil || more {
			return
		}
		cmd := string(line)
		s.mu.Lock()
		s.cmds = append(s.cmds, cmd)
		s.mu.Unlock()
		verb, _, _ := strings.Cut(strings.ToUpper(cmd), " ")
		switch {
		case verb == "EHLO":
			lines := []string{"250-" + h.Name, "250-PIPELINING"}
			if h.Mode != NoSTARTTLS && !tlsOn {
				lines = append(lines, "250-STARTTLS")
			}
			if !write(append(lines, "250 8BITMIME")...) {
				return
			}
		case verb == "STARTTLS" && h.Mode != NoSTARTTLS && !tlsOn:
			if !write("220 2.0.0 ready to start TLS") {
				return
			}
			if h.Mode == HangHandshake {
				io.Copy(io.Discard, c)
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{h.Cert}})
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, r, tlsOn = tc, bufio.NewReaderSize(tc, maxLine), true
		case verb == "QUIT":
			write("221 2.0.0 bye")
			return
		default:
			if !write("502 5.5.1 not implemented") {
				return
			}
		}
	}
}

// CA is a certificate authority made for one test.
type CA struct {
	Cert *x509.Certificate
	Pool *x509.CertPool
	key  *ecdsa.PrivateKey
	next int64
	mu   sync.Mutex
}

// NewCA makes a CA valid from a year before now to ten years after.
func NewCA(t testing.TB, now time.Time) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "smtptest CA"},
		NotBefore:             now.AddDate(-1, 0, 0),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, Pool: pool, key: key, next: 2}
}

// PEM returns the CA certificate in PEM, for a --ca-file.
func (ca *CA) PEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Leaf issues a server certificate for names, valid from notBefore to
// notAfter.
func (ca *CA) Leaf(t testing.TB, notBefore, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca.mu.Lock()
	serial := ca.next
	ca.next++
	ca.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
