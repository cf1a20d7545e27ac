package publish

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// The tests of the promotion service run it whole on loopback: a real
// PostgreSQL (dbtest), a DNS server taking RFC 2136 updates signed with
// TSIG, and the policy host (PolicyFile) over TLS with a certificate from
// a test CA, found by SNI in a certificate directory (publishtest).

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// testNow is the one clock of these tests, shifted by testclock so they
// pass on any date.
var testNow = testclock.Base(time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC))

// env is the store and publishtest's DNS server, policy host and checker.
type env struct {
	*publishtest.Env
	d   *db.DB
	now func() time.Time
}

// newEnv starts the DNS server with the zone example.com (MX, the policy
// host's address, the record of the policy published before tlsrpt) and
// the policy host over TLS.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{d: dbtest.New(t), now: func() time.Time { return testNow }}
	e.Env = publishtest.Start(t, publishtest.Records("example.com")...)
	e.WriteLeaf(t, "mta-sts.example.com")
	tc, err := PolicyTLSConfig(PolicyTLS{CertDir: e.CertDir}, e.d)
	if err != nil {
		t.Fatal(err)
	}
	e.Serve(t, PolicyOnly(PolicyFile(e.d)), tc)
	return e
}

// records is an RFC 2136 publisher for the test zone; secret "" means a
// wrong key (every push refused: BADSIG).
func (e *env) records(secret string) *rollout.DNSUpdate {
	if secret == "" {
		secret = "d3Jvbmc="
	}
	return e.Update(secret)
}

// promoter is a promoter over the env, hosting the policy and pushing by
// RFC 2136 unless mod changes it.
func (e *env) promoter(mod func(*Promoter)) *Promoter {
	p := &Promoter{DB: e.d, PromoteConfig: PromoteConfig{HostPolicy: true, Records: e.records(publishtest.Secret), Checker: e.Checker},
		Now: e.now, Actor: "test"}
	if mod != nil {
		mod(p)
	}
	return p
}

// fetchPolicy fetches the hosted policy of example.com as a sender does.
func (e *env) fetchPolicy(t *testing.T) (int, string) {
	t.Helper()
	st, _, body := e.FetchPolicy(t, "example.com")
	return st, body
}

// seedDomain stores, for each of the last days before now, one clean
// report from each of three organisations for domain in mode; on the last
// failingDays days a quarter of the sessions fail with certificate-expired
// on mx2.
func seedDomain(t *testing.T, d *db.DB, now time.Time, domain string, days, failingDays int, mode rollout.Mode) {
	t.Helper()
	publishtest.SeedDays(t, d, now, domain, days, 1, failingDays, mode)
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
