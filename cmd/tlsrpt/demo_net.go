package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/democa"
	"github.com/tlsrpt/tlsrpt/internal/dnsserver"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// The demo's simulated network (docs/demo in README.md "Try it"): an
// in-process DNS server for the demo zones that takes RFC 2136 updates
// signed with a random TSIG key, a demo CA, and a policy host on a
// loopback port with a certificate for mta-sts.<each demo domain>. With
// them a promotion in the demo goes through the same reconciler as in
// production: the policy file is served, the TXT record is pushed, and
// both are verified live.

// demoTSIGKey and demoCredential name the demo's TSIG key and the secret
// the stored publishing setting refers to (TLSRPT_SECRET_DEMO_TSIG, given
// only to the demo's promoter, never to the process environment).
const (
	demoTSIGKey    = "tlsrpt-demo."
	demoCredential = "DEMO_TSIG"
)

// demoStartingID is the id of the testing policy each demo domain serves
// before anything is promoted: the demo's starting point.
const demoStartingID = "demostart1"

// demoStartingPolicy is the testing policy the demo's reports show for
// domain, the one served before any promotion.
func demoStartingPolicy(domain string) rollout.Policy {
	return rollout.Policy{Mode: rollout.ModeTesting, MX: []string{"mx1." + domain, "mx2." + domain}, MaxAge: 86400}
}

// demoNet is the running simulated network.
type demoNet struct {
	dns        *dnsserver.Server
	ca         *democa.CA
	secret     string // the TSIG secret (base64)
	policyAddr string // the policy host's 127.0.0.1:port
	policyPort string
	stopPolicy func()
}

// startDemoDNS starts the DNS server with the demo zones filled in.
func startDemoDNS() (*demoNet, error) {
	secret := base64.StdEncoding.EncodeToString([]byte(randomHex(32)))
	s, err := dnsserver.Start("127.0.0.1", reportgen.DemoDomains[0], demoTSIGKey, secret)
	if err != nil {
		return nil, err
	}
	n := &demoNet{dns: s, secret: secret}
	for i, d := range reportgen.DemoDomains {
		s.AddZone(d)
		lines := []string{
			d + ". 300 IN MX 10 mx1." + d + ".",
			d + ". 300 IN MX 20 mx2." + d + ".",
			fmt.Sprintf("mx1.%s. 300 IN A 192.0.2.%d", d, 10+i*10),
			fmt.Sprintf("mx2.%s. 300 IN A 192.0.2.%d", d, 11+i*10),
			"mta-sts." + d + ". 300 IN A 127.0.0.1",
			"_smtp._tls." + d + `. 300 IN TXT "v=TLSRPTv1; rua=mailto:` + demoMailboxUser + `"`,
		}
		if d == reportgen.DemoUnlistedMX {
			lines = append(lines, d+". 300 IN MX 30 mx3."+d+".", fmt.Sprintf("mx3.%s. 300 IN A 192.0.2.%d", d, 12+i*10))
		}
		if err := s.Add(lines...); err != nil {
			s.Close()
			return nil, err
		}
		if err := s.SetTXT("_mta-sts."+d, "v=STSv1; id="+demoStartingID); err != nil {
			s.Close()
			return nil, err
		}
	}
	// The reporters' DKIM keys, so ingest verifies the demo's reports
	// through DNS like any other.
	for _, rep := range reportgen.Reporters {
		name := rep.DKIMSel + "._domainkey." + rep.Domain
		txt, err := reportgen.LookupTXT(name)
		if err == nil {
			for _, v := range txt {
				err = errors.Join(err, s.SetTXT(name, v))
			}
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("serving the DKIM key of %s: %w", rep.Domain, err)
		}
	}
	return n, nil
}

