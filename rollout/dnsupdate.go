package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSUpdate publishes TXT records by RFC 2136 dynamic update, signed with
// TSIG (RFC 8945), to the primary server of the zone: BIND, Knot and
// PowerDNS accept it with a key allowed to update the name.
type DNSUpdate struct {
	// Server is the primary's host:port.
	Server string
	// Zone is the zone the record lives in (e.g. example.com); "" means
	// the domain of the record is its own zone.
	Zone string
	// KeyName, Algorithm and Secret are the TSIG key: the name as the
	// server knows it, an algorithm such as hmac-sha256 (the default),
	// the secret in base64. Without KeyName the update is unsigned,
	// which only a server allowing updates by address accepts.
	KeyName   string
	Algorithm string
	Secret    string
	// TTL of the record; 0 means 300 seconds, so a later change spreads
	// quickly.
	TTL uint32
	// Timeout bounds the exchange; 0 means 10 seconds.
	Timeout time.Duration
}

// Method implements RecordPublisher.
func (u *DNSUpdate) Method() string { return RecordRFC2136 }

// PublishTXT replaces the TXT RRset at name with value in one update
// message: the delete and the insert are applied atomically (RFC 2136
// §3.4), so no resolver sees the name without a record or with two.
func (u *DNSUpdate) PublishTXT(ctx context.Context, name, value string) error {
	fqdn := dns.Fqdn(strings.ToLower(name))
	zone := dns.Fqdn(strings.ToLower(zoneOf(u.Zone, fqdn)))
	if _, ok := relativeName(fqdn, zone); !ok {
		return fmt.Errorf("updating %s: %w: the name is not in zone %s", fqdn, ErrPublish, zone)
	}
	ttl := u.TTL
	if ttl == 0 {
		ttl = 300
	}
	rr, err := dns.NewRR(fmt.Sprintf("%s %d IN TXT %s", fqdn, ttl, quoteTXT(value)))
	if err != nil {
		return fmt.Errorf("updating %s: building the record: %w", fqdn, err)
	}
	m := new(dns.Msg)
	m.SetUpdate(zone)
	m.RemoveRRset([]dns.RR{&dns.TXT{Hdr: dns.RR_Header{Name: fqdn, Rrtype: dns.TypeTXT, Class: dns.ClassINET}}})
	m.Insert([]dns.RR{rr})
	timeout := u.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	c := &dns.Client{Net: "tcp", Timeout: timeout}
	if u.KeyName != "" {
		alg := dns.Fqdn(strings.ToLower(u.Algorithm))
		if u.Algorithm == "" {
			alg = dns.HmacSHA256
		}
		key := dns.Fqdn(strings.ToLower(u.KeyName))
		c.TsigSecret = map[string]string{key: u.Secret}
		m.SetTsig(key, alg, 300, time.Now().Unix())
	}
	r, _, err := c.ExchangeContext(ctx, m, u.Server)
	if err != nil {
		return fmt.Errorf("updating %s at %s: %w: %w", fqdn, u.Server, ErrPublish, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("updating %s at %s: %w: the server answered %s", fqdn, u.Server, ErrPublish, dns.RcodeToString[r.Rcode])
	}
	return nil
}
