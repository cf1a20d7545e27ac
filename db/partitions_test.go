package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// seed050 fills a database migrated to 050 the way the store of that
// release did: reports, policies and failure details (the 011 triggers add
// the mode and sender rollups), then the policy and failure rollups from
// those rows. 240 reports over five months, two policies and up to three
// details each, with IPv4, IPv6, IPv4-mapped, unparsable and missing
// sending addresses and some untrusted reports.
const seed050 = `
INSERT INTO reports (organization_name, report_id, start_time, end_time, day, source, received_at, trusted, raw_gzip, dkim)
SELECT 'org' || (i % 3), 'r' || i, d, d + interval '1 day' - interval '1 second', d::date, 'imap', d + interval '1 day',
	i % 5 <> 0, decode('1f8b', 'hex') || int4send(i), CASE WHEN i % 5 = 0 THEN 'none' ELSE 'pass' END
FROM generate_series(1, 240) i, LATERAL (SELECT timestamptz '2025-11-03 00:00Z' + (i % 140) * interval '1 day' AS d) x;
INSERT INTO report_policies (report_id, position, policy_type, policy_domain, policy_strings, mx_hosts, successful, failed)
SELECT r.id, 0, 'sts', 'd' || (r.id % 4) || '.example',
	ARRAY['version: STSv1', CASE WHEN r.id % 7 = 0 THEN 'Mode: Enforce' ELSE 'mode: testing' END], ARRAY['mx.example'], 100 + r.id, r.id % 6
FROM reports r;
INSERT INTO report_policies (report_id, position, policy_type, policy_domain, successful, failed)
SELECT r.id, 1, 'no-policy-found', 'other.example', 7, 0 FROM reports r WHERE r.id % 2 = 0;
INSERT INTO failure_details (report_id, policy_id, position, result_type, sending_mta_ip, sending_mta_ip_text,
	receiving_mx_hostname, failed_session_count)
SELECT p.report_id, p.id, k, CASE WHEN k = 0 THEN 'certificate-expired' ELSE 'starttls-not-supported' END,
	CASE p.id % 5 WHEN 0 THEN '192.0.2.' || (p.id % 9) WHEN 1 THEN '2001:db8:' || (p.id % 3) || '::7'
		WHEN 2 THEN '::ffff:198.51.100.' || (p.id % 4) ELSE NULL END::inet,
	CASE p.id % 5 WHEN 0 THEN '192.0.2.' || (p.id % 9) WHEN 1 THEN '2001:db8:' || (p.id % 3) || '::7'
		WHEN 2 THEN '::ffff:198.51.100.' || (p.id % 4) WHEN 3 THEN 'not an ip ' || (p.id % 2) ELSE '' END,
	'mx.example', 1 + k + p.id % 3
FROM report_policies p, generate_series(0, 2) k WHERE p.position = 0 AND k <= p.report_id % 3;
INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed)
SELECT p.policy_domain, r.day, r.organization_name, p.policy_type, r.trusted, count(DISTINCT r.id), sum(p.successful), sum(p.failed)
FROM report_policies p JOIN reports r ON r.id = p.report_id GROUP BY 1, 2, 3, 4, 5;
INSERT INTO daily_failure_rollups (policy_domain, day, result_type, receiving_mx, trusted, failed)
SELECT p.policy_domain, r.day, f.result_type, f.receiving_mx_hostname, r.trusted, sum(f.failed_session_count)
FROM failure_details f JOIN report_policies p ON p.id = f.policy_id JOIN reports r ON r.id = f.report_id GROUP BY 1, 2, 3, 4, 5;
`

