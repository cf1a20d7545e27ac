package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

const inspectGoodPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mx1.%s\r\nmx: *.backup.%s\r\nmax_age: 604800\r\n"

// inspectEnv is a loopback world: a DNS server, an HTTPS server with a
// certificate from a test CA, and an inspector pointed at both.
type inspectEnv struct {
	zone *testZone
	web  *policyServer
	in   *Inspector
}

// domains served by the env's HTTPS certificate; "badcert.example" is left
// out on purpose.
var envCertDomains = []string{"good.example", "norecord.example", "multi.example", "badrecord.example", "notfound.example",
	"redirect.example", "html.example", "large.example", "garbage.example", "drift.example", "testing.example",
	"badtlsrpt.example", "cname-target.example", "cname.example", "bigtxt.example", "slow.example", "noaddr.example",
	"probe.example", "expiring.example", "slowmx.example", "private.example", "tlsa.example", "postfix.example"}

func newInspectEnv(t testing.TB) *inspectEnv {
	t.Helper()
	ca := newTestCA(t)
	var names []string
	for _, d := range envCertDomains {
		names = append(names, "mta-sts."+d)
	}
	names = append(names, "mta-sts.badcert-other.example")
	web, port := startPolicyServer(t, ca, names...)
	z := newTestZone()
	addr := startDNS(t, z)
	e := &inspectEnv{zone: z, web: web, in: &Inspector{Resolver: addr, RootCAs: ca.pool, AllowPrivate: true, Timeout: 3 * time.Second, httpsPort: port}}
	return e
}

// site publishes a complete, healthy setup for d and lets edit change
// the policy site before it is served.
func (e *inspectEnv) site(t testing.TB, d string, edit func(s *policySite)) {
	t.Helper()
	e.zone.add(t,
		"_mta-sts."+d+". 300 IN TXT \"v=STSv1; \" \"id=20260701T120509Z\"",
		"_mta-sts."+d+". 300 IN TXT \"v=spf1 -all\"",
		"mta-sts."+d+". 300 IN A 127.0.0.1",
		d+". 300 IN MX 10 mx1."+d+".",
		d+". 300 IN MX 20 mx9.backup."+d+".",
		"_smtp._tls."+d+". 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@"+d+"\"",
	)
	s := policySite{contentType: "text/plain; charset=utf-8", body: strings.ReplaceAll(inspectGoodPolicy, "%s", d)}
	if edit != nil {
		edit(&s)
	}
	e.web.set("mta-sts."+d, s)
}

func problemCodes(r *CheckResult) []string {
	var out []string
	for _, p := range r.Problems {
		out = append(out, p.Code)
	}
	sort.Strings(out)
	return out
}

func TestCheckGood(t *testing.T) {
	e := newInspectEnv(t)
	e.site(t, "good.example", nil)
	r := e.in.Check(context.Background(), "Good.Example.")
	if len(r.Problems) != 0 || r.Error != "" {
		t.Fatalf("Check(good) problems %+v, error %q, notes %q", r.Problems, r.Error, r.Notes)
	}
	if r.Domain != "good.example" || !r.Record.Valid || r.Record.ID != "20260701T120509Z" {
		t.Errorf("record = %+v", r.Record)
	}
	p, ok := r.Policy.Policy()
	if !ok || p.Mode != ModeEnforce || p.MaxAge != 604800 || len(p.MX) != 2 || r.Policy.Status != 200 || r.Policy.Address != e.web127() {
		t.Errorf("policy = %+v", r.Policy)
	}
	want := []MXCheck{{Host: "mx1.good.example", Preference: 10, InPolicy: true, Pattern: "mx1.good.example"},
		{Host: "mx9.backup.good.example", Preference: 20, InPolicy: true, Pattern: "*.backup.good.example"}}
	// The MX hosts have no address: the probe says so and finds nothing.
	for i := range r.MX {
		if r.MX[i].ProbeError != "not probed: no A or AAAA record" || len(r.MX[i].Addresses) != 0 {
			t.Errorf("mx %s probe = %q %+v, want not probed", r.MX[i].Host, r.MX[i].ProbeError, r.MX[i].Addresses)
		}
		r.MX[i].Addresses, r.MX[i].ProbeError = nil, ""
	}
	if len(r.MX) != 2 || !reflect.DeepEqual(r.MX, want) {
		t.Errorf("mx = %+v, want %+v", r.MX, want)
	}
	if !r.TLSRPT.Valid || len(r.TLSRPT.RUA) != 1 || r.TLSRPT.RUA[0] != "mailto:tlsrpt@good.example" {
		t.Errorf("tlsrpt = %+v", r.TLSRPT)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"domain", "record", "policy", "mx", "tlsrpt", "problems"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON %s lacks %q", b, k)
		}
	}
	if ps, ok := m["problems"].([]any); !ok || len(ps) != 0 {
		t.Errorf("JSON problems = %v, want []", m["problems"])
	}
}

