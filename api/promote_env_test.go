package api

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
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// The publishing tests run the whole flow on loopback: a real PostgreSQL
// (dbtest), a DNS server accepting RFC 2136 updates signed with TSIG
// (dnstest), and tlsrpt's own policy host over TLS with a certificate
// from a test CA, found in a certificate directory by SNI.

const (
	flowKey    = "tlsrpt-update"
	flowSecret = "Zmxvdy10ZXN0LXNlY3JldC1mb3ItdHNpZy0yNTY="
	flowOldID  = "20260101T000000Z"
)

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
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	k := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	if err := os.WriteFile(filepath.Join(dir, host+".crt"), crt, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host+".key"), k, 0o600); err != nil {
		t.Fatal(err)
	}
}

// flowEnv is a server with publishing configured, its DNS server and its
// policy host.
type flowEnv struct {
	*testEnv
	dns        *dnstest.Server
	ca         *testCA
	policyPort string
	inspector  *rollout.Inspector
}

// newFlowEnv starts the DNS server with the zone example.com (MX, the
// policy host's address, the old testing record), the server with
// hosting and RFC 2136 publishing, and the policy host over TLS.
func newFlowEnv(t *testing.T, hosted bool, mod func(*Config)) *flowEnv {
	t.Helper()
	f := &flowEnv{ca: newTestCA(t)}
	f.dns = dnstest.Start(t, "example.com", flowKey, flowSecret)
	f.dns.Add(t,
		"example.com. 300 IN MX 10 mx1.example.com.",
		"example.com. 300 IN MX 20 mx2.example.com.",
		"mx1.example.com. 300 IN A 127.0.0.1",
		"mx2.example.com. 300 IN A 127.0.0.1",
		"mta-sts.example.com. 300 IN A 127.0.0.1",
		`_mta-sts.example.com. 300 IN TXT "v=STSv1; id=`+flowOldID+`"`,
		`_smtp._tls.example.com. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@example.com"`,
		"shop.example.com. 300 IN MX 10 mx1.example.com.",
		"mta-sts.shop.example.com. 300 IN A 127.0.0.1",
		`_mta-sts.shop.example.com. 300 IN TXT "v=STSv1; id=`+flowOldID+`"`,
	)
	certDir := t.TempDir()
	f.ca.writeLeaf(t, certDir, "mta-sts.example.com")
	f.ca.writeLeaf(t, certDir, "mta-sts.shop.example.com")

	// The listener comes first: the inspector needs its port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, f.policyPort, _ = net.SplitHostPort(ln.Addr().String())
	// The MX hosts point at 127.0.0.1 where no test serves SMTP: no probe.
	f.inspector = (&rollout.Inspector{Resolver: f.dns.Addr, RootCAs: f.ca.pool, AllowPrivate: true, Timeout: 5 * time.Second, SkipSMTP: true}).WithPolicyPort(f.policyPort)
	f.testEnv = newTestEnv(t, func(c *Config) {
		c.Inspector = f.inspector
		c.Promote = publish.PromoteConfig{
			HostPolicy: hosted,
			Records:    &rollout.DNSUpdate{Server: f.dns.Addr, Zone: "example.com", KeyName: flowKey, Secret: flowSecret, Timeout: 5 * time.Second},
		}
		if mod != nil {
			mod(c)
		}
	})
	tc, err := publish.PolicyTLSConfig(publish.PolicyTLS{CertDir: certDir}, f.d)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f.s.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return f
}

// fetchPolicy fetches the hosted policy the way a sender does: HTTPS to
// mta-sts.<domain>, the certificate checked for that name.
func (f *flowEnv) fetchPolicy(t *testing.T, domain string) (int, string, string) {
	t.Helper()
	host := "mta-sts." + domain
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.ca.pool, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+f.policyPort)
		},
	}}
	resp, err := c.Get("https://" + host + "/.well-known/mta-sts.txt")
	if err != nil {
		t.Fatalf("fetching the policy of %s: %v", domain, err)
	}
	defer resp.Body.Close()
	var b [4096]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b[:n])
}

// seedDomain stores, for each of the last days, one clean report from
// each of three organisations for domain in testing; on the last
// failingDays days a quarter of the sessions fail with
// certificate-expired on mx2.
func seedDomain(t *testing.T, d *db.DB, now time.Time, domain string, days, failingDays int) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := d.AddDomain(ctx, domain); err != nil {
		t.Fatal(err)
	}
	mx := []string{"mx1." + domain, "mx2." + domain}
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := days; i >= 1; i-- {
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
				ReportID:         fmt.Sprintf("%s-%s-%d", domain, day.Format("20060102"), j),
				Policies: []reports.PolicyResult{{
					Policy: reports.Policy{Type: reports.PolicySTS, Domain: domain, MXHosts: mx,
						Strings: []string{"version: STSv1", "mode: testing", "mx: " + mx[0], "mx: " + mx[1], "max_age: 86400"}},
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

// decodeVersion reads a version answer.
func decodeVersion(t *testing.T, body []byte) versionJSON {
	t.Helper()
	var v versionJSON
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("decoding the version %s: %v", body, err)
	}
	return v
}
