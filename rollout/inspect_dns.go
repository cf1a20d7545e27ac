package rollout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// maxCNAMEHops bounds how many CNAMEs a lookup follows.
const maxCNAMEHops = 8

// maxAnswerRRs bounds how many records of one answer are used.
const maxAnswerRRs = 64

// errNoServer is returned when no resolver is configured or found.
var errNoServer = errors.New("rollout: no dns server configured")

// resolverAddr returns the DNS server to query: Inspector.Resolver or the
// first nameserver of /etc/resolv.conf.
func (in *Inspector) resolverAddr() (string, error) {
	if in.Resolver != "" {
		return in.Resolver, nil
	}
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return "", fmt.Errorf("reading /etc/resolv.conf: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return "", errNoServer
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port), nil
}

// exchange sends one recursive query over UDP and repeats it over TCP
// when the answer is truncated.
func (in *Inspector) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	server, err := in.resolverAddr()
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	c := &dns.Client{Net: "udp", Timeout: in.timeout()}
	r, _, err := c.ExchangeContext(ctx, m, server)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server)
	}
	if err != nil {
		return nil, fmt.Errorf("querying %s %s at %s: %w", name, dns.TypeToString[qtype], server, err)
	}
	return r, nil
}

// lookup returns the records of type qtype at name, following CNAMEs (in
// the answer or by asking again), and the names it was sent on to. A name
// that does not exist or has no such records gives no records and no
// error; other answer codes are errors.
func (in *Inspector) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, []string, error) {
	target := dns.Fqdn(name)
	var chain []string
	for hops := 0; hops <= maxCNAMEHops; {
		r, err := in.exchange(ctx, target, qtype)
		if err != nil {
			return nil, chain, err
		}
		switch r.Rcode {
		case dns.RcodeSuccess:
		case dns.RcodeNameError:
			return nil, chain, nil
		default:
			return nil, chain, fmt.Errorf("querying %s %s: answer %s", target, dns.TypeToString[qtype], dns.RcodeToString[r.Rcode])
		}
		answer := r.Answer
		if len(answer) > maxAnswerRRs {
			answer = answer[:maxAnswerRRs]
		}
		moved := false
		for hops <= maxCNAMEHops {
			var found []dns.RR
			next := ""
			for _, rr := range answer {
				h := rr.Header()
				if !strings.EqualFold(h.Name, target) {
					continue
				}
				if h.Rrtype == qtype {
					found = append(found, rr)
				} else if cn, ok := rr.(*dns.CNAME); ok && next == "" {
					next = cn.Target
				}
			}
			if len(found) > 0 {
				return found, chain, nil
			}
			if next == "" {
				break
			}
			target = dns.Fqdn(next)
			chain = append(chain, strings.TrimSuffix(target, "."))
			hops++
			moved = true
		}
		if !moved {
			return nil, chain, nil
		}
	}
	return nil, chain, fmt.Errorf("looking up %s: more than %d cnames", name, maxCNAMEHops)
}

// lookupTXT returns the TXT values at name, the strings of each record
// joined without spaces (RFC 8461 §3.1, RFC 8460 §3).
func (in *Inspector) lookupTXT(ctx context.Context, name string) ([]string, []string, error) {
	rrs, chain, err := in.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, chain, err
	}
	var out []string
	for _, rr := range rrs {
		t, ok := rr.(*dns.TXT)
		if !ok {
			continue
		}
		var b strings.Builder
		for _, s := range t.Txt {
			b.WriteString(unescapeTXT(s))
		}
		out = append(out, b.String())
	}
	return out, chain, nil
}

// unescapeTXT undoes the presentation escapes miekg/dns applies to TXT
// strings (\" \\ and \DDD), giving back the bytes on the wire.
func unescapeTXT(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			if v, err := strconv.Atoi(s[i+1 : i+4]); err == nil && v < 256 {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

// mxHost is one MX record.
type mxHost struct {
	host string
	pref uint16
}

// lookupMX returns the MX hosts of domain by preference, without the
// trailing dot; a null MX (RFC 7505) gives none.
func (in *Inspector) lookupMX(ctx context.Context, domain string) ([]mxHost, error) {
	rrs, _, err := in.lookup(ctx, domain, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []mxHost
	for _, rr := range rrs {
		mx, ok := rr.(*dns.MX)
		if !ok || mx.Mx == "." {
			continue
		}
		out = append(out, mxHost{host: strings.ToLower(strings.TrimSuffix(mx.Mx, ".")), pref: mx.Preference})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].pref != out[j].pref {
			return out[i].pref < out[j].pref
		}
		return out[i].host < out[j].host
	})
	return out, nil
}

// lookupAddrs resolves host to its IPv4 and IPv6 addresses through the
// configured resolver, so the policy fetch uses the same DNS view as the
// record checks.
func (in *Inspector) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	var errs []error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, _, err := in.lookup(ctx, host, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			var ip net.IP
			switch v := rr.(type) {
			case *dns.A:
				ip = v.A
			case *dns.AAAA:
				ip = v.AAAA
			}
			if a, ok := netip.AddrFromSlice(ip); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("resolving %s: %w", host, errNoAddress)
	}
	return addrs, nil
}

// errNoAddress is returned when the policy host has no A or AAAA record.
var errNoAddress = errors.New("rollout: host has no address")