// web127 is the address the policy fetch connects to in these tests.
func (e *inspectEnv) web127() string {
	return "127.0.0.1:" + e.in.httpsPort
}

// TestCheckProblems provokes every problem code of docs/policy-and-check.md once.
func TestCheckProblems(t *testing.T) {
	e := newInspectEnv(t)
	tests := []struct {
		domain string
		setup  func()
		want   []string
		fix    string // a fix of the named problem must contain it
	}{
		{"norecord.example", func() {
			e.zone.add(t, "mta-sts.norecord.example. 300 IN A 127.0.0.1", "norecord.example. 300 IN MX 10 mx1.norecord.example.",
				"_mta-sts.norecord.example. 300 IN TXT \"v=spf1 -all\"")
			e.web.set("mta-sts.norecord.example", policySite{contentType: "text/plain", body: strings.ReplaceAll(inspectGoodPolicy, "%s", "norecord.example")})
		}, []string{CodeRecordMissing, CodePolicyMXUnused, CodeTLSRPTMissing}, "v=STSv1; id="},
		{"multi.example", func() {
			e.site(t, "multi.example", nil)
			e.zone.add(t, "_mta-sts.multi.example. 300 IN TXT \"v=STSv1; id=2\"")
		}, []string{CodeRecordMultiple}, "delete all but one"},
		{"badrecord.example", func() {
			e.zone.add(t, "_mta-sts.badrecord.example. 300 IN TXT \"v=STSv1; id=2026-07-01\"", "mta-sts.badrecord.example. 300 IN A 127.0.0.1",
				"badrecord.example. 300 IN MX 10 mx1.badrecord.example.", "badrecord.example. 300 IN MX 10 a.backup.badrecord.example.",
				"_smtp._tls.badrecord.example. 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@badrecord.example\"")
			e.web.set("mta-sts.badrecord.example", policySite{contentType: "text/plain", body: strings.ReplaceAll(inspectGoodPolicy, "%s", "badrecord.example")})
		}, []string{CodeRecordInvalid}, "v=STSv1; id="},
		{"notfound.example", func() {
			e.site(t, "notfound.example", func(s *policySite) { s.status = 404 })
		}, []string{CodePolicyUnreachable}, "serve the policy file"},
		{"noaddr.example", func() {
			e.zone.add(t, "_mta-sts.noaddr.example. 300 IN TXT \"v=STSv1; id=1\"", "noaddr.example. 300 IN MX 10 mx1.noaddr.example.",
				"_smtp._tls.noaddr.example. 300 IN TXT \"v=TLSRPTv1; rua=mailto:r@noaddr.example\"")
		}, []string{CodePolicyUnreachable}, "create mta-sts.noaddr.example"},
		{"badcert.example", func() {
			e.site(t, "badcert.example", nil)
		}, []string{CodePolicyCertificateInvalid}, "certificate for mta-sts.badcert.example"},
		{"redirect.example", func() {
			e.site(t, "redirect.example", func(s *policySite) {
				s.status, s.location, s.body = 301, "https://www.redirect.example/.well-known/mta-sts.txt", ""
			})
		}, []string{CodePolicyRedirect}, "status 200"},
		{"html.example", func() {
			e.site(t, "html.example", func(s *policySite) { s.contentType = "text/html; charset=utf-8" })
		}, []string{CodePolicyContentType}, "text/plain"},
		{"large.example", func() {
			e.site(t, "large.example", func(s *policySite) { s.body += strings.Repeat("x-pad: 0123456789\n", 4000) })
		}, []string{CodePolicyTooLarge}, "serve only the policy"},
		{"garbage.example", func() {
			e.site(t, "garbage.example", func(s *policySite) { s.body = "<html>Welcome to nginx!</html>\n" })
		}, []string{CodePolicyInvalid}, "tlsrpt policy"},
		{"drift.example", func() {
			e.site(t, "drift.example", nil)
			e.zone.add(t, "drift.example. 300 IN MX 30 mx2.drift.example.")
			e.web.set("mta-sts.drift.example", policySite{contentType: "text/plain",
				body: "version: STSv1\nmode: enforce\nmx: mx1.drift.example\nmx: *.backup.drift.example\nmx: mx3.drift.example\nmax_age: 604800\n"})
		}, []string{CodeMXNotInPolicy, CodePolicyMXUnused}, "add mx: mx2.drift.example"},
		{"testing.example", func() {
			e.site(t, "testing.example", func(s *policySite) {
				s.body = "version: STSv1\nmode: testing\nmx: mx1.testing.example\nmx: *.backup.testing.example\nmax_age: 3600\n"
			})
		}, []string{CodeMaxAgeLow, CodeTestingMode}, "max_age: 86400"},
		{"badtlsrpt.example", func() {
			e.site(t, "badtlsrpt.example", nil)
			e.zone.del("_smtp._tls.badtlsrpt.example.")
			e.zone.add(t, "_smtp._tls.badtlsrpt.example. 300 IN TXT \"v=TLSRPTv1; rua=tlsrpt@badtlsrpt.example\"")
		}, []string{CodeTLSRPTInvalid}, "v=TLSRPTv1; rua=mailto:"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			tt.setup()
			r := e.in.Check(context.Background(), tt.domain)
			got := problemCodes(r)
			want := append([]string(nil), tt.want...)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("Check(%s) codes = %q, want %q\nproblems: %+v\nnotes: %q", tt.domain, got, want, r.Problems, r.Notes)
			}
			found := false
			for _, p := range r.Problems {
				if p.Message == "" || p.Fix == "" || (p.Severity != SeverityError && p.Severity != SeverityWarning && p.Severity != SeverityInfo) {
					t.Errorf("problem %+v lacks a message, fix or severity", p)
				}
				found = found || p.Code == tt.want[0] && strings.Contains(p.Fix, tt.fix)
			}
			if !found {
				t.Errorf("no %s problem with a fix containing %q: %+v", tt.want[0], tt.fix, r.Problems)
			}
		})
	}
}

