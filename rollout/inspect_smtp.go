package rollout

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Limits of the STARTTLS probe. A peer is untrusted: every read is
// bounded in size and in count, and every connection by the timeout.
const (
	// smtpMaxLine bounds one reply line. RFC 5321 §4.5.3.1.5 allows 512
	// octets; some servers send longer banners, none this long.
	smtpMaxLine = 2048
	// smtpMaxLines bounds the lines of one reply (the EHLO capabilities).
	smtpMaxLines = 64
	// probeMaxHosts and probeMaxAddrs bound how many MX hosts and how
	// many addresses of each are probed.
	probeMaxHosts = 10
	probeMaxAddrs = 4
	// probeConcurrency is how many addresses are probed at once.
	probeConcurrency = 4
	// probeSteps is how many Inspector timeouts the whole probe may take:
	// the address lookups, then the connections in turns of
	// probeConcurrency. Addresses still waiting when it runs out are
	// reported as not probed.
	probeSteps = 3
	// defaultSMTPPort is where senders deliver (RFC 5321 §4.5.4).
	defaultSMTPPort = 25
	// expiringDays is when a certificate that expires becomes a warning.
	expiringDays = 30
	// expiringSlackDays is added to the enforce max_age for the error.
	expiringSlackDays = 7
)

// SMTPProbe is what the STARTTLS probe found at one address of an MX
// host: the receiving side's own evidence, where reports are silent.
type SMTPProbe struct {
	// Address is the IP address and port connected to.
	Address string `json:"address"`
	// Reachable is set when the connection was made and a banner read.
	Reachable bool   `json:"reachable"`
	Banner    string `json:"banner,omitempty"`
	// STARTTLS is set when the EHLO answer offers STARTTLS.
	STARTTLS    bool   `json:"starttls"`
	TLSVersion  string `json:"tls_version,omitempty"`
	CipherSuite string `json:"cipher_suite,omitempty"`
	// Certificate is the server's certificate, when a handshake ended.
	Certificate *CertificateFacts `json:"certificate,omitempty"`
	// Verified is set when the certificate verifies as an RFC 8461 sender
	// verifies it: Web PKI chain, the MX host name, not expired.
	Verified    bool   `json:"verified"`
	VerifyError string `json:"verify_error,omitempty"`
	// Error is why the probe stopped before the TLS handshake ended.
	Error string `json:"error,omitempty"`
	// InPolicy is the MX host's MXCheck.InPolicy (its name matches the
	// policy's mx patterns), repeated so a probe taken as evidence says
	// it.
	InPolicy bool `json:"in_policy"`
}

// CertificateFacts are the facts of a server certificate a person checks.
type CertificateFacts struct {
	Subject  string    `json:"subject"`
	SANs     []string  `json:"sans"`
	Issuer   string    `json:"issuer"`
	NotAfter time.Time `json:"not_after"`
	// DaysLeft is the number of whole days until NotAfter; once it
	// passed, minus the whole days since.
	DaysLeft int `json:"days_left"`
}

func (in *Inspector) now() time.Time {
	if in.Now != nil {
		return in.Now().UTC()
	}
	return time.Now().UTC()
}

func (in *Inspector) smtpPort() string {
	if in.SMTPPort > 0 {
		return strconv.Itoa(in.SMTPPort)
	}
	return strconv.Itoa(defaultSMTPPort)
}

// probeMX connects to every address of every MX host, as a sender that
// applies the policy would, then judges what it found. The MX records
// are those checkMX put in res.
func (in *Inspector) probeMX(ctx context.Context, res *CheckResult) {
	if in.SkipSMTP || len(res.MX) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, probeSteps*in.timeout())
	defer cancel()
	sem := make(chan struct{}, probeConcurrency)
	var wg sync.WaitGroup
	for i := range res.MX {
		m := &res.MX[i]
		m.Addresses = []SMTPProbe{}
		if i >= probeMaxHosts {
			m.ProbeError = fmt.Sprintf("not probed: only the first %d MX hosts are", probeMaxHosts)
			continue
		}
		wg.Go(func() { in.probeHost(ctx, m, sem) })
	}
	wg.Wait()
	for i := range res.MX {
		for j := range res.MX[i].Addresses {
			res.MX[i].Addresses[j].InPolicy = res.MX[i].InPolicy
		}
	}
	in.judgeProbes(res)
}

