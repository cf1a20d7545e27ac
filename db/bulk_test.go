package db_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// bulkSet builds n reports over 12 policy domains (three of them listed),
// 40 days across two months, three reporters, file and untrusted IMAP
// sources, testing and enforce policies; and, first in the order, 300
// reports of cap.example on one day, each with its own sending address, so
// that the sending-IP rollup's MaxSendingIPsPerDay bound and its
// OtherSendingIPs row are reached. Reports i and i+1 of every 50 are the
// same report (a duplicate within the input).
func bulkSet(n int) []reports.Received {
	start := time.Date(2026, 2, 10, 0, 0, 0, 0, time.UTC)
	var out []reports.Received
	for i := range 300 {
		r := sample("cap.example", fmt.Sprintf("cap-%d", i), start)
		r.Report.Policies[0].Policy.Domain = "cap.example"
		r.Report.Policies[0].FailureDetails[0].SendingMTAIP = fmt.Sprintf("198.51.%d.%d", i/200, i%200)
		r.Report.Policies[0].FailureDetails[0].FailedSessionCount = int64(1 + i%7)
		out = append(out, r)
	}
	orgs := []string{"google.com", "microsoft.com", "yahoo.com"}
	for i := range n {
		k := i
		if i%50 == 1 {
			k = i - 1 // the same report again
		}
		day := start.AddDate(0, 0, k%40)
		r := sample(orgs[k%3], fmt.Sprintf("bulk-%d", k), day)
		p := &r.Report.Policies[0]
		p.Policy.Domain = fmt.Sprintf("d%02d.example", k%12)
		if k%5 == 0 {
			p.Policy.Strings = []string{"version: STSv1", "mode: enforce"}
		}
		p.FailureDetails[0].SendingMTAIP = fmt.Sprintf("2001:db8::%x", k%97)
		p.FailureDetails[0].FailedSessionCount = int64(1 + k%11)
		p.Summary.TotalSuccessfulSessionCount = int64(100 + k)
		if k%7 == 0 {
			r.Source = reports.SourceIMAP // no DKIM: untrusted
		}
		out = append(out, r)
	}
	return out
}