func TestCheckTimeout(t *testing.T) {
	e := newInspectEnv(t)
	e.site(t, "slow.example", func(s *policySite) { s.hang = true })
	e.in.Timeout = 300 * time.Millisecond
	r := e.in.Check(context.Background(), "slow.example")
	if got := problemCodes(r); len(got) != 1 || got[0] != CodePolicyUnreachable || !strings.Contains(r.Problems[0].Message, "timed out") {
		t.Errorf("Check(slow) = %+v", r.Problems)
	}
}

func TestCheckIDNotChanged(t *testing.T) {
	e := newInspectEnv(t)
	e.in.Seen = &MemorySeen{}
	e.site(t, "good.example", nil)
	if r := e.in.Check(context.Background(), "good.example"); len(r.Problems) != 0 {
		t.Fatalf("first Check = %+v", r.Problems)
	}
	// The same policy with LF endings is not a change.
	e.web.set("mta-sts.good.example", policySite{contentType: "text/plain", body: strings.ReplaceAll(strings.ReplaceAll(inspectGoodPolicy, "%s", "good.example"), "\r\n", "\n")})
	if r := e.in.Check(context.Background(), "good.example"); len(r.Problems) != 0 {
		t.Fatalf("Check after a line-ending change = %+v", r.Problems)
	}
	e.web.set("mta-sts.good.example", policySite{contentType: "text/plain", body: "version: STSv1\nmode: enforce\nmx: mx1.good.example\nmx: *.backup.good.example\nmax_age: 1209600\n"})
	r := e.in.Check(context.Background(), "good.example")
	if got := problemCodes(r); len(got) != 1 || got[0] != CodeIDNotChanged || !strings.Contains(r.Problems[0].Fix, "bump the id") {
		t.Errorf("Check after an edit under the same id = %+v", r.Problems)
	}
	// It stays a problem until the id changes.
	if r := e.in.Check(context.Background(), "good.example"); !r.Has(CodeIDNotChanged) {
		t.Errorf("second Check after the edit = %+v", r.Problems)
	}
	e.zone.del("_mta-sts.good.example.")
	e.zone.add(t, "_mta-sts.good.example. 300 IN TXT \"v=STSv1; id=20260702T000000Z\"")
	if r := e.in.Check(context.Background(), "good.example"); len(r.Problems) != 0 {
		t.Errorf("Check after the id bump = %+v", r.Problems)
	}
}