// snapshot050 is every row of the tables 060 moves and of the rollups, in
// the columns of 050, as JSON, ordered by key.
const snapshot050 = `SELECT
	(SELECT json_agg(t ORDER BY id)::text FROM (SELECT id, organization_name, report_id, start_time, end_time, day,
		contact_info, source, source_ref, received_at, stored_at, message_id, from_address, submitter, dkim, dkim_domain,
		trusted, encode(raw_gzip, 'hex') AS raw FROM reports) t),
	(SELECT json_agg(t ORDER BY id)::text FROM (SELECT id, report_id, position, policy_type, policy_domain, policy_strings,
		mx_hosts, successful, failed FROM report_policies) t),
	(SELECT json_agg(t ORDER BY id)::text FROM (SELECT id, report_id, policy_id, position, result_type, sending_mta_ip,
		sending_mta_ip_text, receiving_mx_hostname, receiving_mx_helo, receiving_ip, receiving_ip_text,
		failed_session_count, additional_information, failure_reason_code FROM failure_details) t),
	(SELECT json_agg(to_jsonb(t) - 'reporter' ORDER BY (to_jsonb(t) - 'reporter')::text)::text FROM daily_policy_rollups t) ||
	(SELECT json_agg(t ORDER BY t::text)::text FROM daily_failure_rollups t) ||
	(SELECT json_agg(t ORDER BY t::text)::text FROM daily_mode_rollups t) ||
	(SELECT json_agg(to_jsonb(t) - 'reporter' ORDER BY (to_jsonb(t) - 'reporter')::text)::text FROM daily_sender_rollups t)`

// ipBreakdown050 is the sending-IP breakdown as Breakdown computed it from
// the raw rows before the rollup, for every domain over all days.
const ipBreakdown050 = `SELECT p.policy_domain, coalesce(host(f.sending_mta_ip), f.sending_mta_ip_text), sum(f.failed_session_count)::bigint
	FROM reports r JOIN report_policies p ON p.report_id = r.id JOIN failure_details f ON f.policy_id = p.id
	WHERE r.trusted GROUP BY 1, 2 ORDER BY 1, 2`

func readIPBreakdown(t *testing.T, d *db.DB, q string) map[string]int64 {
	t.Helper()
	rows, err := d.Pool.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var dom, ip string
		var n int64
		if err := rows.Scan(&dom, &ip, &n); err != nil {
			t.Fatal(err)
		}
		out[dom+" "+ip] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMigrate060 builds the 050 schema with rows in it, migrates to 060
// and checks that every row, rollup and id survived, the rows landed in
// monthly partitions, the sending-IP rollup holds what the raw query
// gave, and the store and the readers work on the moved rows.
func TestMigrate060(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.NewURL(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.MigrateTo(ctx, 50); err != nil {
		t.Fatalf("MigrateTo(50) = %v", err)
	}
	if _, err := d.Pool.Exec(ctx, seed050); err != nil {
		t.Fatalf("seeding the 050 schema: %v", err)
	}
	var before [4]string
	if err := d.Pool.QueryRow(ctx, snapshot050).Scan(&before[0], &before[1], &before[2], &before[3]); err != nil {
		t.Fatal(err)
	}
	wantIPs := readIPBreakdown(t, d, ipBreakdown050)
	var maxID int64
	if err := d.Pool.QueryRow(ctx, `SELECT max(id) FROM reports`).Scan(&maxID); err != nil {
		t.Fatal(err)
	}
	var nModes, nSenders int
	if err := d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM daily_mode_rollups), (SELECT count(*) FROM daily_sender_rollups)`).Scan(&nModes, &nSenders); err != nil || nModes == 0 || nSenders == 0 {
		t.Fatalf("the 050 triggers made %d mode and %d sender rollups, %v", nModes, nSenders, err)
	}

	if err := d.Migrate(ctx); err != nil {
		t.Fatalf("Migrate() from 050 = %v", err)
	}
	var after [4]string
	if err := d.Pool.QueryRow(ctx, snapshot050).Scan(&after[0], &after[1], &after[2], &after[3]); err != nil {
		t.Fatal(err)
	}
	for i, what := range []string{"reports", "report_policies", "failure_details", "rollups"} {
		if after[i] != before[i] {
			t.Errorf("%s changed by the migration:\n%.400s\nwas\n%.400s", what, after[i], before[i])
		}
	}
	// Children carry their report's day; the rows sit in month partitions.
	var wrongDay int
	if err := d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM report_policies p JOIN reports r ON r.id = p.report_id WHERE p.day <> r.day) +
		(SELECT count(*) FROM failure_details f JOIN reports r ON r.id = f.report_id WHERE f.day <> r.day)`).Scan(&wrongDay); err != nil || wrongDay != 0 {
		t.Errorf("%d children with another day than their report, %v", wrongDay, err)
	}
	parts, err := d.Partitions(ctx)
	if err != nil || len(parts) != 5 || !parts[0].Month.Equal(time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Partitions() = %+v, %v; want the 5 months 2025-11..2026-03", parts, err)
	}
	gotIPs := readIPBreakdown(t, d, `SELECT policy_domain, sending_ip, sum(failed)::bigint FROM daily_ip_rollups WHERE trusted GROUP BY 1, 2 ORDER BY 1, 2`)
	if fmt.Sprint(gotIPs) != fmt.Sprint(wantIPs) || len(wantIPs) < 10 {
		t.Errorf("daily_ip_rollups backfill = %v\nwant %v", gotIPs, wantIPs)
	}

	// The moved rows read back; new reports get ids above the old ones and
	// land in their months, including a new one.
	var oldID int64
	if err := d.Pool.QueryRow(ctx, `SELECT id FROM reports WHERE report_id = 'r7'`).Scan(&oldID); err != nil {
		t.Fatal(err)
	}
	s, err := d.Report(ctx, oldID)
	if err != nil || len(s.Report.Policies) != 1 || len(s.Report.Policies[0].FailureDetails) != 2 {
		t.Fatalf("Report(moved r7) = %+v, %v", s, err)
	}
	res, err := d.StoreReports(ctx, []reports.Received{sample("google.com", "new-1", day1), sample("google.com", "new-2", day1.AddDate(0, 3, 0))})
	if err != nil {
		t.Fatalf("StoreReports() after the migration = %v", err)
	}
	for _, r := range res {
		if r.Duplicate || r.ID <= maxID {
			t.Errorf("StoreReports() after the migration = %+v; want new ids above %d", res, maxID)
		}
	}
	if parts, _ := d.Partitions(ctx); len(parts) != 6 {
		t.Errorf("Partitions() after storing June = %d months, want 6", len(parts))
	}
	if err := d.CheckSchema(ctx); err != nil {
		t.Errorf("CheckSchema() = %v", err)
	}
}

