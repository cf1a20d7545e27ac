// Package dnsserver is a small DNS server on loopback for the demo and the
// tests: it answers queries from the records it holds, like a recursive
// resolver would (recursion available, no referrals), and applies RFC 2136
// dynamic updates signed with a TSIG key, as a primary such as BIND does.
// It is not a name server for the Internet: one zone takes updates, every
// name it holds is answered, the rest is NXDOMAIN.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Server is a running server.
type Server struct {
	// Addr is the host:port it serves on, UDP and TCP.
	Addr string
	// Zone is the zone updates are accepted for (FQDN); AddZone adds more.
	Zone string
	// KeyName and Secret are the TSIG key updates must be signed with
	// (hmac-sha256, Secret in base64).
	KeyName string
	Secret  string

	mu      sync.Mutex
	zones   map[string]bool
	rrs     map[string][]dns.RR // by lower-case FQDN
	updates int
	refused int
	servers []*dns.Server
}

// Start serves zone on host (an IP address; a free port is chosen) until
// Close. Updates must be signed with keyName/secret.
func Start(host, zone, keyName, secret string) (*Server, error) {
	s := &Server{Zone: dns.Fqdn(strings.ToLower(zone)), KeyName: dns.Fqdn(keyName), Secret: secret, rrs: map[string][]dns.RR{}}
	s.zones = map[string]bool{s.Zone: true}
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp", net.JoinHostPort(host, "0")); err != nil {
			return nil, fmt.Errorf("dns server: listening on udp: %w", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			return nil, fmt.Errorf("dns server: listening on tcp: %w", err)
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
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		s.servers = append(s.servers, srv)
	}
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error {
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown())
	}
	return errors.Join(errs...)
}

// AddZone accepts updates for zone too.
func (s *Server) AddZone(zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[dns.Fqdn(strings.ToLower(zone))] = true
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
func (s *Server) Add(lines ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			return fmt.Errorf("dns server: record %q: %w", l, err)
		}
		if rr == nil {
			return fmt.Errorf("dns server: record %q: empty", l)
		}
		k := strings.ToLower(rr.Header().Name)
		s.rrs[k] = append(s.rrs[k], rr)
	}
	return nil
}

// SetTXT replaces the TXT records at name with one holding value, as an
// operator editing the zone by hand would.
func (s *Server) SetTXT(name, value string) error {
	s.mu.Lock()
	s.deleteRRset(dns.Fqdn(strings.ToLower(name)), dns.TypeTXT)
	s.mu.Unlock()
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 300}, Txt: splitTXT(value)}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := strings.ToLower(rr.Hdr.Name)
	s.rrs[k] = append(s.rrs[k], rr)
	return nil
}

// splitTXT cuts value into character-strings of at most 255 octets.
func splitTXT(value string) []string {
	var out []string
	for len(value) > 255 {
		out = append(out, value[:255])
		value = value[255:]
	}
	return append(out, value)
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
		_ = w.WriteMsg(m)
		return
	}
	m.RecursionAvailable = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
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
	_ = w.WriteMsg(m)
}

// update applies an RFC 2136 update: only signed with the key, only for
// a zone it accepts; the prerequisite section is not supported (tlsrpt sends none).
func (s *Server) update(w dns.ResponseWriter, req *dns.Msg, m *dns.Msg) {
	tsig := req.IsTsig()
	if tsig == nil || w.TsigStatus() != nil || !strings.EqualFold(tsig.Hdr.Name, s.KeyName) {
		s.refused++
		m.Rcode = dns.RcodeNotAuth
		return
	}
	m.SetTsig(tsig.Hdr.Name, tsig.Algorithm, 300, int64(tsig.TimeSigned))
	if len(req.Question) != 1 || !s.zones[strings.ToLower(req.Question[0].Name)] || len(req.Answer) > 0 {
		s.refused++
		m.Rcode = dns.RcodeNotZone
		return
	}
	for _, rr := range req.Ns {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !dns.IsSubDomain(strings.ToLower(req.Question[0].Name), name) {
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

// Resolver returns a Go resolver that asks this server.
func (s *Server) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, s.Addr)
	}}
}
