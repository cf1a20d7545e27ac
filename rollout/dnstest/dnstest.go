// Package dnstest starts an internal/dnsserver for a test on loopback: it
// answers queries from the records it holds, like a recursive resolver
// would, and applies RFC 2136 dynamic updates signed with a TSIG key, as a
// primary such as BIND does. Tests of publishing (rollout, api, cmd/tlsrpt)
// start one and point the inspector and the publisher at it.
package dnstest

import (
	"testing"

	"github.com/tlsrpt/tlsrpt/internal/dnsserver"
)

// Server is the running test server.
type Server struct {
	*dnsserver.Server
}

// Start serves zone on a loopback port until the test ends. Updates must
// be signed with keyName/secret (base64).
func Start(t testing.TB, zone, keyName, secret string) *Server {
	t.Helper()
	s, err := dnsserver.Start("127.0.0.1", zone, keyName, secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &Server{s}
}

// Add adds records in zone-file syntax.
func (s *Server) Add(t testing.TB, lines ...string) {
	t.Helper()
	if err := s.Server.Add(lines...); err != nil {
		t.Fatal(err)
	}
}

// SetTXT replaces the TXT records at name with one holding value, as an
// operator editing the zone behind tlsrpt's back would.
func (s *Server) SetTXT(t testing.TB, name, value string) {
	t.Helper()
	if err := s.Server.SetTXT(name, value); err != nil {
		t.Fatal(err)
	}
}
