package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout/smtptest"
)

// TestProbePostfix probes a real Postfix (Debian's package, a private
// instance on two loopback addresses) with a certificate from the test's
// CA: both addresses verify, nothing is reported, and Postfix's own log
// shows the session was EHLO, STARTTLS and QUIT only.
func TestProbePostfix(t *testing.T) {
	const d = "postfix.example"
	e := newInspectEnv(t)
	now := time.Now().UTC().Truncate(time.Second)
	ca := smtptest.NewCA(t, now)
	e.in.RootCAs.AddCert(ca.Cert)
	e.in.Now = func() time.Time { return now }
	certPEM, keyPEM := ca.LeafPEM(t, now.AddDate(0, 0, -1), now.AddDate(0, 0, 90), "mx1."+d)
	addrs := []string{"127.0.0.61", "127.0.0.62"}
	pf := smtptest.StartPostfix(t, "mx1."+d, addrs, certPEM, keyPEM)
	e.in.SMTPPort = pf.Port
	e.zone.add(t,
		"_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=20261201T000000Z\"",
		"mta-sts."+d+". 300 IN A 127.0.0.1",
		"_smtp._tls."+d+". 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@"+d+"\"",
		d+". 300 IN MX 10 mx1."+d+".",
		"mx1."+d+". 300 IN A "+addrs[0], "mx1."+d+". 300 IN A "+addrs[1])
	e.web.set("mta-sts."+d, policySite{contentType: "text/plain", body: "version: STSv1\nmode: testing\nmx: mx1." + d + "\nmax_age: 86400\n"})

	r := e.in.Check(context.Background(), d)
	if got := problemCodes(r); len(got) != 1 || got[0] != CodeTestingMode {
		t.Errorf("codes = %q, want only testing-mode\n%+v\npostfix log:\n%s", got, r.Problems, pf.Log())
	}
	if len(r.MX) != 1 || len(r.MX[0].Addresses) != 2 {
		t.Fatalf("mx = %+v", r.MX)
	}
	for _, p := range r.MX[0].Addresses {
		if !p.Reachable || !p.STARTTLS || !p.Verified || !strings.Contains(p.Banner, "ESMTP Postfix") ||
			!strings.HasPrefix(p.TLSVersion, "TLS 1.") || p.Certificate == nil || p.Certificate.DaysLeft != 90 {
			t.Errorf("probe of %s = %+v, cert %+v", p.Address, p, p.Certificate)
		}
	}
	// Postfix logs each session's commands when it ends.
	want := "ehlo=1 starttls=1 quit=1 commands=3"
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(pf.Log(), want) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(pf.Log(), want); n < 2 {
		t.Errorf("postfix logged %d sessions of %q, want 2:\n%s", n, want, pf.Log())
	}
	if strings.Contains(strings.ToLower(pf.Log()), "mail=") {
		t.Errorf("the probe sent MAIL:\n%s", pf.Log())
	}
}
