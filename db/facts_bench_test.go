package db_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// seedHistory fills the daily rollups the verdict reads with the history of
// n domains (d0000.example ...) over the given days before the last 30
// days before factsAt: three reporters a day, failures on one day in seven.
// The rollup rows are what Facts reads, so they are written directly, as
// the store would have left them; the last 30 days of scenarioDomain are
// then stored as real reports (scenario) so that examples and the policy
// read back real rows.
func seedHistory(b *testing.B, d *db.DB, n, days int) {
	b.Helper()
	ctx := context.Background()
	end := rollout.UTCDay(factsAt).AddDate(0, 0, -30)
	start := end.AddDate(0, 0, -days)
	domains := `SELECT CASE WHEN i = 0 THEN 'example.com' ELSE 'd' || lpad(i::text, 4, '0') || '.example' END AS dom, i
		FROM generate_series(0, $1 - 1) i`
	days_ := `SELECT day::date AS day FROM generate_series($2::date, $3::date - 1, '1 day') day`
	stmts := []string{
		`INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed)
		SELECT dom, day, org, 'sts', true, 1, 200 + i % 50,
			CASE WHEN (i + extract(doy FROM day)::int) % 7 = 0 THEN 3 ELSE 0 END
		FROM (` + domains + `) ds, (` + days_ + `) dd, unnest(ARRAY['google.com', 'microsoft.com', 'mail.ru']) org`,
		`INSERT INTO daily_failure_rollups (policy_domain, day, result_type, receiving_mx, trusted, failed)
		SELECT dom, day, rt, 'mx1.' || dom, true, 3
		FROM (` + domains + `) ds, (` + days_ + `) dd, unnest(ARRAY['certificate-expired', 'starttls-not-supported']) rt
		WHERE (i + extract(doy FROM day)::int) % 7 = 0`,
		`INSERT INTO daily_sender_rollups (policy_domain, day, organization_name, sending_range, result_type, trusted, failed, last_detail_id)
		SELECT dom, day, 'google.com', '209.85.220.0/24', 'certificate-expired', true, 3, 0
		FROM (` + domains + `) ds, (` + days_ + `) dd
		WHERE (i + extract(doy FROM day)::int) % 7 = 0`,
		`INSERT INTO daily_mode_rollups (policy_domain, day, mode, trusted, reports, last_policy_id)
		SELECT dom, day, 'testing', true, 3, 0
		FROM (` + domains + `) ds, (` + days_ + `) dd`,
	}
	for _, s := range stmts {
		if _, err := d.Pool.Exec(ctx, s, n, start, end); err != nil {
			b.Fatalf("seeding: %v", err)
		}
	}
	if _, err := d.Pool.Exec(ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkFactsEvaluate measures what "tlsrpt rollout --offline" and the
// dashboard pay for a verdict: Facts (one read-only snapshot, one batch
// of rollup queries) plus Evaluate, on a store holding the history of many
// domains. Target 4 of BENCHMARKS.md: under 50 ms at the 95th percentile with 3
// years of 1,000 domains, and ten times the history costing less than
// 1.5 times as much. It reports the p50 and p95 of the iterations.
func BenchmarkFactsEvaluate(b *testing.B) {
	for _, bc := range []struct{ domains, years int }{
		{100, 1}, {100, 10}, {1000, 3},
	} {
		b.Run(fmt.Sprintf("domains=%d/years=%d", bc.domains, bc.years), func(b *testing.B) {
			d := dbtest.New(b)
			seedHistory(b, d, bc.domains, bc.years*365)
			s := &scenario{t: b, d: d, mode: rollout.ModeTesting, mx: scenarioMX}
			s.clean(orgs, 30, 1000)
			for i := 1; i <= 5; i++ {
				s.report("mail.ru", i, 0, detail("certificate-expired", "mx1.example.com", "94.100.180.7", 4))
			}
			ctx := context.Background()
			for _, r := range s.rs {
				if _, _, err := d.StoreReport(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			th := rollout.DefaultThresholds()
			var durs []time.Duration
			for b.Loop() {
				t0 := time.Now()
				f, err := d.Facts(ctx, scenarioDomain, factsAt, th.SpanDays())
				if err != nil {
					b.Fatal(err)
				}
				v := rollout.Evaluate(f, th)
				durs = append(durs, time.Since(t0))
				if v.Evidence.Sessions == 0 || len(v.Warnings) == 0 {
					b.Fatalf("verdict over the seeded store is empty: %+v", v.Evidence)
				}
			}
			slices.Sort(durs)
			pct := func(p float64) float64 {
				return float64(durs[int(p*float64(len(durs)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50-ms")
			b.ReportMetric(pct(0.95), "p95-ms")
		})
	}
}
