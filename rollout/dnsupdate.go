package rollout

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
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
	key := ""
	if u.KeyName != "" {
		alg := dns.Fqdn(strings.ToLower(u.Algorithm))
		if u.Algorithm == "" {
			alg = dns.HmacSHA256
		}
		key = dns.Fqdn(strings.ToLower(u.KeyName))
		if _, err := base64.StdEncoding.DecodeString(u.Secret); err != nil || u.Secret == "" {
			return fmt.Errorf("updating %s: %w: the secret of TSIG key %s is not base64", fqdn, ErrPublish, key)
		}
		c.TsigSecret = map[string]string{key: u.Secret}
		m.SetTsig(key, alg, 300, time.Now().Unix())
	}
	r, _, err := c.ExchangeContext(ctx, m, u.Server)
	switch {
	case r != nil && r.Rcode != dns.RcodeSuccess:
		// A refusal is often unsigned or signed with an empty MAC (a TSIG
		// error, RFC 8945 §5.3), which miekg/dns reports as an error of its
		// own; the answer's code and TSIG error say what went wrong.
		return fmt.Errorf("updating %s at %s: %w: %s", fqdn, u.Server, ErrPublish, refusal(r, zone, key))
	case err != nil && r != nil:
		return fmt.Errorf("updating %s at %s: %w: the answer's TSIG signature did not verify (the update may have been applied): %w", fqdn, u.Server, ErrPublish, err)
	case err != nil:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("updating %s at %s: %w: no answer within %s", fqdn, u.Server, ErrPublish, timeout)
		}
		return fmt.Errorf("updating %s at %s: %w: the server cannot be reached: %w", fqdn, u.Server, ErrPublish, err)
	}
	return nil
}

// refusal explains an answer other than NOERROR to an update: the code,
// the TSIG error when the server gives one (RFC 8945 §5.2: NOTAUTH with
// BADSIG, BADKEY or BADTIME), and what usually causes it.
func refusal(r *dns.Msg, zone, key string) string {
	if t := r.IsTsig(); t != nil && t.Error != dns.RcodeSuccess {
		switch t.Error {
		case dns.RcodeBadSig:
			return fmt.Sprintf("the server rejected the signature (BADSIG): the secret of TSIG key %s differs from the server's", key)
		case dns.RcodeBadKey:
			return fmt.Sprintf("the server does not know TSIG key %s (BADKEY): check the key name and algorithm", key)
		case dns.RcodeBadTime:
			return "the server rejected the signature's time (BADTIME): this machine's clock and the server's differ by more than 5 minutes"
		default:
			return fmt.Sprintf("the server answered %s, TSIG error %d", dns.RcodeToString[r.Rcode], t.Error)
		}
	}
	switch r.Rcode {
	case dns.RcodeNotAuth:
		return fmt.Sprintf("the server is not authoritative for zone %s (NOTAUTH): check the zone and that the server is its primary", zone)
	case dns.RcodeRefused:
		if key == "" {
			return fmt.Sprintf("the server refused the unsigned update to zone %s (REFUSED): set a TSIG key", zone)
		}
		return fmt.Sprintf("the server refused the update to zone %s (REFUSED): the zone does not let TSIG key %s update this name (allow-update or update-policy)", zone, key)
	case dns.RcodeNotZone:
		return fmt.Sprintf("the name is not in zone %s (NOTZONE)", zone)
	case dns.RcodeServerFailure:
		return fmt.Sprintf("the server failed to apply the update to zone %s (SERVFAIL): see its log", zone)
	}
	return "the server answered " + dns.RcodeToString[r.Rcode]
}