// rollupDefinitions recompute the mode and sender rollups from the raw
// rows with the queries of migration 011 (its backfill, the definition of
// what the triggers kept), for comparison with what the store kept.
const rollupDefinitions = `SELECT
	(SELECT json_agg(t ORDER BY t::text)::text FROM (
		SELECT p.policy_domain, r.day, tlsrpt_policy_mode(p.policy_strings) AS mode, r.trusted,
			count(DISTINCT p.report_id) AS reports, max(p.id) AS last_policy_id
		FROM report_policies p JOIN reports r ON r.id = p.report_id
		WHERE p.policy_type = 'sts' GROUP BY 1, 2, 3, 4) t),
	(SELECT json_agg(t ORDER BY t::text)::text FROM (SELECT policy_domain, day, mode, trusted, reports, last_policy_id FROM daily_mode_rollups) t),
	(SELECT json_agg(t ORDER BY t::text)::text FROM (
		SELECT p.policy_domain, r.day, r.organization_name, tlsrpt_sender_range(f.sending_mta_ip) AS sending_range,
			f.result_type, r.trusted, sum(f.failed_session_count) AS failed, max(f.id) AS last_detail_id
		FROM failure_details f JOIN report_policies p ON p.id = f.policy_id JOIN reports r ON r.id = f.report_id
		GROUP BY 1, 2, 3, 4, 5, 6) t),
	(SELECT json_agg(t ORDER BY t::text)::text FROM (SELECT policy_domain, day, organization_name, sending_range,
		result_type, trusted, failed, last_detail_id FROM daily_sender_rollups) t)`