// TestBulkChunkRollupsEqual pins what a bulk import must keep: the same
// reports stored in batches of 500 (the normal import) into one database
// and as one chunk of 1,800 (one transaction, as a bulk chunk would be)
// into another, on top of the same already-stored reports (one of them
// excluded and sent again), with the same reports excluded afterwards
// (trusted, untrusted, past the sending-IP bound), leave every
// rollup table equal row by row, the same unlisted domains, and the same
// verdict badges invalidated (migration 070's trigger fires for the listed
// domains only). No separate bulk store path exists (docs/bench-import.md,
// "Bulk backfill"): a chunk goes through StoreReports; a future one must
// pass this test. The sending-IP bound is reached within the first batch
// of 500 on both sides: past the bound, which addresses get a row depends
// on the order reports arrive in, by design.
func TestBulkChunkRollupsEqual(t *testing.T) {
	ctx := context.Background()
	a, b := dbtest.New(t), dbtest.New(t)
	set := bulkSet(1500)
	pre := []reports.Received{set[310], set[700], sample("google.com", "pre-only", day1)}
	for _, d := range []*db.DB{a, b} {
		for _, dom := range []string{"d01.example", "d02.example", "cap.example"} {
			if _, _, err := d.AddDomain(ctx, dom); err != nil {
				t.Fatal(err)
			}
		}
		res, err := d.StoreReports(ctx, pre)
		if err != nil {
			t.Fatal(err)
		}
		// An excluded report (docs/reporters.md) that the set sends
		// again: a duplicate, so it must stay out of the rollups.
		if err := d.ExcludeReport(ctx, res[1].ID, "admin", "test", day1); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Pool.Exec(ctx, `DELETE FROM verdict_invalidations`); err != nil {
			t.Fatal(err)
		}
	}
	var newA, newB int
	for off := 0; off < len(set); off += 500 {
		res, err := a.StoreReports(ctx, set[off:min(off+500, len(set))])
		if err != nil {
			t.Fatal(err)
		}
		newA += countNew(res)
	}
	res, err := b.StoreReports(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	newB = countNew(res)
	// One new report of each kind excluded after the import, on both
	// sides: a trusted one, an untrusted one (IMAP), one past the bound.
	for _, i := range []int{300 + 11, 300 + 14, 299} {
		for _, d := range []*db.DB{a, b} {
			var id int64
			rp := set[i].Report
			if err := d.Pool.QueryRow(ctx, `SELECT id FROM reports WHERE organization_name = $1 AND report_id = $2`,
				rp.OrganizationName, rp.ReportID).Scan(&id); err != nil {
				t.Fatal(err)
			}
			if err := d.ExcludeReport(ctx, id, "admin", "test", day1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if newA != newB || newA != len(set)-2-len(set[300:])/50 {
		t.Errorf("new reports: batches %d, chunk %d, want %d", newA, newB, len(set)-2-len(set[300:])/50)
	}
	queries := map[string]string{
		"daily_policy_rollups": `SELECT policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed
			FROM daily_policy_rollups ORDER BY 1, 2, 3, 4, 5`,
		"daily_failure_rollups": `SELECT policy_domain, day, result_type, receiving_mx, trusted, failed
			FROM daily_failure_rollups ORDER BY 1, 2, 3, 4, 5`,
		// The ids differ between the databases, and "newest" is the
		// highest id, which depends on the order the store took ids in: both
		// must name the newest of the key's rows in their own database.
		"daily_mode_rollups": `SELECT m.policy_domain, m.day, m.mode, m.trusted, m.reports,
				m.last_policy_id = (SELECT max(p.id) FROM report_policies p JOIN reports r ON r.id = p.report_id AND r.day = p.day
					WHERE p.day = m.day AND p.policy_domain = m.policy_domain AND p.policy_type = 'sts'
					AND tlsrpt_policy_mode(p.policy_strings) = m.mode AND r.trusted = m.trusted)
			FROM daily_mode_rollups m ORDER BY 1, 2, 3, 4`,
		"daily_sender_rollups": `SELECT s.policy_domain, s.day, s.organization_name, s.sending_range::text, s.result_type, s.trusted, s.failed,
				s.last_detail_id = (SELECT max(f.id) FROM failure_details f
					JOIN report_policies p ON p.id = f.policy_id AND p.day = f.day
					JOIN reports r ON r.id = f.report_id AND r.day = f.day
					WHERE f.day = s.day AND p.policy_domain = s.policy_domain AND r.organization_name = s.organization_name
					AND tlsrpt_sender_range(f.sending_mta_ip) IS NOT DISTINCT FROM s.sending_range
					AND f.result_type = s.result_type AND r.trusted = s.trusted)
			FROM daily_sender_rollups s ORDER BY 1, 2, 3, 4, 5, 6`,
		"daily_ip_rollups":      `SELECT policy_domain, day, trusted, sending_ip, failed FROM daily_ip_rollups ORDER BY 1, 2, 3, 4`,
		"verdict_invalidations": `SELECT DISTINCT domain, cause FROM verdict_invalidations ORDER BY 1, 2`,
		"unlisted_domains":      `SELECT domain, last_day FROM unlisted_domains ORDER BY 1`,
		"counts": `SELECT (SELECT count(*) FROM daily_mode_rollups), (SELECT count(*) FROM daily_sender_rollups),
			(SELECT count(*) FROM reports), (SELECT count(*) FROM report_policies), (SELECT count(*) FROM failure_details)`,
	}
	for name, q := range queries {
		ra, rb := dumpRows(t, a, q), dumpRows(t, b, q)
		if len(ra) == 0 {
			t.Errorf("%s: no rows", name)
		}
		if !slices.Equal(ra, rb) {
			for i := range max(len(ra), len(rb)) {
				var x, y string
				if i < len(ra) {
					x = ra[i]
				}
				if i < len(rb) {
					y = rb[i]
				}
				if x != y {
					t.Errorf("%s: %d rows in batches, %d as one chunk; first difference at row %d:\n  batches: %s\n  chunk:   %s", name, len(ra), len(rb), i, x, y)
					break
				}
			}
		}
	}
	// The newest-id columns compared above are true, not both false.
	for _, q := range []string{queries["daily_mode_rollups"], queries["daily_sender_rollups"]} {
		for _, d := range []*db.DB{a, b} {
			var bad int
			if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM (`+q+`) x WHERE x."?column?" IS NOT TRUE`).Scan(&bad); err != nil {
				t.Fatal(err)
			}
			if bad != 0 {
				t.Errorf("%d rollup rows do not name the newest of their rows: %s", bad, q)
			}
		}
	}
	// The bound was reached, and the invalidation trigger fired for the
	// listed domains only.
	var capRows, others int
	if err := b.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE sending_ip = $1) FROM daily_ip_rollups
		WHERE policy_domain = 'cap.example' AND trusted`, db.OtherSendingIPs).Scan(&capRows, &others); err != nil {
		t.Fatal(err)
	}
	if capRows != db.MaxSendingIPsPerDay+1 || others != 1 {
		t.Errorf("cap.example has %d sending-IP rows (%d %q), want %d and one", capRows, others, db.OtherSendingIPs, db.MaxSendingIPsPerDay+1)
	}
	inv := dumpRows(t, b, queries["verdict_invalidations"])
	if want := []string{"[cap.example reports]", "[d01.example reports]", "[d02.example reports]"}; !slices.Equal(inv, want) {
		t.Errorf("invalidations = %q, want %q", inv, want)
	}
}

func countNew(res []db.StoreResult) int {
	n := 0
	for _, r := range res {
		if !r.Duplicate {
			n++
		}
	}
	return n
}

// dumpRows returns each row of q as its values' text.
func dumpRows(t *testing.T, d *db.DB, q string) []string {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(v))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
