package autopilot_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// The autopilot tests run on a simulated clock over a real PostgreSQL
// (dbtest), a loopback DNS server taking RFC 2136 updates signed with TSIG
// (dnstest), and a policy host over TLS that serves what tlsrpt hosts for
// the domain (or, before the first version, the operator's own testing
// policy). Each simulated day stores the day before's reports and runs
// one evaluation.

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const (
	tsigKey    = "tlsrpt-update"
	tsigSecret = "YXV0b3BpbG90LXRlc3Qtc2VjcmV0LWZvci10c2lnLTI1Ng=="
	oldID      = "20250101T000000Z"
)

// start is the first simulated day, 06:00 UTC (evaluations run then).
var start = testclock.Base(time.Date(2026, 3, 2, 6, 0, 0, 0, time.UTC))

// clock is the one clock of a test: the store, the promoter and the
// engine read it; the test moves it a day at a time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// hook is the webhook receiver: it keeps the alerts it got.
type hook struct {
	mu     sync.Mutex
	alerts []publish.Alert
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Text  string        `json:"text"`
		Alert publish.Alert `json:"tlsrpt"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.alerts = append(h.alerts, msg.Alert)
	h.mu.Unlock()
}

func (h *hook) got() []publish.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]publish.Alert(nil), h.alerts...)
}

type env struct {
	d      *db.DB
	clock  *clock
	dns    *dnstest.Server
	engine *autopilot.Engine
	p      *publish.Promoter
	hook   *hook
	// down makes the policy host answer 503: a blocker of the live check.
	down atomic.Bool
}

func newEnv(t *testing.T, domains ...string) *env {
	t.Helper()
	e := &env{d: dbtest.New(t), clock: &clock{t: start}, hook: &hook{}}
	e.d.Now = e.clock.Now
	zone := "example.com"
	e.dns = dnstest.Start(t, zone, tsigKey, tsigSecret)
	caCert, caKey, pool := newCA(t)
	var names []string
	for _, d := range domains {
		e.dns.Add(t,
			d+". 300 IN MX 10 mx1."+d+".",
			d+". 300 IN MX 20 mx2."+d+".",
			"mx1."+d+". 300 IN A 127.0.0.1",
			"mx2."+d+". 300 IN A 127.0.0.1",
			"mta-sts."+d+". 300 IN A 127.0.0.1",
			`_mta-sts.`+d+`. 300 IN TXT "v=STSv1; id=`+oldID+`"`,
			`_smtp._tls.`+d+`. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@`+d+`"`,
		)
		names = append(names, "mta-sts."+d)
		if _, _, err := e.d.AddDomain(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	host := httptest.NewUnstartedServer(http.HandlerFunc(e.servePolicy))
	host.TLS = &tls.Config{Certificates: []tls.Certificate{leaf(t, caCert, caKey, names)}}
	host.StartTLS()
	t.Cleanup(host.Close)
	_, port, _ := net.SplitHostPort(host.Listener.Addr().String())
	in := (&rollout.Inspector{Resolver: e.dns.Addr, RootCAs: pool, AllowPrivate: true, Timeout: 5 * time.Second, SkipSMTP: true}).WithPolicyPort(port)
	hookSrv := httptest.NewServer(e.hook)
	t.Cleanup(hookSrv.Close)
	e.p = &publish.Promoter{DB: e.d, Now: e.clock.Now, PromoteConfig: publish.PromoteConfig{
		HostPolicy: true,
		Records:    &rollout.DNSUpdate{Server: e.dns.Addr, Zone: zone, KeyName: tsigKey, Secret: tsigSecret, Timeout: 5 * time.Second},
		Checker:    in,
		Notifier:   &publish.Notifier{WebhookURL: hookSrv.URL},
	}}
	e.engine = autopilot.New(e.p)
	return e
}

// servePolicy is the policy host: the version tlsrpt hosts for the domain
// of the Host header, else the operator's testing policy.
func (e *env) servePolicy(w http.ResponseWriter, r *http.Request) {
	if e.down.Load() || r.URL.Path != "/.well-known/mta-sts.txt" {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	domain := strings.TrimPrefix(host, "mta-sts.")
	body := testingPolicy(domain)
	v, err := e.d.HostedPolicy(r.Context(), domain)
	switch {
	case err == nil:
		body = v.Body
	case !errors.Is(err, db.ErrNotFound):
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, body)
}

func testingPolicy(domain string) string {
	return "version: STSv1\r\nmode: testing\r\nmx: mx1." + domain + "\r\nmx: mx2." + domain + "\r\nmax_age: 86400\r\n"
}

// seedDay stores one report from each of three organisations for domain
// on day, showing mode; failing makes a quarter of the sessions fail with
// certificate-expired on mx2.
func (e *env) seedDay(t *testing.T, domain string, day time.Time, mode rollout.Mode, failing bool) {
	t.Helper()
	mx := []string{"mx1." + domain, "mx2." + domain}
	for j, org := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."} {
		ok := int64(500 + j*10)
		var failed int64
		var details []reports.FailureDetail
		if failing {
			failed = ok / 4
			details = []reports.FailureDetail{{ResultType: reports.ResultCertificateExpired, SendingMTAIP: fmt.Sprintf("192.0.2.%d", j+1),
				ReceivingMXHostname: mx[1], FailedSessionCount: failed}}
		}
		rep := &reports.Report{
			OrganizationName: org,
			DateRange:        reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
			ContactInfo:      "tlsrpt@" + fmt.Sprint(j) + ".example",
			ReportID:         fmt.Sprintf("%s-%s-%d", domain, day.Format("20060102"), j),
			Policies: []reports.PolicyResult{{
				Policy: reports.Policy{Type: reports.PolicySTS, Domain: domain, MXHosts: mx,
					Strings: []string{"version: STSv1", "mode: " + string(mode), "mx: " + mx[0], "mx: " + mx[1], "max_age: 86400"}},
				Summary:        reports.Summary{TotalSuccessfulSessionCount: ok, TotalFailureSessionCount: failed},
				FailureDetails: details,
			}},
		}
		js, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.d.StoreReport(context.Background(), reports.Received{Report: rep, JSON: js, Source: reports.SourceFile,
			SourceRef: "seed/" + rep.ReportID, ReceivedAt: day.Add(30 * time.Hour)}); err != nil {
			t.Fatalf("StoreReport(%s): %v", rep.ReportID, err)
		}
	}
}

// seedTesting stores days of clean testing reports before the clock's day.
func (e *env) seedTesting(t *testing.T, domain string, days int) {
	t.Helper()
	today := day(e.clock.Now())
	for i := days; i >= 1; i-- {
		e.seedDay(t, domain, today.AddDate(0, 0, -i), rollout.ModeTesting, false)
	}
}

// mode is what the domain serves now: the newest version's mode, else
// testing.
func (e *env) mode(t *testing.T, domain string) rollout.Mode {
	t.Helper()
	v, err := e.d.LatestPolicyVersion(context.Background(), domain)
	if errors.Is(err, db.ErrNotFound) {
		return rollout.ModeTesting
	}
	if err != nil {
		t.Fatal(err)
	}
	return v.Policy.Mode
}

func day(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Certificates are checked against the real clock by crypto/tls.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "autopilot test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return cert, key, pool
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, names []string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
