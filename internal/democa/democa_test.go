package democa

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

// A client that trusts only the demo root verifies the issued name over
// a real handshake, and refuses a name that was not issued.
func TestIssueVerifies(t *testing.T) {
	now := time.Now() // the one clock: the root's validity and the client's check
	ca, err := New("tlsrpt demo root", now)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue("mta-sts.example.com")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	dial := func(name string) error {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: name, Time: func() time.Time { return now }})
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial("mta-sts.example.com"); err != nil {
		t.Fatalf("issued name: %v", err)
	}
	var herr x509.HostnameError
	if err := dial("mta-sts.example.net"); err == nil || !errors.As(err, &herr) {
		t.Fatalf("other name: %v, want a hostname error", err)
	}
	if _, err := x509.ParseCertificate(cert.Certificate[0]); err != nil {
		t.Fatal(err)
	}
	if len(ca.PEM()) == 0 {
		t.Fatal("empty PEM")
	}
}
