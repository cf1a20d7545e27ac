package rollout

import (
	"bufio"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout/smtptest"
)

// probeEnv is an inspectEnv with SMTP servers on loopback addresses, their
// certificates issued by one CA relative to one clock the inspector uses.
type probeEnv struct {
	*inspectEnv
	ca   *smtptest.CA
	now  time.Time
	smtp *smtptest.Server
}

// newProbeEnv serves d's policy (testing, mx: *.d) and, for each host, MX
// records and two A records 127.0.0.<10i+1> and 127.0.0.<10i+2>.
func newProbeEnv(t *testing.T, d string, hosts func(ca *smtptest.CA, now time.Time) []smtptest.Host) *probeEnv {
	t.Helper()
	// The clock is far from the real one, so a verification that used
	// the real time would fail every certificate.
	e := &probeEnv{inspectEnv: newInspectEnv(t), now: time.Now().UTC().Truncate(time.Second).AddDate(3, 0, 0)}
	e.ca = smtptest.NewCA(t, e.now)
	e.in.RootCAs.AddCert(e.ca.Cert)
	e.in.Now = func() time.Time { return e.now }
	e.zone.add(t,
		"_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=20261201T000000Z\"",
		"mta-sts."+d+". 300 IN A 127.0.0.1",
		"_smtp._tls."+d+". 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@"+d+"\"",
	)
	e.web.set("mta-sts."+d, policySite{contentType: "text/plain", body: "version: STSv1\nmode: testing\nmx: *." + d + "\nmax_age: 86400\n"})
	hs := hosts(e.ca, e.now)
	for i := range hs {
		if len(hs[i].Addrs) == 0 {
			hs[i].Addrs = []string{fmt.Sprintf("127.0.0.%d", 10*(i+1)+1), fmt.Sprintf("127.0.0.%d", 10*(i+1)+2)}
		}
		e.zone.add(t, fmt.Sprintf("%s. 300 IN MX %d %s.", d, 10*(i+1), hs[i].Name))
		for _, a := range hs[i].Addrs {
			e.zone.add(t, hs[i].Name+". 300 IN A "+a)
		}
	}
	e.smtp = smtptest.Start(t, hs...)
	e.in.SMTPPort = e.smtp.Port
	return e
}

// valid returns a certificate for name valid from a day ago for days.
func valid(t *testing.T, ca *smtptest.CA, now time.Time, days int, names ...string) smtptest.Host {
	return smtptest.Host{Name: names[0], Cert: ca.Leaf(t, now.AddDate(0, 0, -1), now.AddDate(0, 0, days), names...)}
}

// mxProblems returns "code host address" of the problems of the probe.
func mxProblems(r *CheckResult) []string {
	var out []string
	for _, p := range r.Problems {
		if p.MX != "" {
			out = append(out, p.Code+" "+p.Severity+" "+p.Address)
		}
	}
	sort.Strings(out)
	return out
}

