package rollout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
)

// nonPublic lists the ranges the policy fetch refuses unless AllowPrivate
// is set, beyond what netip.Addr's predicates cover: a dashboard user
// must not make the server connect into networks it can reach and the
// user cannot. The IPv6 part follows IANA's special-purpose address
// registry: every range not globally reachable, and every range whose
// addresses embed an IPv4 address the connection may end up at. It is
// never written.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network" (RFC 791)
	netip.MustParsePrefix("100.64.0.0/10"),  // CGNAT shared space (RFC 6598)
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments (RFC 6890)
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking (RFC 2544)
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("169.254.0.0/16"), // link-local, also covered below
	netip.MustParsePrefix("255.255.255.255/32"),

	netip.MustParsePrefix("::/96"),           // IPv4-compatible (RFC 4291 §2.5.5.1), with :: and ::1
	netip.MustParsePrefix("::ffff:0:0/96"),   // IPv4-mapped: unmapped and checked as IPv4 first
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (RFC 2765): embeds any IPv4
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64 (RFC 8215): embeds any IPv4
	netip.MustParsePrefix("100::/64"),        // discard-only (RFC 6666)
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments (RFC 2928)
	netip.MustParsePrefix("2001::/32"),       // Teredo (RFC 4380), inside the above: embeds any IPv4
	netip.MustParsePrefix("2001:db8::/32"),   // documentation (RFC 3849)
	netip.MustParsePrefix("2002::/16"),       // 6to4 (RFC 3056): embeds any IPv4
	netip.MustParsePrefix("3fff::/20"),       // documentation (RFC 9637)
	netip.MustParsePrefix("5f00::/16"),       // SRv6 SIDs (RFC 9602)
	netip.MustParsePrefix("fc00::/7"),        // unique local (RFC 4193)
	netip.MustParsePrefix("fec0::/10"),       // deprecated site-local
	netip.MustParsePrefix("fe80::/10"),       // link-local, also covered below
	netip.MustParsePrefix("ff00::/8"),        // multicast, also covered below
}

// nat64 is the well-known NAT64 prefix (RFC 6052 §2.1): 64:ff9b::a.b.c.d
// reaches a.b.c.d through the translator, so it is judged as a.b.c.d. A
// host on an IPv6-only network with DNS64 sees every public IPv4 server
// there; RFC 6052 §3.1 forbids private IPv4 behind this prefix, but an
// attacker's AAAA record is not bound by it, nor is every translator.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// IsPublicAddr reports whether the policy fetch may connect to a: not
// private (RFC 1918, ULA), loopback, link-local, unspecified, multicast,
// CGNAT or another special-purpose range; an IPv4 address mapped into
// IPv6 or behind the NAT64 prefix is judged as that IPv4 address.
func IsPublicAddr(a netip.Addr) bool {
	a = a.WithZone("")
	if a.Is4In6() {
		a = a.Unmap()
	}
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte(b[12:]))
	}
	if !a.IsValid() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// refusedAddrError is returned by the dial guard for a non-public address.
type refusedAddrError struct{ addr string }

func (e *refusedAddrError) Error() string {
	return "refusing to connect to non-public address " + e.addr
}

// guard is the dialer's Control hook: it sees the address the socket is
// about to connect to, after every resolution, so a name that resolves to
// a public address for a check and to a private one for the connection
// (DNS rebinding) is still refused.
func (in *Inspector) guard(network, address string, _ syscall.RawConn) error {
	if in.AllowPrivate {
		return nil
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("checking address %q: %w", address, err)
	}
	if !IsPublicAddr(ap.Addr()) {
		return &refusedAddrError{addr: ap.Addr().String()}
	}
	return nil
}

// fetchStep is how far a policy fetch got: where a failure happened, so
// that the problem names the step and its fix, not a guess.
type fetchStep int32