// probeHost resolves one MX host, notes its TLSA records and probes its
// addresses, at most probeConcurrency at a time across all hosts.
func (in *Inspector) probeHost(ctx context.Context, m *MXCheck, sem chan struct{}) {
	var wg sync.WaitGroup
	wg.Go(func() { m.TLSA = in.lookupTLSA(ctx, m.Host) })
	defer wg.Wait()
	addrs, err := in.lookupAddrs(ctx, m.Host)
	if err != nil {
		if errors.Is(err, errNoAddress) {
			m.ProbeError = "not probed: no A or AAAA record"
		} else {
			m.ProbeError = "not probed: " + err.Error()
		}
		return
	}
	if len(addrs) > probeMaxAddrs {
		m.ProbeError = fmt.Sprintf("only the first %d of %d addresses probed", probeMaxAddrs, len(addrs))
		addrs = addrs[:probeMaxAddrs]
	}
	m.Addresses = make([]SMTPProbe, len(addrs))
	for i, a := range addrs {
		p := &m.Addresses[i]
		p.Address = net.JoinHostPort(a.String(), in.smtpPort())
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				in.probeAddr(ctx, m.Host, a, p)
			case <-ctx.Done():
				p.Error = "not probed: the probe's time limit ran out"
			}
		})
	}
}

// lookupTLSA returns the TLSA records at _25._tcp.<host> (RFC 7672 §2.2)
// as "usage selector type data". DANE is noted, not judged: the verdict
// is about MTA-STS.
func (in *Inspector) lookupTLSA(ctx context.Context, host string) []string {
	rrs, _, err := in.lookup(ctx, "_25._tcp."+host, dns.TypeTLSA)
	if err != nil {
		return nil
	}
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TLSA); ok {
			out = append(out, fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, t.Certificate))
		}
	}
	return out
}

// probeAddr runs one SMTP session with addr: banner, EHLO, STARTTLS, the
// handshake, QUIT. It never sends MAIL FROM: the probe delivers nothing.
// The whole session shares one deadline: the timeout, and no later than
// the probe's.
func (in *Inspector) probeAddr(ctx context.Context, host string, addr netip.Addr, p *SMTPProbe) {
	ctx, cancel := context.WithTimeout(ctx, in.timeout())
	defer cancel()
	d := &net.Dialer{Control: in.guard}
	conn, err := d.DialContext(ctx, "tcp", p.Address)
	if err != nil {
		p.Error = probeErr("connecting", err)
		return
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		p.Error = probeErr("connecting", err)
		return
	}
	// A cancelled parent ends the session at once, not at the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	r := bufio.NewReaderSize(conn, smtpMaxLine)
	banner, err := readReply(r)
	if err != nil {
		p.Error = probeErr("reading the banner", err)
		return
	}
	p.Reachable = true
	p.Banner = banner.lines[0]
	if banner.code != 220 {
		p.Error = "the banner is " + banner.String() + ", not 220"
		return
	}
	ehlo, err := command(conn, r, "EHLO "+in.heloName())
	if err != nil {
		p.Error = probeErr("EHLO", err)
		return
	}
	if ehlo.code != 250 {
		p.Error = "EHLO answered " + ehlo.String()
		quit(conn, r)
		return
	}
	for _, l := range ehlo.lines[1:] {
		kw, _, _ := strings.Cut(l, " ")
		p.STARTTLS = p.STARTTLS || strings.EqualFold(kw, "STARTTLS")
	}
	if !p.STARTTLS {
		quit(conn, r)
		return
	}
	st, err := command(conn, r, "STARTTLS")
	if err != nil {
		p.Error = probeErr("STARTTLS", err)
		return
	}
	if st.code != 220 {
		p.Error = "STARTTLS answered " + st.String()
		quit(conn, r)
		return
	}
	// Bytes sent after the 220 before the handshake would be taken as
	// protected later (the STARTTLS injection of CVE-2011-0411).
	if r.Buffered() > 0 {
		p.Error = "the server sent data after its STARTTLS answer, before the handshake"
		return
	}
	// The chain is verified below, after the handshake, so that the facts
	// of an invalid certificate are read too; the session ends with QUIT
	// and carries nothing either way.
	tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true, Time: in.now, MinVersion: tls.VersionTLS12})
	if err := tc.HandshakeContext(ctx); err != nil {
		p.Error = probeErr("TLS handshake", err)
		return
	}
	cs := tc.ConnectionState()
	p.TLSVersion = tls.VersionName(cs.Version)
	p.CipherSuite = tls.CipherSuiteName(cs.CipherSuite)
	if len(cs.PeerCertificates) > 0 {
		p.Certificate, p.Verified, p.VerifyError = in.verifyMX(host, cs.PeerCertificates)
	}
	quit(tc, bufio.NewReaderSize(tc, smtpMaxLine))
}

// verifyMX verifies the chain as RFC 8461 §4.2 asks: a Web PKI chain to
// the inspector's roots, valid for the MX host name, at the inspector's
// time.
func (in *Inspector) verifyMX(host string, chain []*x509.Certificate) (*CertificateFacts, bool, string) {
	leaf := chain[0]
	now := in.now()
	f := certFacts(leaf, now)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: in.RootCAs, Intermediates: inter, DNSName: host, CurrentTime: now})
	if err != nil {
		return f, false, err.Error()
	}
	return f, true, ""
}

