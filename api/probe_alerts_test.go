package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/rollout/smtptest"
)

// TestProbeAlerts runs the daily probe of an enforcing domain three times,
// a day or two apart: the first round alerts that an MX without STARTTLS
// fails, the second that the other MX's certificate came within 14 days of
// expiry (the failing one is not repeated), the third nothing new; a round
// sooner than a day after the last probe probes nothing. Each probe is
// stored with its alerts.
func TestProbeAlerts(t *testing.T) {
	var (
		mu    sync.Mutex
		texts []string
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ Text string }
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		texts = append(texts, m.Text)
		mu.Unlock()
	}))
	defer hook.Close()
	ca := smtptest.NewCA(t, testNow)
	srv := smtptest.Start(t,
		smtptest.Host{Name: "mx1.example.com", Addrs: []string{"127.0.0.73"}, Cert: ca.Leaf(t, testNow.AddDate(0, 0, -1), testNow.AddDate(0, 0, 15), "mx1.example.com")},
		smtptest.Host{Name: "mx2.example.com", Addrs: []string{"127.0.0.83"}, Mode: smtptest.NoSTARTTLS},
	)
	zone := dnstest.Start(t, "example.com", "k.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	zone.Add(t, "example.com. 300 IN MX 10 mx1.example.com.", "example.com. 300 IN MX 20 mx2.example.com.",
		"mx1.example.com. 300 IN A 127.0.0.73", "mx2.example.com. 300 IN A 127.0.0.83")
	var clockMu sync.Mutex
	clock := testNow
	now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
	e := newTestEnv(t, func(c *Config) {
		c.Now = now
		c.PublicURL = "https://tlsrpt.example.net/"
		c.Inspector = &rollout.Inspector{Resolver: zone.Addr, RootCAs: ca.Pool, AllowPrivate: true, Timeout: 2 * time.Second, SMTPPort: srv.Port, Now: now}
		c.Promote.Notifier = &publish.Notifier{WebhookURL: hook.URL}
	})
	ctx := context.Background()
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.AddPolicyVersion(ctx, db.PolicyVersion{Domain: "example.com", Kind: rollout.KindPromote, ID: "20261101T000000Z",
		Policy: rollout.Policy{Mode: rollout.ModeEnforce, MX: []string{"*.example.com"}, MaxAge: 604800}, CreatedBy: "test",
		PolicyMethod: rollout.PolicyDownload, RecordMethod: rollout.RecordManual}); err != nil {
		t.Fatal(err)
	}
	round := func(advance time.Duration, wantProbed int, wantText string) {
		t.Helper()
		clockMu.Lock()
		clock = clock.Add(advance)
		clockMu.Unlock()
		mu.Lock()
		before := len(texts)
		mu.Unlock()
		if n := e.s.probeOnce(ctx); n != wantProbed {
			t.Errorf("probeOnce() at +%v = %d, want %d", clock.Sub(testNow), n, wantProbed)
		}
		mu.Lock()
		defer mu.Unlock()
		got := texts[before:]
		switch {
		case wantText == "" && len(got) != 0:
			t.Errorf("at +%v: webhook got %q, want nothing", clock.Sub(testNow), got)
		case wantText != "" && (len(got) != 1 || !strings.Contains(got[0], wantText) || !strings.Contains(got[0], "TLS certificate alert for example.com")):
			t.Errorf("at +%v: webhook got %q, want one alert containing %q", clock.Sub(testNow), got, wantText)
		}
	}
	round(0, 1, "MX mx2.example.com at 127.0.0.83:")
	round(time.Hour, 0, "")
	round(47*time.Hour, 1, "the certificate of MX mx1.example.com at 127.0.0.73:")
	round(25*time.Hour, 1, "")

	ps, err := e.d.Probes(ctx, "example.com", time.Time{}, 0)
	if err != nil || len(ps) != 3 {
		t.Fatalf("Probes() = %d, %v; want 3", len(ps), err)
	}
	if len(ps[0].Alerts) != 0 || len(ps[1].Alerts) != 1 || ps[1].NotifiedAt == nil || !strings.Contains(ps[1].Alerts[0], "expires in 13 days") ||
		len(ps[2].Alerts) != 1 || ps[2].Cause != db.ProbeDaily {
		t.Errorf("stored alerts = %q / %q / %q", ps[0].Alerts, ps[1].Alerts, ps[2].Alerts)
	}

	// The domain page shows the last probe and the days left over the
	// three probes (15 days at the first, 11 at the last).
	rec := e.do(e.login(db.RoleViewer), request{method: "GET", path: "/domains/example.com"})
	body := rec.Body.String()
	for _, want := range []string{"Last probe of the MX hosts", "(daily)", `<tr class="sev-error"><td>mx2.example.com</td>`,
		`aria-label="11 days left"`, "Days left of each certificate", `class="days-line days-error"`,
		"mx1.example.com 127.0.0.73:" + strconv.Itoa(srv.Port) + ": 11"} {
		if rec.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("domain page = %d, lacks %q", rec.Code, want)
		}
	}
	if n := strings.Count(body, "<polyline class=\"days-line"); n != 1 {
		t.Errorf("days-left chart has %d lines, want 1 (mx2 has no certificate)", n)
	}
}
