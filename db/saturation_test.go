package db_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// TestSumsSaturate: every sum the pages, the API and /metrics read stays
// at math.MaxInt64 where the rows add up past it, instead of failing with
// "bigint out of range" (a 500). The rollup rows are written at the
// maximum directly, two reporters of one day for a listed and for an
// unlisted domain; a report's policies are raised to the maximum to reach
// the per-report sums of the report lists.
func TestSumsSaturate(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	const max = math.MaxInt64
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	from, to := day.AddDate(0, 0, -1), day.AddDate(0, 0, 1)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := d.Pool.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, _, err := d.AddDomain(ctx, "listed.example"); err != nil {
		t.Fatal(err)
	}
	// A real report of each domain (for the report lists), then the
	// rollups at the maximum, two reporters and two keys each.
	ids := map[string]int64{}
	for _, dom := range []string{"listed.example", "unlisted.example"} {
		ids[dom] = storeDashReport(t, d, "a.example", dom, day, 1, []reports.FailureDetail{{ResultType: "certificate-expired",
			SendingMTAIP: "192.0.2.1", ReceivingMXHostname: "mx." + dom, FailedSessionCount: 1}}, reports.SourceFile)
		// Two policies per report, each at the maximum.
		exec(`INSERT INTO report_policies (report_id, day, position, policy_type, policy_strings, policy_domain, mx_hosts, successful, failed)
			SELECT report_id, day, position + 1, policy_type, policy_strings, policy_domain, mx_hosts, successful, failed
			FROM report_policies WHERE report_id = $1`, ids[dom])
		exec(`UPDATE report_policies SET successful = $2, failed = $2 WHERE report_id = $1`, ids[dom], int64(max))
		exec(`DELETE FROM daily_policy_rollups WHERE policy_domain = $1`, dom)
		for _, org := range []string{"a.example", "b.example"} {
			exec(`INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed)
				VALUES ($1, $2, $3, 'sts', true, $4, $4, $4)`, dom, day, org, int64(max))
		}
		// One MX on two days: its sum and the result type's overflow.
		for _, dy := range []time.Time{from, day} {
			exec(`INSERT INTO daily_failure_rollups (policy_domain, day, result_type, receiving_mx, trusted, failed)
				VALUES ($1, $2, 'certificate-expired', $3, true, $4)
				ON CONFLICT (policy_domain, day, result_type, receiving_mx, trusted) DO UPDATE SET failed = EXCLUDED.failed`,
				dom, dy, "mx1."+dom, int64(max))
		}
		// One day before: the same IP's row of another day sums with it.
		exec(`INSERT INTO daily_ip_rollups (policy_domain, day, trusted, sending_ip, failed) VALUES ($1, $2, true, '192.0.2.1', $3), ($1, $4, true, '192.0.2.1', $3)
			ON CONFLICT (policy_domain, day, trusted, sending_ip) DO UPDATE SET failed = EXCLUDED.failed`, dom, day, int64(max), from)
	}
	wantDay := func(name string, days []db.DashboardDay, err error) {
		t.Helper()
		if err != nil || len(days) != 1 || days[0].Reports != max || days[0].Successful != max || days[0].Failed != max || days[0].Sessions() != max {
			t.Errorf("%s = %+v, %v; want one day saturated at %d", name, days, err, int64(max))
		}
	}
	days, err := d.DomainSeries(ctx, "listed.example", from, to)
	wantDay("DomainSeries", days, err)
	listed, err := d.ListedSeries(ctx, from, to)
	wantDay("ListedSeries", listed["listed.example"], err)
	several, err := d.DomainsSeries(ctx, []string{"listed.example", "unlisted.example"}, from, to)
	wantDay("DomainsSeries(listed)", several["listed.example"], err)
	wantDay("DomainsSeries(unlisted)", several["unlisted.example"], err)
	un, err := d.UnlistedDomains(ctx, from, 10)
	if err != nil || len(un) != 1 || un[0].Reports != max || un[0].Sessions != max {
		t.Errorf("UnlistedDomains = %+v, %v; want unlisted.example saturated", un, err)
	}
	for _, dom := range []string{"listed.example", "unlisted.example"} {
		for _, by := range db.BreakdownDimensions {
			rows, err := d.Breakdown(ctx, dom, by, from, to, 10)
			if err != nil || len(rows) == 0 || rows[0].Failed != max || by == db.ByOrg && rows[0].Sessions != max {
				t.Errorf("Breakdown(%s, %s) = %+v, %v; want the first row saturated", dom, by, rows, err)
			}
		}
		list, err := d.DashboardReports(ctx, db.ReportListFilter{Domain: dom})
		if err != nil || len(list) != 1 || list[0].Successful != max || list[0].Failed != max {
			t.Errorf("DashboardReports(%s) = %+v, %v; want one report saturated", dom, list, err)
		}
		sums, n, err := d.ListReports(ctx, db.ReportFilter{Domain: dom})
		if err != nil || n != 1 || len(sums) != 1 || sums[0].Successful != max || sums[0].Failed != max {
			t.Errorf("ListReports(%s) = %+v, %d, %v; want one report saturated", dom, sums, n, err)
		}
	}
	if list, err := d.DashboardReports(ctx, db.ReportListFilter{}); err != nil || len(list) != 2 || list[0].Successful != max {
		t.Errorf("DashboardReports(all) = %+v, %v; want two reports saturated", list, err)
	}
	m, err := d.MetricsCounts(ctx)
	if err != nil || len(m.Sessions) != 1 || m.Sessions[0].Successful != max || m.Sessions[0].Failed != max ||
		len(m.Failures) != 1 || m.Failures[0].Failed != max {
		t.Errorf("MetricsCounts = %+v, %v; want listed.example's sums saturated", m, err)
	}
}
