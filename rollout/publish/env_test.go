package publish

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

// The tests of the promotion service run it whole on loopback: a real
// PostgreSQL (dbtest), a DNS server taking RFC 2136 updates signed with
// TSIG (dnstest), and the policy host (PolicyFile) over TLS with a
// certificate from a test CA, found by SNI in a certificate directory.

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

const (
	testKey    = "tlsrpt-update"
	testSecret = "Zmxvdy10ZXN0LXNlY3JldC1mb3ItdHNpZy0yNTY="
	oldID      = "20260101T000000Z"
)

// testNow is the one clock of these tests, shifted by testclock so they
// pass on any date.
var testNow = testclock.Base(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))

// testCA issues certificates for the policy hosts.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tlsrpt test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// writeLeaf writes <host>.crt and <host>.key into dir.
func (ca *testCA) writeLeaf(t *testing.T, dir, host string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// env is the store, the DNS server, the policy host and a checker that
// reaches them.
type env struct {
	d          *db.DB
	dns        *dnstest.Server
	ca         *testCA
	policyPort string
	checker    *rollout.Inspector
	now        func() time.Time
}

// newEnv starts the DNS server with the zone example.com (MX, the policy
// host's address, the record of the policy published before tlsrpt) and
// the policy host over TLS.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{d: dbtest.New(t), ca: newTestCA(t), now: func() time.Time { return testNow }}
	e.dns = dnstest.Start(t, "example.com", testKey, testSecret)
	e.dns.Add(t,
		"example.com. 300 IN MX 10 mx1.example.com.",
		"example.com. 300 IN MX 20 mx2.example.com.",
		"mx1.example.com. 300 IN A 127.0.0.1",
		"mx2.example.com. 300 IN A 127.0.0.1",
		"mta-sts.example.com. 300 IN A 127.0.0.1",
		`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=`+oldID+`"`,
	)
	certDir := t.TempDir()
	e.ca.writeLeaf(t, certDir, "mta-sts.example.com")
	tc, err := PolicyTLSConfig(PolicyTLS{CertDir: certDir}, e.d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(PolicyOnly(PolicyFile(e.d)))
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, e.policyPort, _ = net.SplitHostPort(srv.Listener.Addr().String())
	e.checker = (&rollout.Inspector{Resolver: e.dns.Addr, RootCAs: e.ca.pool, AllowPrivate: true, Timeout: 5 * time.Second, SkipSMTP: true}).WithPolicyPort(e.policyPort)
	return e
}

// records is an RFC 2136 publisher for the test zone; secret "" means a
// wrong key (every push refused: BADSIG).
func (e *env) records(secret string) *rollout.DNSUpdate {
	if secret == "" {
		secret = "d3Jvbmc="
	}
	return &rollout.DNSUpdate{Server: e.dns.Addr, Zone: "example.com", KeyName: testKey, Secret: secret, Timeout: 5 * time.Second}
}

// promoter is a promoter over the env, hosting the policy and pushing by
// RFC 2136 unless mod changes it.
func (e *env) promoter(mod func(*Promoter)) *Promoter {
	p := &Promoter{DB: e.d, PromoteConfig: PromoteConfig{HostPolicy: true, Records: e.records(testSecret), Checker: e.checker},
		Now: e.now, Actor: "test"}
	if mod != nil {
		mod(p)
	}
	return p
}

// fetchPolicy fetches the hosted policy of example.com as a sender does.
func (e *env) fetchPolicy(t *testing.T) (int, string) {
	t.Helper()
	host := "mta-sts.example.com"
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.ca.pool, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+e.policyPort)
		},
	}}
	resp, err := c.Get("https://" + host + "/.well-known/mta-sts.txt")
	if err != nil {
		t.Fatalf("fetching the policy: %v", err)
	}
	defer resp.Body.Close()
	var b [4096]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode, string(b[:n])
}

// seedDomain stores, for each of the last days before now, one clean
// report from each of three organisations for domain in mode; on the last
// failingDays days a quarter of the sessions fail with certificate-expired
// on mx2.
func seedDomain(t *testing.T, d *db.DB, now time.Time, domain string, days, failingDays int, mode rollout.Mode) {
	t.Helper()
	seedDays(t, d, now, domain, days, 1, failingDays, mode)
}

// seedDays stores the reports of the days from-1 .. last before now
// (seedDomain's shape), in mode.
func seedDays(t *testing.T, d *db.DB, now time.Time, domain string, from, last, failingDays int, mode rollout.Mode) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := d.AddDomain(ctx, domain); err != nil {
		t.Fatal(err)
	}
	mx := []string{"mx1." + domain, "mx2." + domain}
	today := rollout.UTCDay(now)
	for i := from; i >= last; i-- {
		day := today.AddDate(0, 0, -i)
		for j, org := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."} {
			ok := int64(500 + j*10)
			var failed int64
			var details []reports.FailureDetail
			if i <= failingDays {
				failed = ok / 4
				details = []reports.FailureDetail{{ResultType: reports.ResultCertificateExpired, SendingMTAIP: fmt.Sprintf("192.0.2.%d", j+1),
					ReceivingMXHostname: mx[1], FailedSessionCount: failed}}
			}
			rep := &reports.Report{
				OrganizationName: org,
				DateRange:        reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
				ContactInfo:      "tlsrpt@" + fmt.Sprint(j) + ".example",
				ReportID:         fmt.Sprintf("%s-%s-%d-%s", domain, day.Format("20060102"), j, mode),
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
			if _, _, err := d.StoreReport(ctx, reports.Received{Report: rep, JSON: js, Source: reports.SourceFile,
				SourceRef: "seed/" + rep.ReportID, ReceivedAt: day.Add(30 * time.Hour)}); err != nil {
				t.Fatalf("StoreReport(%s): %v", rep.ReportID, err)
			}
		}
	}
}

// states returns the state of each step of v by name.
func states(v db.PolicyVersion) map[string]string {
	out := map[string]string{}
	for _, s := range v.Steps {
		out[s.Name] = s.State
	}
	return out
}

// audits returns the audit entries of domain with action, oldest first.
func audits(t *testing.T, d *db.DB, domain, action string) []db.AuditEntry {
	t.Helper()
	all, err := d.AuditLog(context.Background(), domain, 500)
	if err != nil {
		t.Fatal(err)
	}
	var out []db.AuditEntry
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Action == action {
			out = append(out, all[i])
		}
	}
	return out
}