func TestCheckRefusesPrivate(t *testing.T) {
	e := newInspectEnv(t)
	e.site(t, "good.example", nil)
	e.in.AllowPrivate = false
	r := e.in.Check(context.Background(), "good.example")
	if got := problemCodes(r); len(got) != 1 || got[0] != CodePolicyUnreachable || !strings.Contains(r.Problems[0].Message, "not public") {
		t.Errorf("Check without AllowPrivate = %+v", r.Problems)
	}
	if n := e.web.hitsOf("mta-sts.good.example"); n != 0 {
		t.Errorf("the policy server got %d requests, want none", n)
	}
}

func TestCheckCNAMEAndTCP(t *testing.T) {
	e := newInspectEnv(t)
	e.site(t, "cname-target.example", nil)
	e.site(t, "cname.example", nil)
	e.zone.del("_mta-sts.cname.example.")
	// The first CNAME is chased by the server, the second is not: the
	// inspector has to ask for its target itself.
	e.zone.add(t, "_mta-sts.cname.example. 300 IN CNAME _mta-sts.hop.example.",
		"_mta-sts.hop.example. 300 IN CNAME _mta-sts.cname-target.example.")
	e.zone.setNoChase("_mta-sts.hop.example.")
	r := e.in.Check(context.Background(), "cname.example")
	if len(r.Problems) != 0 || r.Record.ID != "20260701T120509Z" || len(r.Record.CNAME) != 2 {
		t.Errorf("Check(cname) record %+v, problems %+v", r.Record, r.Problems)
	}

	e.site(t, "bigtxt.example", nil)
	for i := 0; i < 30; i++ {
		e.zone.add(t, "_mta-sts.bigtxt.example. 300 IN TXT \"filler "+strings.Repeat("x", 200)+"\"")
	}
	before := e.zone.tcpCount()
	r = e.in.Check(context.Background(), "bigtxt.example")
	if len(r.Problems) != 0 || !r.Record.Valid {
		t.Errorf("Check(bigtxt) record %+v, problems %+v, notes %q", r.Record, r.Problems, r.Notes)
	}
	if e.zone.tcpCount() == before {
		t.Errorf("the truncated TXT answer was not asked again over TCP")
	}
}

func TestCheckInvalidDomain(t *testing.T) {
	in := &Inspector{Resolver: "127.0.0.1:1"}
	r := in.Check(context.Background(), "not a domain")
	if r.Error == "" || len(r.Problems) != 0 {
		t.Errorf("Check(invalid) = %+v", r)
	}
}