// certFacts returns the facts of a certificate as seen at now.
func certFacts(c *x509.Certificate, now time.Time) *CertificateFacts {
	f := &CertificateFacts{Subject: c.Subject.String(), SANs: append([]string{}, c.DNSNames...),
		Issuer: c.Issuer.String(), NotAfter: c.NotAfter.UTC(),
		DaysLeft: int(c.NotAfter.Sub(now).Hours() / 24)}
	for _, ip := range c.IPAddresses {
		f.SANs = append(f.SANs, ip.String())
	}
	return f
}

func (in *Inspector) heloName() string {
	if in.HeloName != "" {
		return in.HeloName
	}
	return "tlsrpt-check.invalid"
}

// probeErr names the step that failed and says "timed out" for timeouts.
func probeErr(step string, err error) string {
	var refused *refusedAddrError
	switch {
	case errors.As(err, &refused):
		return refused.Error()
	case isTimeout(err):
		return step + ": timed out"
	}
	return step + ": " + err.Error()
}

// expiryLimits returns after how many days left an expiring certificate
// is a warning and an error: a warning within 30 days; an error within
// the enforce max_age plus 7 days (the policy's when it is in enforce,
// else the usual enforce value), because senders hold an enforce policy
// that long. The error limit is capped at the warning limit, so a
// year-long max_age does not turn every certificate into an error.
func expiryLimits(res *CheckResult) (warn, fail int) {
	maxAge := DefaultMaxAgeEnforce
	if p, ok := res.Policy.Policy(); ok && p.Mode == ModeEnforce {
		maxAge = p.MaxAge
	}
	fail = int(maxAge/86400) + expiringSlackDays
	return expiringDays, min(fail, expiringDays)
}

// judgeProbes turns the probes into problems, one per address, in the
// order of the MX records.
func (in *Inspector) judgeProbes(res *CheckResult) {
	warn, fail := expiryLimits(res)
	for _, m := range res.MX {
		for _, p := range m.Addresses {
			at := "MX " + m.Host + " at " + p.Address
			switch {
			case !p.Reachable && strings.HasPrefix(p.Error, "refusing"):
				res.addMX(CodeMXUnreachable, SeverityWarning, m.Host, p.Address, at+" was not probed: "+p.Error,
					"nothing to do if "+m.Host+" is public; for a test setup pass --allow-private")
			case !p.Reachable:
				res.addMX(CodeMXUnreachable, SeverityWarning, m.Host, p.Address, at+" did not answer SMTP from here ("+p.Error+"): unknown, many networks block port 25",
					"probe from a host that may connect to port 25, or check that "+m.Host+" accepts connections on port 25")
			case !p.STARTTLS && p.Error == "":
				res.addMX(CodeMXStartTLSMissing, SeverityError, m.Host, p.Address, at+" does not offer STARTTLS: in enforce, senders would not deliver to it",
					"enable STARTTLS on "+m.Host+" with a certificate for "+m.Host+" (Postfix: smtpd_tls_security_level = may, smtpd_tls_chain_files)")
			case p.STARTTLS && p.Certificate == nil:
				res.addMX(CodeMXStartTLSMissing, SeverityError, m.Host, p.Address, at+" offers STARTTLS but TLS does not start ("+p.Error+"): in enforce, senders would not deliver to it",
					"check the TLS setup of "+m.Host+" (protocols TLS 1.2 or later, a certificate and key that match)")
			case !p.Reachable || p.Certificate == nil:
				res.addMX(CodeMXUnreachable, SeverityWarning, m.Host, p.Address, at+" answered but the session failed: "+p.Error,
					"check that "+m.Host+" accepts SMTP sessions on port 25")
			case !p.Verified:
				res.addMX(CodeMXCertificateInvalid, SeverityError, m.Host, p.Address, at+" presents a certificate senders reject: "+p.VerifyError,
					"install a certificate for "+m.Host+" from a public CA (e.g. Let's Encrypt), with its chain, and renew it automatically")
			case p.Certificate.DaysLeft < fail:
				res.addMX(CodeMXCertificateExpiring, SeverityError, m.Host, p.Address,
					fmt.Sprintf("%s presents a certificate that expires on %s, in %d days: under the enforce max_age plus %d days (%d days)", at, p.Certificate.NotAfter.Format(time.DateOnly), p.Certificate.DaysLeft, expiringSlackDays, fail),
					"renew the certificate of "+m.Host+" now, and check that renewal runs automatically")
			case p.Certificate.DaysLeft < warn:
				res.addMX(CodeMXCertificateExpiring, SeverityWarning, m.Host, p.Address,
					fmt.Sprintf("%s presents a certificate that expires on %s, in %d days", at, p.Certificate.NotAfter.Format(time.DateOnly), p.Certificate.DaysLeft),
					"check that the certificate of "+m.Host+" is renewed automatically")
			}
		}
	}
}
