package dnsserver

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// update sends one signed update replacing the TXT records at name.
func update(t *testing.T, s *Server, zone, name, value, secret string) int {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
	m.Insert([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{value}}})
	m.SetTsig(s.KeyName, dns.HmacSHA256, 300, timeSigned())
	c := &dns.Client{Net: "tcp", TsigSecret: map[string]string{s.KeyName: secret}}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil && r == nil {
		t.Fatalf("update: %v", err)
	}
	return r.Rcode
}

func TestUpdateZones(t *testing.T) {
	secret := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	s, err := Start("127.0.0.1", "example.com", "k", secret)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rc := update(t, s, "example.net", "_mta-sts.example.net", "v=STSv1; id=1", secret); rc != dns.RcodeNotZone {
		t.Fatalf("update of a zone not served: rcode %s", dns.RcodeToString[rc])
	}
	s.AddZone("example.net")
	for _, v := range []string{"v=STSv1; id=1", "v=STSv1; id=2"} {
		if rc := update(t, s, "example.net", "_mta-sts.example.net", v, secret); rc != dns.RcodeSuccess {
			t.Fatalf("update: rcode %s", dns.RcodeToString[rc])
		}
	}
	wrong := base64.StdEncoding.EncodeToString([]byte("another secret, another secret!!"))
	if rc := update(t, s, "example.net", "_mta-sts.example.net", "v=STSv1; id=3", wrong); rc != dns.RcodeNotAuth {
		t.Fatalf("update with the wrong secret: rcode %s", dns.RcodeToString[rc])
	}
	txt, err := s.Resolver().LookupTXT(context.Background(), "_mta-sts.example.net")
	if err != nil || len(txt) != 1 || txt[0] != "v=STSv1; id=2" {
		t.Fatalf("LookupTXT = %q, %v; want the one record of the last signed update", txt, err)
	}
	if applied, refused := s.Updates(); applied != 2 || refused != 2 {
		t.Fatalf("Updates() = %d, %d; want 2, 2", applied, refused)
	}
}

func timeSigned() int64 { return time.Now().Unix() } // the server checks it against its own clock