func TestIsPublicAddr(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "203.0.113.7", "8.8.8.8", "2a00:1450:4001:80b::200e", "100.128.0.1"} {
		if !IsPublicAddr(netip.MustParseAddr(s)) {
			t.Errorf("IsPublicAddr(%s) = false, want true", s)
		}
	}
	for _, s := range []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "0.1.2.3",
		"100.64.0.1", "224.0.0.1", "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "2001:db8::1"} {
		if IsPublicAddr(netip.MustParseAddr(s)) {
			t.Errorf("IsPublicAddr(%s) = true, want false", s)
		}
	}
}

// TestIsPublicAddrIPv6Registry walks IANA's special-purpose IPv6 address
// registry: an address from each range that is not globally reachable, or
// that embeds an IPv4 address, is refused; NAT64 (RFC 6052) and mapped
// addresses are judged by the IPv4 address they carry.
func TestIsPublicAddrIPv6Registry(t *testing.T) {
	for _, tc := range []struct {
		addr, why string
		public    bool
	}{
		{"::", "unspecified", false},
		{"::1", "loopback", false},
		{"::7f00:1", "IPv4-compatible ::/96 (127.0.0.1)", false},
		{"::808:808", "IPv4-compatible ::/96 (8.8.8.8): deprecated, refused whatever it embeds", false},
		{"::ffff:127.0.0.1", "IPv4-mapped loopback", false},
		{"::ffff:10.1.2.3", "IPv4-mapped private", false},
		{"::ffff:169.254.169.254", "IPv4-mapped link-local (cloud metadata)", false},
		{"::ffff:8.8.8.8", "IPv4-mapped public", true},
		{"::ffff:0:7f00:1", "IPv4-translated ::ffff:0:0:0/96", false},
		{"64:ff9b::7f00:1", "NAT64 64:ff9b::/96 (127.0.0.1)", false},
		{"64:ff9b::a00:1", "NAT64 (10.0.0.1)", false},
		{"64:ff9b::a9fe:a9fe", "NAT64 (169.254.169.254)", false},
		{"64:ff9b::6440:1", "NAT64 (100.64.0.1, CGNAT)", false},
		{"64:ff9b::808:808", "NAT64 (8.8.8.8): how an IPv6-only host with DNS64 reaches a public server", true},
		{"64:ff9b:1::a00:1", "local-use NAT64 64:ff9b:1::/48", false},
		{"64:ff9b:1:ffff::808:808", "local-use NAT64, any embedding", false},
		{"100::1", "discard-only 100::/64", false},
		{"2001::1", "Teredo 2001::/32", false},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo with an embedded client", false},
		{"2001:1::1", "IETF protocol assignments 2001::/23 (PCP anycast)", false},
		{"2001:2::1", "benchmarking 2001:2::/48", false},
		{"2001:10::1", "ORCHID 2001:10::/28", false},
		{"2001:1ff:ffff::1", "end of 2001::/23", false},
		{"2001:db8::1", "documentation 2001:db8::/32", false},
		{"2002:7f00:1::1", "6to4 2002::/16 (127.0.0.1)", false},
		{"2002:808:808::1", "6to4 2002::/16 (8.8.8.8): refused, 6to4 relays are deprecated (RFC 7526)", false},
		{"3fff::1", "documentation 3fff::/20", false},
		{"5f00::1", "SRv6 SIDs 5f00::/16", false},
		{"fc00::1", "unique local fc00::/7", false},
		{"fdff:ffff::1", "unique local, top", false},
		{"fec0::1", "site-local fec0::/10", false},
		{"fe80::1", "link-local fe80::/10", false},
		{"fe80::1%eth0", "link-local with a zone", false},
		{"fd00::1%eth0", "unique local with a zone", false},
		{"ff02::1", "multicast ff00::/8", false},
		{"ff0e::1", "global multicast", false},
		{"2001:200::1", "just past 2001::/23 (WIDE)", true},
		{"2a00:1450:4001:80b::200e", "global unicast", true},
		{"2606:4700::6810:84e5", "global unicast", true},
	} {
		if got := IsPublicAddr(netip.MustParseAddr(tc.addr)); got != tc.public {
			t.Errorf("IsPublicAddr(%s) = %v, want %v: %s", tc.addr, got, tc.public, tc.why)
		}
	}
}

