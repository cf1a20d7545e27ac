// Package dnstest is a DNS server for tests on loopback: it answers
// queries from the records it holds, like a recursive resolver would, and
// applies RFC 2136 dynamic updates signed with a TSIG key, as a primary
// such as BIND does. Tests of publishing (rollout, api, cmd/tlsrpt) start
// one and point the inspector and the publisher at it.
package dnstest

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server is the running test server.
type Server struct {
	// Addr is the host:port it serves on, UDP and TCP.
	Addr string
	// Zone is the zone updates are accepted for (FQDN).
	Zone string
	// KeyName and Secret are the TSIG key updates must be signed with
	// (hmac-sha256).
	KeyName string
	Secret  string

	mu      sync.Mutex
	rrs     map[string][]dns.RR // by lower-case FQDN
	updates int
	refused int
}

// Start serves zone on a loopback port until the test ends. Updates must
// be signed with keyName/secret (base64).
func Start(t testing.TB, zone, keyName, secret string) *Server {
	t.Helper()
	s := &Server{Zone: dns.Fqdn(strings.ToLower(zone)), KeyName: dns.Fqdn(keyName), Secret: secret, rrs: map[string][]dns.RR{}}
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatalf("listening on udp: %v", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatalf("listening on tcp: %v", err)
		}
	}
	s.Addr = pc.LocalAddr().String()
	secrets := map[string]string{s.KeyName: secret}
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: s, TsigSecret: secrets, MsgAcceptFunc: acceptUpdates},
		{Listener: ln, Handler: s, TsigSecret: secrets, MsgAcceptFunc: acceptUpdates},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() {
			if err := srv.ActivateAndServe(); err != nil {
				t.Logf("dns server stopped: %v", err)
			}
		}()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// acceptUpdates lets UPDATE messages through, which the library's default
// answers NOTIMP.
func acceptUpdates(dh dns.Header) dns.MsgAcceptAction {
	if int(dh.Bits>>11)&0xF == dns.OpcodeUpdate {
		return dns.MsgAccept
	}
	return dns.DefaultMsgAcceptFunc(dh)
}

// Add adds records in zone-file syntax.
func (s *Server) Add(t testing.TB, lines ...string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("dns.NewRR(%q): %v", l, err)
		}
		k := strings.ToLower(rr.Header().Name)
		s.rrs[k] = append(s.rrs[k], rr)
	}
}

// SetTXT replaces the TXT records at name with one holding value, as an
// operator editing the zone behind tlsrpt's back would.
func (s *Server) SetTXT(t testing.TB, name, value string) {
	t.Helper()
	s.mu.Lock()
	s.deleteRRset(dns.Fqdn(strings.ToLower(name)), dns.TypeTXT)
	s.mu.Unlock()
	s.Add(t, dns.Fqdn(name)+` 300 IN TXT "`+value+`"`)
}

// TXT returns the TXT values at name, the strings of each record joined.
func (s *Server) TXT(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, rr := range s.rrs[dns.Fqdn(strings.ToLower(name))] {
		if txt, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(txt.Txt, ""))
		}
	}
	return out
}

// Updates returns how many updates were applied and how many refused.
func (s *Server) Updates() (applied, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.updates, s.refused
}

func (s *Server) deleteRRset(name string, t uint16) {
	var keep []dns.RR
	for _, rr := range s.rrs[name] {
		if t != dns.TypeANY && rr.Header().Rrtype != t {
			keep = append(keep, rr)
		}
	}
	s.rrs[name] = keep
}

// ServeDNS implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := new(dns.Msg)
	m.SetReply(req)
	if req.Opcode == dns.OpcodeUpdate {
		s.update(w, req, m)
		w.WriteMsg(m)
		return
	}
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	rrs, ok := s.rrs[strings.ToLower(q.Name)]
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	w.WriteMsg(m)
}

// update applies an RFC 2136 update: only signed with the key, only for
// the zone; the prerequisite section is not supported (tlsrpt sends none).
func (s *Server) update(w dns.ResponseWriter, req *dns.Msg, m *dns.Msg) {
	tsig := req.IsTsig()
	if tsig == nil || w.TsigStatus() != nil || !strings.EqualFold(tsig.Hdr.Name, s.KeyName) {
		s.refused++
		m.Rcode = dns.RcodeNotAuth
		return
	}
	m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, int64(tsig.TimeSigned))
	if len(req.Question) != 1 || !strings.EqualFold(req.Question[0].Name, s.Zone) || len(req.Answer) > 0 {
		s.refused++
		m.Rcode = dns.RcodeNotZone
		return
	}
	for _, rr := range req.Ns {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !dns.IsSubDomain(s.Zone, name) {
			s.refused++
			m.Rcode = dns.RcodeNotZone
			return
		}
		switch h.Class {
		case dns.ClassANY: // delete an RRset (or all RRsets) at the name
			s.deleteRRset(name, h.Rrtype)
		case dns.ClassNONE: // delete one record
			var keep []dns.RR
			for _, have := range s.rrs[name] {
				c := dns.Copy(rr)
				c.Header().Class = dns.ClassINET
				c.Header().Ttl = have.Header().Ttl
				if !dns.IsDuplicate(have, c) {
					keep = append(keep, have)
				}
			}
			s.rrs[name] = keep
		default:
			s.rrs[name] = append(s.rrs[name], dns.Copy(rr))
		}
	}
	s.updates++
}

// Resolver returns a Go resolver that asks this server, for code that
// takes a *net.Resolver (the reverse-name check of posted reports).
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}
