// Package publishtest is the loopback world of the promotion tests
// (rollout/publish, rollout/autopilot, api): a DNS server taking RFC 2136
// updates signed with TSIG (dnstest), a CA (democa) for the certificates
// of the policy hosts, the listener of the policy host, an inspector that
// reaches them, and the reports a domain's senders would have sent.
//
// It does not import publish, so that publish's own tests can use it: the
// caller builds the policy host's handler and TLS configuration and hands
// them to Serve.
package publishtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/internal/democa"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

// Zone is the zone the DNS server holds; the tests' domains are in it.
const Zone = "example.com"

// The TSIG key that signs the updates of the zone, and the id of the
// policy each domain published before tlsrpt.
const (
	KeyName = "tlsrpt-update"
	Secret  = "Zmxvdy10ZXN0LXNlY3JldC1mb3ItdHNpZy0yNTY="
	OldID   = "20260101T000000Z"
)

// Records returns the zone lines of domain: its two MX hosts, their
// addresses and the policy host's (all 127.0.0.1, where the policy host
// listens and no SMTP is served), and the MTA-STS record of the policy
// published before tlsrpt.
func Records(domain string) []string {
	return []string{
		domain + ". 300 IN MX 10 mx1." + domain + ".",
		domain + ". 300 IN MX 20 mx2." + domain + ".",
		"mx1." + domain + ". 300 IN A 127.0.0.1",
		"mx2." + domain + ". 300 IN A 127.0.0.1",
		"mta-sts." + domain + ". 300 IN A 127.0.0.1",
		`_mta-sts.` + domain + `. 300 IN TXT "v=STSv1; id=` + OldID + `"`,
	}
}

// TLSRPTRecord returns the zone line of domain's TLSRPT record, which
// sends the reports to tlsrpt.
func TLSRPTRecord(domain string) string {
	return `_smtp._tls.` + domain + `. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@` + domain + `"`
}

// Env is the DNS server, the CA, the policy host's listener and the
// inspector of one test.
type Env struct {
	DNS *dnstest.Server
	CA  *democa.CA
	// Pool trusts CA only: the inspector's and FetchPolicy's roots.
	Pool *x509.CertPool
	// CertDir is the policy host's certificate directory, empty until
	// WriteLeaf fills it.
	CertDir string
	// PolicyPort is the port of the policy host on 127.0.0.1.
	PolicyPort string
	// Checker inspects the domains of the zone, reaching the policy
	// host on PolicyPort; it probes no SMTP, since none is served.
	Checker *rollout.Inspector
	ln      net.Listener
}

// Start starts the DNS server of Zone holding records and opens the policy
// host's listener (Serve serves on it), so that the checker knows its port
// before the server that Serve runs is built.
func Start(t testing.TB, records ...string) *Env {
	t.Helper()
	e := &Env{CA: NewCA(t), CertDir: t.TempDir()}
	e.Pool = e.CA.Pool()
	e.DNS = dnstest.Start(t, Zone, KeyName, Secret)
	e.DNS.Add(t, records...)
	var err error
	if e.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	_, e.PolicyPort, _ = net.SplitHostPort(e.ln.Addr().String())
	e.Checker = (&rollout.Inspector{Resolver: e.DNS.Addr, RootCAs: e.Pool, AllowPrivate: true, Timeout: 5 * time.Second, SkipSMTP: true}).WithPolicyPort(e.PolicyPort)
	return e
}

// NewCA returns a CA for the policy hosts' certificates.
func NewCA(t testing.TB) *democa.CA {
	t.Helper()
	// crypto/tls checks certificates against the real clock, not the
	// test's.
	ca, err := democa.New("tlsrpt test CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// Leaf issues one certificate from ca for names.
func Leaf(t testing.TB, ca *democa.CA, names ...string) tls.Certificate {
	t.Helper()
	c, err := ca.Issue(names...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// WriteLeaf issues a certificate from ca for host and writes <host>.crt
// (the chain) and <host>.key into dir, as an operator's certificate
// directory holds them.
func WriteLeaf(t testing.TB, ca *democa.CA, dir, host string) {
	t.Helper()
	c := Leaf(t, ca, host)
	var crt []byte
	for _, der := range c.Certificate {
		crt = append(crt, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host+".crt"), crt, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, host+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// WriteLeaf writes the certificate of host into CertDir.
func (e *Env) WriteLeaf(t testing.TB, host string) {
	t.Helper()
	WriteLeaf(t, e.CA, e.CertDir, host)
}

// Serve serves h over TLS with tc on the policy host's listener until the
// test ends.
func (e *Env) Serve(t testing.TB, h http.Handler, tc *tls.Config) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = e.ln
	srv.TLS = tc
	srv.StartTLS()
	t.Cleanup(srv.Close)
}

// Update returns an RFC 2136 publisher for the zone signing with secret.
func (e *Env) Update(secret string) *rollout.DNSUpdate {
	return &rollout.DNSUpdate{Server: e.DNS.Addr, Zone: Zone, KeyName: KeyName, Secret: secret, Timeout: 5 * time.Second}
}

// FetchPolicy fetches the policy of domain the way a sender does: HTTPS to
// mta-sts.<domain>, the certificate checked for that name. It returns the
// status, the content type and the start of the body.
func (e *Env) FetchPolicy(t testing.TB, domain string) (int, string, string) {
	t.Helper()
	host := "mta-sts." + domain
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: e.Pool, ServerName: host},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+e.PolicyPort)
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