// TestProbeFourHosts is the case: good, expired, wrong name and no
// STARTTLS, two addresses each. Each bad address is named with its code
// and its facts, and the verdict blocks on exactly those.
func TestProbeFourHosts(t *testing.T) {
	const d = "probe.example"
	e := newProbeEnv(t, d, func(ca *smtptest.CA, now time.Time) []smtptest.Host {
		expired := smtptest.Host{Name: "mx2." + d, Cert: ca.Leaf(t, now.AddDate(0, -3, 0), now.AddDate(0, 0, -1), "mx2."+d)}
		wrong := valid(t, ca, now, 60, "other.example")
		wrong.Name = "mx3." + d
		return []smtptest.Host{valid(t, ca, now, 60, "mx1."+d), expired, wrong, {Name: "mx4." + d, Mode: smtptest.NoSTARTTLS}}
	})
	r := e.in.Check(context.Background(), d)

	want := []string{
		"mx-certificate-invalid error 127.0.0.21:" + e.port(), "mx-certificate-invalid error 127.0.0.22:" + e.port(),
		"mx-certificate-invalid error 127.0.0.31:" + e.port(), "mx-certificate-invalid error 127.0.0.32:" + e.port(),
		"mx-starttls-missing error 127.0.0.41:" + e.port(), "mx-starttls-missing error 127.0.0.42:" + e.port(),
	}
	if got := mxProblems(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("probe problems = %q, want %q\nall: %+v\nmx: %+v", got, want, r.Problems, r.MX)
	}
	if got := problemCodes(r); len(got) != 7 || !r.Has(CodeTestingMode) {
		t.Errorf("codes = %q, want the probe's and testing-mode", got)
	}
	for _, m := range r.MX {
		if len(m.Addresses) != 2 || !m.InPolicy {
			t.Errorf("mx %s: %d addresses, in policy %v", m.Host, len(m.Addresses), m.InPolicy)
			continue
		}
		for _, p := range m.Addresses {
			if !p.Reachable || !p.InPolicy || !strings.Contains(p.Banner, m.Host) {
				t.Errorf("%s %s: reachable %v, banner %q", m.Host, p.Address, p.Reachable, p.Banner)
			}
			switch m.Host {
			case "mx1." + d:
				c := p.Certificate
				if !p.STARTTLS || !p.Verified || p.TLSVersion != "TLS 1.3" || p.CipherSuite == "" || c == nil ||
					c.DaysLeft != 60 || c.Subject != "CN=mx1."+d || !reflect.DeepEqual(c.SANs, []string{"mx1." + d}) ||
					c.Issuer != "CN=smtptest CA" || !c.NotAfter.Equal(e.now.AddDate(0, 0, 60)) {
					t.Errorf("good %s = %+v, cert %+v", p.Address, p, c)
				}
			case "mx2." + d:
				if p.Verified || !strings.Contains(p.VerifyError, "expired") || p.Certificate == nil || p.Certificate.DaysLeft != -1 {
					t.Errorf("expired %s = %+v", p.Address, p)
				}
			case "mx3." + d:
				if p.Verified || !strings.Contains(p.VerifyError, "not mx3."+d) {
					t.Errorf("wrong name %s = %+v", p.Address, p)
				}
			case "mx4." + d:
				if p.STARTTLS || p.Certificate != nil || p.Error != "" {
					t.Errorf("no STARTTLS %s = %+v", p.Address, p)
				}
			}
		}
	}
	for _, c := range e.smtp.Commands() {
		if v, _, _ := strings.Cut(c, " "); v != "EHLO" && v != "STARTTLS" && v != "QUIT" {
			t.Errorf("the probe sent %q: only EHLO, STARTTLS and QUIT are allowed", c)
		}
	}

	// The verdict of a domain whose reports say ready is blocked by the
	// probe's errors, each with the address and certificate facts.
	f := cleanFacts(21, twoOrgs, 100)
	f.ApplyCheck(r)
	v := Evaluate(f, DefaultThresholds())
	var got []string
	for _, b := range v.Blockers {
		if b.Source != SourceCheck || b.Probe == nil || len(b.MX) != 1 || !strings.Contains(b.Message, b.Probe.Address) {
			t.Errorf("blocker %+v lacks the probe evidence", b)
			continue
		}
		got = append(got, b.Code+" "+b.Severity+" "+b.Probe.Address)
		if b.Code == CodeMXCertificateInvalid && (b.Probe.Certificate == nil || b.Probe.VerifyError == "") {
			t.Errorf("blocker %s lacks the certificate facts: %+v", b.Code, b.Probe)
		}
	}
	sort.Strings(got)
	if v.Ready || !reflect.DeepEqual(got, want) {
		t.Errorf("verdict ready %v, blockers %q, want %q", v.Ready, got, want)
	}
}

func (e *probeEnv) port() string { return fmt.Sprint(e.smtp.Port) }

