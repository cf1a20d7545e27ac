package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
	"github.com/tlsrpt/tlsrpt/rollout/smtptest"
)

// TestDomainPageProbe: the live check on the domain page shows each MX
// address as the STARTTLS probe found it, with a bar of the certificate's
// days left, and the verdict names the bad addresses as blockers with the
// probe as evidence; the JSON verdict carries the probe too.
func TestDomainPageProbe(t *testing.T) {
	ca := smtptest.NewCA(t, testNow)
	srv := smtptest.Start(t,
		smtptest.Host{Name: "mx1.example.com", Addrs: []string{"127.0.0.71"}, Cert: ca.Leaf(t, testNow.AddDate(0, 0, -1), testNow.AddDate(0, 0, 60), "mx1.example.com")},
		smtptest.Host{Name: "mx2.example.com", Addrs: []string{"127.0.0.81"}, Cert: ca.Leaf(t, testNow.AddDate(0, -3, 0), testNow.AddDate(0, 0, -1), "mx2.example.com")},
		smtptest.Host{Name: "mx3.example.com", Addrs: []string{"127.0.0.91"}, Mode: smtptest.NoSTARTTLS},
	)
	zone := dnstest.Start(t, "example.com", "k.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	zone.Add(t, "example.com. 300 IN MX 10 mx1.example.com.", "example.com. 300 IN MX 20 mx2.example.com.", "example.com. 300 IN MX 30 mx3.example.com.",
		"mx1.example.com. 300 IN A 127.0.0.71", "mx2.example.com. 300 IN A 127.0.0.81", "mx3.example.com. 300 IN A 127.0.0.91")
	e := newTestEnv(t, func(c *Config) {
		c.Inspector = &rollout.Inspector{Resolver: zone.Addr, RootCAs: ca.Pool, AllowPrivate: true, Timeout: 2 * time.Second,
			SMTPPort: srv.Port, Now: func() time.Time { return testNow }}
	})
	if _, _, err := e.d.AddDomain(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	v := e.login(db.RoleViewer)
	rec := e.do(v, request{method: "GET", path: "/domains/example.com?check=1"})
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "MX hosts over STARTTLS") {
		t.Fatalf("domain page with check = %d: %.800s", rec.Code, body)
	}
	for _, want := range []string{
		`<tr class="sev-ok"><td>mx1.example.com</td>`,
		`aria-label="60 days left"`,
		`<tr class="sev-error"><td>mx2.example.com</td>`,
		"certificate has expired",
		`<tr class="sev-error"><td>mx3.example.com</td><td><code>127.0.0.91:`,
		"no STARTTLS",
		"probe of 127.0.0.81:",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("domain page lacks %q", want)
		}
	}
	tok := e.token(db.RoleViewer)
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/verdict?check=1"})
	for _, want := range []string{`"code":"mx-certificate-invalid"`, `"code":"mx-starttls-missing"`, `"probe":{"address":"127.0.0.81:`, `"days_left":-1`} {
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET verdict?check=1 = %d, lacks %s: %.600s", rec.Code, want, rec.Body)
		}
	}
}