// TestGuardOnConnect shows the refusal happens on the address connected
// to, whatever name led there: an IP literal that skips the resolver is
// refused the same way.
func TestGuardOnConnect(t *testing.T) {
	in := &Inspector{Timeout: time.Second}
	for _, addr := range []string{"10.0.0.1:443", "[::1]:443", "169.254.169.254:80", "[::ffff:127.0.0.1]:443", "[64:ff9b::a9fe:a9fe]:80", "[fd00::1%eth0]:443"} {
		var refused *refusedAddrError
		if err := in.guard("tcp", addr, nil); !errors.As(err, &refused) {
			t.Errorf("guard(%s) = %v, want a refusal", addr, err)
		}
	}
	if err := in.guard("tcp", "192.0.2.10:443", nil); err != nil {
		t.Errorf("guard(public) = %v", err)
	}
	c, err := in.dialContext(context.Background(), "tcp", "127.0.0.1:443")
	var refused *refusedAddrError
	if !errors.As(err, &refused) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dialContext(127.0.0.1:443) = %v, want a refusal", err)
	}
	in.AllowPrivate = true
	if err := in.guard("tcp", "10.0.0.1:443", nil); err != nil {
		t.Errorf("guard with AllowPrivate = %v", err)
	}
}

// TestCheckFetchSteps: a failed policy fetch names the step that failed
// (DNS, connect, TLS, HTTP) and that step's fix, not one guess for all.
func TestCheckFetchSteps(t *testing.T) {
	e := newInspectEnv(t)
	e.site(t, "good.example", nil)
	e.site(t, "slow.example", func(s *policySite) { s.hang = true })
	silent, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never speaks TLS
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := strconv.Itoa(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()
	mute, err := net.ListenPacket("udp", "127.0.0.1:0") // a resolver that never answers
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()

	for _, tt := range []struct {
		name, domain string
		edit         func(in *Inspector)
		message, fix string
	}{
		{"http", "slow.example", nil, "the HTTP request to mta-sts.slow.example timed out", "serves the policy file at"},
		{"tls", "good.example", func(in *Inspector) { in.httpsPort = strconv.Itoa(silent.Addr().(*net.TCPAddr).Port) }, "the TLS handshake with mta-sts.good.example timed out", "speaks TLS on port 443"},
		{"connect", "good.example", func(in *Inspector) { in.httpsPort = closedPort }, "connecting to mta-sts.good.example on port 443 failed", "accepts connections on port 443"},
	} {
		in := *e.in
		in.Timeout = 500 * time.Millisecond
		if tt.edit != nil {
			tt.edit(&in)
		}
		r := in.Check(context.Background(), tt.domain)
		found := false
		for _, p := range r.Problems {
			if p.Code == CodePolicyUnreachable && strings.Contains(p.Message, tt.message) && strings.Contains(p.Fix, tt.fix) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: problems %+v; want policy-unreachable with %q, fix %q", tt.name, r.Problems, tt.message, tt.fix)
		}
	}
	// The DNS step, on its own: the lookup of the policy host times out.
	in := *e.in
	in.Timeout = 300 * time.Millisecond
	in.Resolver = mute.LocalAddr().String()
	res := &CheckResult{Domain: "good.example", Policy: PolicyCheck{URL: "https://mta-sts.good.example/.well-known/mta-sts.txt"}}
	in.checkPolicy(context.Background(), res)
	if len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Message, "looking up mta-sts.good.example") || !strings.Contains(res.Problems[0].Fix, "name servers of good.example") {
		t.Errorf("fetch with a resolver that never answers: %+v; want the DNS step named", res.Problems)
	}
}