// checkRecord looks up _mta-sts.<domain> (RFC 8461 §3.1).
func (in *Inspector) checkRecord(ctx context.Context, res *CheckResult) {
	rc := &res.Record
	txts, chain, err := in.lookupTXT(ctx, rc.Name)
	rc.CNAME = chain
	fixPublish := fmt.Sprintf("serve the policy at %s, then publish %s. IN TXT \"v=STSv1; id=%s\"", res.Policy.URL, rc.Name, NewID(res.CheckedAt))
	if err != nil {
		rc.Error = err.Error()
		res.add(CodeRecordMissing, SeverityError, "the _mta-sts record could not be looked up: "+err.Error(), "make sure the name servers of "+res.Domain+" answer for "+rc.Name)
		return
	}
	for _, t := range txts {
		if IsSTSRecord(t) {
			rc.Found = append(rc.Found, t)
		}
	}
	switch len(rc.Found) {
	case 0:
		res.add(CodeRecordMissing, SeverityError, "no v=STSv1 TXT record at "+rc.Name+": senders do not look for a policy", fixPublish)
		return
	case 1:
	default:
		res.add(CodeRecordMultiple, SeverityError, fmt.Sprintf("%d v=STSv1 TXT records at %s: senders ignore them all", len(rc.Found), rc.Name), "delete all but one v=STSv1 record at "+rc.Name)
		return
	}
	r, err := ParseRecord(rc.Found[0])
	if err != nil {
		rc.Error = err.Error()
		res.add(CodeRecordInvalid, SeverityError, "the _mta-sts record is not valid: "+err.Error(), fmt.Sprintf("publish %s. IN TXT \"v=STSv1; id=%s\"", rc.Name, NewID(res.CheckedAt)))
		return
	}
	rc.Valid = true
	rc.ID = r.ID
}

// checkMX looks up the MX records and compares them with the policy's mx
// list: every MX must match a pattern (RFC 8461 §4.1), and a pattern
// that matches no MX is pointless or a typo.
func (in *Inspector) checkMX(ctx context.Context, res *CheckResult) {
	hosts, err := in.lookupMX(ctx, res.Domain)
	if err != nil {
		res.Notes = append(res.Notes, "the MX records could not be looked up: "+err.Error())
		return
	}
	if len(hosts) == 0 {
		res.add(CodeMXMissing, SeverityError, res.Domain+" has no MX records (or a null MX): MTA-STS protects delivery to MX hosts, there are none",
			"publish the MX records of "+res.Domain+", then the policy's mx list to match them")
	}
	pol, ok := res.Policy.Policy()
	compare := ok && pol.Mode != ModeNone
	for _, h := range hosts {
		c := MXCheck{Host: h.host, Preference: h.pref}
		if compare {
			c.Pattern, c.InPolicy = pol.Matches(h.host)
			if !c.InPolicy {
				res.add(CodeMXNotInPolicy, SeverityError, "MX "+h.host+" is not in the policy's mx list: in enforce, senders would not deliver to it", "add mx: "+h.host+" to the policy and bump the id")
			}
		}
		res.MX = append(res.MX, c)
	}
	if !compare {
		return
	}
	for _, p := range pol.MX {
		used := false
		for _, h := range hosts {
			used = used || MatchMX(p, h.host)
		}
		if !used {
			res.add(CodePolicyMXUnused, SeverityWarning, "the policy's mx: "+p+" matches none of the MX records", "remove mx: "+p+" from the policy and bump the id, unless it is for a planned MX")
		}
	}
}

// checkTLSRPT looks up _smtp._tls.<domain> (RFC 8460 §3).
func (in *Inspector) checkTLSRPT(ctx context.Context, res *CheckResult) {
	tc := &res.TLSRPT
	fix := fmt.Sprintf("publish %s. IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@%s\" (an address tlsrpt reads)", tc.Name, res.Domain)
	txts, _, err := in.lookupTXT(ctx, tc.Name)
	if err != nil {
		tc.Error = err.Error()
		res.add(CodeTLSRPTMissing, SeverityWarning, "the _smtp._tls record could not be looked up: "+err.Error(), "make sure the name servers of "+res.Domain+" answer for "+tc.Name)
		return
	}
	for _, t := range txts {
		if IsTLSRPTRecord(t) {
			tc.Found = append(tc.Found, t)
		}
	}
	switch len(tc.Found) {
	case 0:
		res.add(CodeTLSRPTMissing, SeverityWarning, "no v=TLSRPTv1 TXT record at "+tc.Name+": senders send no TLS reports, so there is no evidence for enforce", fix)
		return
	case 1:
	default:
		res.add(CodeTLSRPTInvalid, SeverityWarning, fmt.Sprintf("%d v=TLSRPTv1 TXT records at %s: senders ignore them all", len(tc.Found), tc.Name), "delete all but one v=TLSRPTv1 record at "+tc.Name)
		return
	}
	r, err := ParseTLSRPTRecord(tc.Found[0])
	if err != nil {
		tc.Error = err.Error()
		res.add(CodeTLSRPTInvalid, SeverityWarning, "the _smtp._tls record is not valid: "+err.Error(), fix)
		return
	}
	tc.Valid = true
	tc.RUA = r.RUA
}