// startPolicyHost starts the demo CA and the policy host on a loopback
// port: the hosted policy of each domain by SNI and Host, or, before
// tlsrpt published any version of a demo domain, its starting testing
// policy.
func (n *demoNet) startPolicyHost(store *db.DB, log *slog.Logger) error {
	ca, err := democa.New("tlsrpt demo CA", time.Now())
	if err != nil {
		return err
	}
	n.ca = ca
	var names []string
	for _, d := range reportgen.DemoDomains {
		names = append(names, "mta-sts."+d)
	}
	cert, err := ca.Issue(names...)
	if err != nil {
		return err
	}
	tc, err := publish.PolicyTLSConfig(publish.PolicyTLS{Fallback: &cert}, store)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("starting the demo policy host: %w", err)
	}
	n.policyAddr = ln.Addr().String()
	_, n.policyPort, _ = net.SplitHostPort(n.policyAddr)
	hosted := publish.PolicyFile(store)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		domain, ok := publish.PolicyDomain(r.Host)
		if ok && slices.Contains(reportgen.DemoDomains, domain) {
			if _, err := store.HostedPolicy(r.Context(), domain); errors.Is(err, db.ErrNotFound) {
				w.Header().Set("Content-Type", "text/plain")
				w.Header().Set("Cache-Control", "max-age=300")
				_, _ = w.Write([]byte(demoStartingPolicy(domain).String()))
				return
			}
		}
		hosted.ServeHTTP(w, r)
	})
	hs := &http.Server{Handler: publish.PolicyOnly(h), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() { _ = hs.Serve(tls.NewListener(ln, tc)) }()
	n.stopPolicy = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
	}
	return nil
}

// roots is the demo CA's pool, the only root the demo's checks trust.
func (n *demoNet) roots() *x509.CertPool { return n.ca.Pool() }

// getenv gives the promoter the demo's TSIG secret by the name the
// stored setting holds, and nothing of the process environment's own
// publishing secrets.
func (n *demoNet) getenv(fallback func(string) string) func(string) string {
	return func(k string) string {
		if k == "TLSRPT_SECRET_"+demoCredential {
			return n.secret
		}
		return fallback(k)
	}
}

// storePublishing stores the publishing setting of each demo domain:
// hosted by tlsrpt, the TXT record by RFC 2136 to the demo's DNS server.
func (n *demoNet) storePublishing(ctx context.Context, store *db.DB) error {
	for _, d := range reportgen.DemoDomains {
		p, err := store.SetPublishing(ctx, db.Publishing{Domain: d, Policy: rollout.PolicyHosted, Record: rollout.RecordRFC2136,
			Server: n.dns.Addr, TSIGKey: demoTSIGKey, Credential: demoCredential}, "demo")
		if err != nil {
			return fmt.Errorf("storing the publishing setting of %s: %w", d, err)
		}
		if _, err := store.AddAudit(ctx, db.AuditEntry{Actor: "demo", Action: "settings.publishing", Domain: d, Detail: p.AuditDetail()}); err != nil {
			return err
		}
	}
	return nil
}

// restoreRecords puts back, in the fresh DNS server, the TXT record of
// the newest version tlsrpt pushed for each demo domain: a database kept
// from an earlier run (--keep) has versions the starting record would
// contradict.
func (n *demoNet) restoreRecords(ctx context.Context, store *db.DB) error {
	for _, d := range reportgen.DemoDomains {
		versions, err := store.PolicyVersions(ctx, d, 0)
		if err != nil {
			return err
		}
		for _, v := range versions {
			if v.RecordPublishedAt != nil {
				if err := n.dns.SetTXT("_mta-sts."+d, "v=STSv1; id="+v.ID); err != nil {
					return err
				}
				break
			}
		}
	}
	return nil
}

func (n *demoNet) close() {
	if n.stopPolicy != nil {
		n.stopPolicy()
	}
	n.dns.Close()
}

// demoNetNotice says what the demo simulates.
func (n *demoNet) notice() string {
	return "Demo: simulated, all on this machine: DNS (an in-process server at " + n.dns.Addr +
		" holding the demo zones, updated by RFC 2136), a demo certificate authority (trusted only by this demo's checks), " +
		"the policy host mta-sts.<domain> on loopback port " + n.policyPort + " (before any promotion each domain serves the demo's starting testing policy, id " +
		demoStartingID + "), and the rua mailbox (in-process IMAP, the reporters' DKIM keys served by the demo's DNS). " +
		"The STARTTLS probe of the MX hosts is off: they do not exist."
}

func dnsHost(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func dnsPort(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