const (
	stepDNS     fetchStep = iota // looking up mta-sts.<domain>
	stepConnect                  // connecting to its address on port 443
	stepTLS                      // the TLS handshake
	stepHTTP                     // the request and the answer
)

type stepKey struct{}

// reached records in ctx's step tracker (if any) that the fetch got to s.
func reached(ctx context.Context, s fetchStep) {
	if p, ok := ctx.Value(stepKey{}).(*atomic.Int32); ok {
		p.Store(int32(s))
	}
}

// dialContext resolves the host through the configured resolver and
// connects to its addresses in turn, each connection passing guard.
func (in *Inspector) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	if in.httpsPort != "" {
		port = in.httpsPort
	}
	var ips []netip.Addr
	reached(ctx, stepDNS)
	if ip, perr := netip.ParseAddr(host); perr == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = in.lookupAddrs(ctx, host); err != nil {
		return nil, err
	}
	reached(ctx, stepConnect)
	d := &net.Dialer{Timeout: in.timeout(), Control: in.guard}
	var errs []error
	for _, ip := range ips {
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		if err == nil {
			reached(ctx, stepTLS)
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("dialing %s: %w", host, errors.Join(errs...))
}

// checkPolicy fetches the policy as RFC 8461 §3.3 tells senders to: HTTPS
// to mta-sts.<domain> only, a certificate valid for that name, 200 only,
// no redirects, text/plain, at most 64 KiB, within the timeout. It returns
// the body and whether one was read, for the id-not-changed check.
func (in *Inspector) checkPolicy(ctx context.Context, res *CheckResult) (string, bool) {
	pc := &res.Policy
	host := "mta-sts." + res.Domain
	ctx, cancel := context.WithTimeout(ctx, in.timeout())
	defer cancel()
	step := &atomic.Int32{}
	ctx = context.WithValue(ctx, stepKey{}, step)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err == nil {
				reached(ctx, stepHTTP)
			}
		},
	})

	// The transport dials in a goroutine of its own, which may finish
	// after Do returned on a timeout.
	var connected atomic.Pointer[string]
	transport := &http.Transport{
		Proxy: nil, // a proxy would bypass the address guard
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := in.dialContext(ctx, network, addr)
			if err == nil {
				a := c.RemoteAddr().String()
				connected.Store(&a)
			}
			return c, err
		},
		TLSClientConfig:        &tls.Config{RootCAs: in.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    in.timeout(),
		ResponseHeaderTimeout:  in.timeout(),
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport: transport,
		// RFC 8461 §3.3: senders do not follow redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       in.timeout(),
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pc.URL, nil)
	if err != nil {
		pc.Error = err.Error()
		res.add(CodePolicyUnreachable, SeverityError, "the policy URL is not valid: "+err.Error(), "")
		return "", false
	}
	req.Header.Set("User-Agent", "tlsrpt-check")
	resp, err := client.Do(req)
	if a := connected.Load(); a != nil {
		pc.Address = *a
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) && len(cv.UnverifiedCertificates) > 0 {
		pc.Certificate = certFacts(cv.UnverifiedCertificates[0], in.now())
	}
	if err != nil {
		pc.Error = err.Error()
		in.fetchFailed(res, host, fetchStep(step.Load()), err)
		return "", false
	}
	defer resp.Body.Close()
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		pc.Certificate = certFacts(resp.TLS.PeerCertificates[0], in.now())
	}
	pc.Status = resp.StatusCode
	pc.ContentType = resp.Header.Get("Content-Type")
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc := resp.Header.Get("Location")
		pc.Error = fmt.Sprintf("redirect %d to %q", resp.StatusCode, loc)
		res.add(CodePolicyRedirect, SeverityError, fmt.Sprintf("%s answers with a redirect (%d to %s): senders do not follow redirects", pc.URL, resp.StatusCode, loc), "serve the policy itself at "+pc.URL+" with status 200")
		return "", false
	}
	if resp.StatusCode != http.StatusOK {
		pc.Error = "HTTP status " + resp.Status
		res.add(CodePolicyUnreachable, SeverityError, fmt.Sprintf("%s answers with HTTP %s, not 200", pc.URL, resp.Status), "serve the policy file at "+pc.URL)
		return "", false
	}
	mt, _, err := mime.ParseMediaType(pc.ContentType)
	if err != nil || mt != "text/plain" {
		res.add(CodePolicyContentType, SeverityError, fmt.Sprintf("the policy is served as %q, not text/plain: senders reject it", pc.ContentType), "serve "+pc.URL+" with Content-Type: text/plain (nginx: default_type text/plain;)")
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		pc.Error = "reading the policy: " + err.Error()
		res.add(CodePolicyUnreachable, SeverityError, "reading the policy failed: "+err.Error(), "check the web server of "+host)
		return "", false
	}
	if len(b) > maxPolicySize {
		pc.Error = fmt.Sprintf("larger than %d bytes", maxPolicySize)
		res.add(CodePolicyTooLarge, SeverityError, fmt.Sprintf("the policy is larger than %d bytes: senders stop reading", maxPolicySize), "serve only the policy file (a few lines) at "+pc.URL)
		return "", false
	}
	pc.Body = string(b)
	p, err := ParsePolicy(pc.Body)
	if err != nil {
		pc.Error = err.Error()
		res.add(CodePolicyInvalid, SeverityError, "the policy is not valid: "+err.Error(), "serve a policy made by \"tlsrpt policy\"")
		return pc.Body, true
	}
	pc.Valid, pc.Mode, pc.MX, pc.MaxAge = true, p.Mode, p.MX, p.MaxAge
	return pc.Body, true
}