// TestStoreRollupsMatchDefinitions stores varied reports in several
// batches, concurrently and with duplicates, and checks that the mode,
// sender and sending-IP rollups the store keeps in Go equal their
// definitions over the raw rows.
func TestStoreRollupsMatchDefinitions(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	ips := []string{"192.0.2.7", "192.0.2.200", "2001:db8:1:2::9", "::ffff:198.51.100.3", "::1.2.3.4", "fe80::1%eth0",
		" 203.0.113.9 ", "not an ip", "", "2001:DB8:0:0:1:0:0:1"}
	modes := [][]string{{"version: STSv1", "mode: testing"}, {"version: STSv1\nMODE : Enforce\nmx: a"}, {"mode:none"},
		{"version: STSv1"}, {"  mode:\ttesting", "mode: enforce"}, nil}
	var all []reports.Received
	for i := range 60 {
		r := sample(fmt.Sprintf("org%d", i%4), fmt.Sprintf("m%d", i), day1.AddDate(0, 0, i%9-3))
		rp := *r.Report
		rp.Policies = append([]reports.PolicyResult(nil), rp.Policies...)
		rp.Policies[0].Policy.Strings = modes[i%len(modes)]
		rp.Policies[0].Policy.Domain = fmt.Sprintf("d%d.example", i%3)
		fd := append([]reports.FailureDetail(nil), rp.Policies[0].FailureDetails...)
		fd[0].SendingMTAIP = ips[i%len(ips)]
		fd[1].SendingMTAIP = ips[(i*3+1)%len(ips)]
		rp.Policies[0].FailureDetails = fd
		if i%4 == 0 {
			// The same domain twice in one report counts it once.
			rp.Policies = append(rp.Policies, rp.Policies[0])
		}
		r.Report = &rp
		if i%5 == 0 {
			r.Source = reports.SourceIMAP // no DKIM: untrusted
		}
		all = append(all, r)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := w * 10; start < len(all); start += 15 {
				if _, err := d.StoreReports(ctx, all[start:min(start+15, len(all))]); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var wantModes, gotModes, wantSenders, gotSenders string
	if err := d.Pool.QueryRow(ctx, rollupDefinitions).Scan(&wantModes, &gotModes, &wantSenders, &gotSenders); err != nil {
		t.Fatal(err)
	}
	if gotModes != wantModes {
		t.Errorf("daily_mode_rollups =\n%s\nwant\n%s", gotModes, wantModes)
	}
	if gotSenders != wantSenders {
		t.Errorf("daily_sender_rollups =\n%s\nwant\n%s", gotSenders, wantSenders)
	}
	want := readIPBreakdown(t, d, ipBreakdown050)
	got := readIPBreakdown(t, d, `SELECT policy_domain, sending_ip, sum(failed)::bigint FROM daily_ip_rollups WHERE trusted GROUP BY 1, 2 ORDER BY 1, 2`)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("daily_ip_rollups = %v\nwant %v", got, want)
	}
	// Breakdown reads the rollup: same groups as the raw query per domain.
	rows, err := d.Breakdown(ctx, "D1.example.", db.BySendingIP, day1.AddDate(0, 0, -10), day1.AddDate(0, 0, 10), 0)
	if err != nil || len(rows) == 0 {
		t.Fatalf("Breakdown(ip) = %v, %v", rows, err)
	}
	for _, r := range rows {
		if want["d1.example "+r.Key] != r.Failed {
			t.Errorf("Breakdown(ip) %q = %d, want %d", r.Key, r.Failed, want["d1.example "+r.Key])
		}
	}
}

// TestSendingIPBound: a report naming 400 addresses on one day keeps
// MaxSendingIPsPerDay rows of its own (the ones with most failures) and
// sums the rest under OtherSendingIPs, losing no failed session; a later
// report adds to the known addresses in place.
func TestSendingIPBound(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	r := sample("google.com", "many-ips", day1)
	rp := *r.Report
	pol := rp.Policies[0]
	pol.FailureDetails = nil
	var total int64
	for i := range 400 {
		n := int64(1000 - i)
		total += n
		pol.FailureDetails = append(pol.FailureDetails, reports.FailureDetail{ResultType: "certificate-expired",
			SendingMTAIP: fmt.Sprintf("10.0.%d.%d", i/250, i%250), FailedSessionCount: n})
	}
	rp.Policies = []reports.PolicyResult{pol}
	r.Report = &rp
	if _, _, err := d.StoreReport(ctx, r); err != nil {
		t.Fatal(err)
	}
	r2 := sample("google.com", "known-ip", day1)
	r2.Report.Policies[0].FailureDetails[0].SendingMTAIP = "10.0.0.0"
	if _, _, err := d.StoreReport(ctx, r2); err != nil {
		t.Fatal(err)
	}
	var nRows int
	var sum, other, first int64
	err := d.Pool.QueryRow(ctx, `SELECT count(*), sum(failed)::bigint,
		coalesce(sum(failed) FILTER (WHERE sending_ip = $2), 0)::bigint, coalesce(sum(failed) FILTER (WHERE sending_ip = '10.0.0.0'), 0)::bigint
		FROM daily_ip_rollups WHERE policy_domain = 'example.com' AND day = $1`, day1, db.OtherSendingIPs).Scan(&nRows, &sum, &other, &first)
	if err != nil {
		t.Fatal(err)
	}
	// r2 adds 3 to the known 10.0.0.0 and 2 to "not an ip", a new key
	// past the bound, so in the other bucket.
	if nRows != db.MaxSendingIPsPerDay+1 || sum != total+5 || first != 1000+3 {
		t.Errorf("ip rollup: %d rows, %d failed, 10.0.0.0 %d; want %d rows, %d failed, 1003", nRows, sum, first, db.MaxSendingIPsPerDay+1, total+5)
	}
	var wantOther int64 = 2
	for i := db.MaxSendingIPsPerDay; i < 400; i++ {
		wantOther += int64(1000 - i)
	}
	if other != wantOther {
		t.Errorf("%s = %d, want %d", db.OtherSendingIPs, other, wantOther)
	}
}

// TestStoreRefusesDays: a report dated before 2000 or more than a year
// ahead is refused as input (RejectedError) and makes no partition; the
// rest of the store goes on.
func TestStoreRefusesDays(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(24 * time.Hour)
	for _, day := range []time.Time{time.Date(1999, 12, 31, 0, 0, 0, 0, time.UTC), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), now.AddDate(0, 0, 400)} {
		_, _, err := d.StoreReport(ctx, sample("google.com", "bad-"+day.Format("20060102"), day))
		var re *db.RejectedError
		if !errors.As(err, &re) {
			t.Errorf("StoreReport(day %s) = %v, want a RejectedError", day.Format(time.DateOnly), err)
		}
	}
	if parts, err := d.Partitions(ctx); err != nil || len(parts) != 0 {
		t.Errorf("Partitions() after refusals = %+v, %v; want none", parts, err)
	}
	for _, day := range []time.Time{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), now.AddDate(0, 0, 300)} {
		if _, _, err := d.StoreReport(ctx, sample("google.com", "ok-"+day.Format("20060102"), day)); err != nil {
			t.Errorf("StoreReport(day %s) = %v", day.Format(time.DateOnly), err)
		}
	}
	if parts, err := d.Partitions(ctx); err != nil || len(parts) != 2 {
		t.Errorf("Partitions() = %+v, %v; want 2 months", parts, err)
	}
}

