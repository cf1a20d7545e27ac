package api

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// The publishing tests run the whole flow on loopback: a real PostgreSQL
// (dbtest), a DNS server accepting RFC 2136 updates signed with TSIG, and
// tlsrpt's own policy host over TLS with a certificate from a test CA,
// found in a certificate directory by SNI (publishtest).

// flowEnv is a server with publishing configured, its DNS server and its
// policy host.
type flowEnv struct {
	*testEnv
	// pub is named, not embedded: its DNS would sit beside testEnv's dns.
	pub *publishtest.Env
}

// newFlowEnv starts the DNS server with the zone example.com (MX, the
// policy host's address, the old testing record, the TLSRPT record) and
// shop.example.com (served by example.com's MX hosts), the server with
// hosting and RFC 2136 publishing, and the policy host over TLS.
func newFlowEnv(t *testing.T, hosted bool, mod func(*Config)) *flowEnv {
	t.Helper()
	f := &flowEnv{pub: publishtest.Start(t, append(publishtest.Records("example.com"),
		publishtest.TLSRPTRecord("example.com"),
		"shop.example.com. 300 IN MX 10 mx1.example.com.",
		"mta-sts.shop.example.com. 300 IN A 127.0.0.1",
		`_mta-sts.shop.example.com. 300 IN TXT "v=STSv1; id=`+publishtest.OldID+`"`,
	)...)}
	f.pub.WriteLeaf(t, "mta-sts.example.com")
	f.pub.WriteLeaf(t, "mta-sts.shop.example.com")
	// The MX hosts point at 127.0.0.1 where no test serves SMTP: no probe.
	f.testEnv = newTestEnv(t, func(c *Config) {
		c.Inspector = f.pub.Checker
		c.Promote = publish.PromoteConfig{HostPolicy: hosted, Records: f.pub.Update(publishtest.Secret)}
		if mod != nil {
			mod(c)
		}
	})
	tc, err := publish.PolicyTLSConfig(publish.PolicyTLS{CertDir: f.pub.CertDir}, f.d)
	if err != nil {
		t.Fatal(err)
	}
	f.pub.Serve(t, f.s.Handler(), tc)
	return f
}

// seedDomain stores, for each of the last days, one clean report from
// each of three organisations for domain in testing; on the last
// failingDays days a quarter of the sessions fail with
// certificate-expired on mx2.
func seedDomain(t *testing.T, d *db.DB, now time.Time, domain string, days, failingDays int) {
	t.Helper()
	publishtest.SeedDays(t, d, now, domain, days, 1, failingDays, rollout.ModeTesting)
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