// fetchFailed turns a failed fetch into the problem that names its cause:
// the step that failed (step, as far as the fetch got) and its fix.
func (in *Inspector) fetchFailed(res *CheckResult, host string, step fetchStep, err error) {
	var cv *tls.CertificateVerificationError
	var refused *refusedAddrError
	switch {
	case errors.As(err, &cv):
		res.add(CodePolicyCertificateInvalid, SeverityError, "the certificate of "+host+" is not valid: "+cv.Err.Error(), "install a certificate for "+host+" from a public CA (e.g. Let's Encrypt), with its chain")
	case errors.As(err, &refused):
		res.add(CodePolicyUnreachable, SeverityError, host+" resolves to "+refused.addr+", which is not public: the fetch was refused", "point "+host+" at a public address (or pass --allow-private for a test setup)")
	case errors.Is(err, errNoAddress):
		res.add(CodePolicyUnreachable, SeverityError, host+" has no A or AAAA record", "create "+host+" in DNS and serve the policy at "+res.Policy.URL)
	default:
		what := "failed: " + shortErr(err)
		if isTimeout(err) {
			what = "timed out after " + in.timeout().String()
		}
		var at, fix string
		switch step {
		case stepDNS:
			at, fix = "looking up "+host, "check that the name servers of "+res.Domain+" answer for "+host+" (and, with --resolver, that the resolver answers)"
		case stepConnect:
			at, fix = "connecting to "+host+" on port 443", "check that "+host+" accepts connections on port 443 (a listening web server, no firewall in the way)"
		case stepTLS:
			at, fix = "the TLS handshake with "+host, "check that "+host+" speaks TLS on port 443 with a certificate for "+host
		default:
			at, fix = "the HTTP request to "+host, "check that the web server of "+host+" serves the policy file at "+res.Policy.URL
		}
		res.add(CodePolicyUnreachable, SeverityError, "fetching "+res.Policy.URL+": "+at+" "+what, fix)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// shortErr drops the repeated URL prefix net/http puts on client errors.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\": "); i >= 0 && strings.HasPrefix(s, "Get \"") {
		return s[i+3:]
	}
	return s
}