// TestPartitionsConcurrent: stores in separate pools (processes) that
// meet new months at once all succeed, each month made once.
func TestPartitionsConcurrent(t *testing.T) {
	u := dbtest.NewURL(t, true)
	ctx := context.Background()
	const workers = 4
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		d, err := db.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range 6 {
				day := day1.AddDate(0, m, w)
				if _, _, err := d.StoreReport(ctx, sample("google.com", fmt.Sprintf("p%d-%d", w, m), day)); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	for w, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: %v", w, err)
		}
	}
	d, err := db.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if parts, err := d.Partitions(ctx); err != nil || len(parts) != 6 {
		t.Errorf("Partitions() = %+v, %v; want 6 months", parts, err)
	}
	if n := tableCounts(t, d)["reports"]; n != workers*6 {
		t.Errorf("%d reports, want %d", n, workers*6)
	}
}

// TestAnalyzePartitioned: the partitioned parents get planner statistics
// (autovacuum never gathers them), from the rows of every month.
func TestAnalyzePartitioned(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	var rs []reports.Received
	for i := range 40 {
		rs = append(rs, sample("org.example", fmt.Sprintf("a%d", i), day1.AddDate(0, 0, 3*i)))
	}
	if _, err := d.StoreReports(ctx, rs); err != nil {
		t.Fatal(err)
	}
	parentStats := func() (n int) {
		err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM pg_stats
			WHERE tablename IN ('reports', 'report_policies', 'failure_details') AND attname = 'day'`).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := parentStats(); n != 0 {
		t.Fatalf("statistics of %d parents before ANALYZE: the test does not test anything", n)
	}
	if err := d.AnalyzePartitioned(ctx); err != nil {
		t.Fatal(err)
	}
	if n := parentStats(); n != 3 {
		t.Errorf("statistics of %d partitioned parents after AnalyzePartitioned, want 3", n)
	}
}