// TestProbeExpiring: a certificate within the enforce max_age plus 7 days
// is an error that blocks; within 30 days, a warning that does not.
func TestProbeExpiring(t *testing.T) {
	const d = "expiring.example"
	e := newProbeEnv(t, d, func(ca *smtptest.CA, now time.Time) []smtptest.Host {
		return []smtptest.Host{valid(t, ca, now, 3, "mx1."+d), valid(t, ca, now, 20, "mx2."+d), valid(t, ca, now, 30, "mx3."+d)}
	})
	r := e.in.Check(context.Background(), d)
	want := []string{
		"mx-certificate-expiring error 127.0.0.11:" + e.port(), "mx-certificate-expiring error 127.0.0.12:" + e.port(),
		"mx-certificate-expiring warning 127.0.0.21:" + e.port(), "mx-certificate-expiring warning 127.0.0.22:" + e.port(),
	}
	if got := mxProblems(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("probe problems = %q, want %q\nall: %+v", got, want, r.Problems)
	}
	if p, _ := r.Probe("mx1."+d, "127.0.0.11:"+e.port()); !p.Verified || p.Certificate.DaysLeft != 3 {
		t.Errorf("mx1 probe = %+v", p)
	}
	f := cleanFacts(21, twoOrgs, 100)
	f.ApplyCheck(r)
	v := Evaluate(f, DefaultThresholds())
	if b := codes(v.Blockers); len(b) != 2 || b[0] != CodeMXCertificateExpiring {
		t.Errorf("blockers = %q, want the two 3-day addresses", b)
	}
	if n := len(findings(v.Warnings, CodeMXCertificateExpiring)); n != 2 {
		t.Errorf("warnings = %+v, want the two 20-day addresses", v.Warnings)
	}
}

func findings(fs []Finding, code string) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Code == code {
			out = append(out, f)
		}
	}
	return out
}

// TestProbeBounded: with hosts that never answer (no banner; a TLS
// handshake that never completes) among four hosts of two addresses,
// the probe ends within its bound, with the hung addresses unreachable
// (a warning: unknown from here) or failing STARTTLS, and the others
// probed as usual.
func TestProbeBounded(t *testing.T) {
	const d = "slowmx.example"
	e := newProbeEnv(t, d, func(ca *smtptest.CA, now time.Time) []smtptest.Host {
		return []smtptest.Host{valid(t, ca, now, 60, "mx1."+d), {Name: "mx2." + d, Mode: smtptest.Silent},
			{Name: "mx3." + d, Mode: smtptest.HangHandshake}, valid(t, ca, now, 60, "mx4."+d)}
	})
	e.in.Timeout = 300 * time.Millisecond
	start := time.Now()
	r := e.in.Check(context.Background(), d)
	// The bound is structural: every session has the timeout as its
	// deadline and the probe as a whole probeSteps of them; the DNS and
	// policy steps before it are quick here.
	if el, bound := time.Since(start), (probeSteps+checkSteps)*e.in.Timeout; el > bound {
		t.Errorf("Check took %v, more than its bound %v", el, bound)
	}
	want := []string{
		"mx-starttls-missing error 127.0.0.31:" + e.port(), "mx-starttls-missing error 127.0.0.32:" + e.port(),
		"mx-unreachable warning 127.0.0.21:" + e.port(), "mx-unreachable warning 127.0.0.22:" + e.port(),
	}
	if got := mxProblems(r); !reflect.DeepEqual(got, want) {
		t.Fatalf("probe problems = %q, want %q\nall: %+v", got, want, r.Problems)
	}
	for _, a := range []string{"127.0.0.21", "127.0.0.31"} {
		host := map[string]string{"127.0.0.21": "mx2." + d, "127.0.0.31": "mx3." + d}[a]
		p, _ := r.Probe(host, a+":"+e.port())
		if !strings.Contains(p.Error, "timed out") {
			t.Errorf("%s error = %q, want a timeout", a, p.Error)
		}
	}
	for _, a := range []string{"127.0.0.11", "127.0.0.12", "127.0.0.41", "127.0.0.42"} {
		host := "mx" + a[len(a)-2:len(a)-1] + "." + d
		if p, _ := r.Probe(host, a+":"+e.port()); !p.Verified {
			t.Errorf("%s %s = %+v, want verified", host, a, p)
		}
	}
}

// TestProbeRefusesPrivate: without AllowPrivate no SMTP connection is made.
func TestProbeRefusesPrivate(t *testing.T) {
	const d = "private.example"
	e := newProbeEnv(t, d, func(ca *smtptest.CA, now time.Time) []smtptest.Host {
		return []smtptest.Host{valid(t, ca, now, 60, "mx1."+d)}
	})
	e.in.AllowPrivate = false
	r := e.in.Check(context.Background(), d)
	want := []string{"mx-unreachable warning 127.0.0.11:" + e.port(), "mx-unreachable warning 127.0.0.12:" + e.port()}
	if got := mxProblems(r); !reflect.DeepEqual(got, want) {
		t.Errorf("probe problems = %q, want %q", got, want)
	}
	if c := e.smtp.Commands(); len(c) != 0 {
		t.Errorf("the server got %q, want no connection", c)
	}
}

// TestProbeNoMXAndTLSA: a domain without MX records is an error; a TLSA
// record is noted and changes nothing; SkipSMTP leaves the probe out.
func TestProbeNoMXAndTLSA(t *testing.T) {
	const d = "tlsa.example"
	e := newProbeEnv(t, d, func(ca *smtptest.CA, now time.Time) []smtptest.Host {
		return []smtptest.Host{valid(t, ca, now, 60, "mx1."+d)}
	})
	e.zone.add(t, "_25._tcp.mx1."+d+". 300 IN TLSA 3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF")
	r := e.in.Check(context.Background(), d)
	if got := problemCodes(r); len(got) != 1 || got[0] != CodeTestingMode {
		t.Errorf("codes = %q, want only testing-mode", got)
	}
	if len(r.MX) != 1 || !reflect.DeepEqual(r.MX[0].TLSA, []string{"3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}) {
		t.Errorf("mx = %+v, want the TLSA record noted", r.MX)
	}

	e.in.SkipSMTP = true
	n := len(e.smtp.Commands())
	if r := e.in.Check(context.Background(), d); len(r.MX) != 1 || len(r.MX[0].Addresses) != 0 || len(e.smtp.Commands()) != n {
		t.Errorf("with SkipSMTP: mx %+v, %d commands, want no probe", r.MX, len(e.smtp.Commands())-n)
	}

	e.zone.del(d + ".")
	r = e.in.Check(context.Background(), d)
	if !r.Has(CodeMXMissing) || r.Errors() != 1 {
		t.Errorf("without MX records: %+v, want mx-missing", r.Problems)
	}
}

// TestReadReplyBounds: a peer cannot make the probe read without end.
func TestReadReplyBounds(t *testing.T) {
	for _, tc := range []struct {
		in, err string
		lines   int
	}{
		{"220 mx.example ESMTP\r\n", "", 1},
		{"250-mx.example\r\n250-STARTTLS\r\n250 8BITMIME\r\n", "", 3},
		{"250\r\n", "", 1},
		{"220 " + strings.Repeat("x", smtpMaxLine) + "\r\n", "longer than", 0},
		{strings.Repeat("250-x\r\n", smtpMaxLines+1) + "250 x\r\n", "longer than", 0},
		{"250-x\r\n220 y\r\n", "malformed", 0},
		{"hello\r\n", "malformed", 0},
		{"250-x\r\n", "EOF", 0},
	} {
		rep, err := readReply(bufio.NewReaderSize(strings.NewReader(tc.in), smtpMaxLine))
		if tc.err == "" && (err != nil || len(rep.lines) != tc.lines) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("readReply(%.40q) = %d lines, %v; want %d lines, error %q", tc.in, len(rep.lines), err, tc.lines, tc.err)
		}
	}
}
