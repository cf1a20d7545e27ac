package db_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

var _ ingest.Store = (*db.DB)(nil)

var day1 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// sample returns a file-imported report of org for example.com on day with
// one sts policy (ok successful, two kinds of failures) and a second
// policy for another domain.
func sample(org, id string, day time.Time) reports.Received {
	return reports.Received{
		Report: &reports.Report{
			OrganizationName: org,
			ReportID:         id,
			ContactInfo:      "tlsrpt@" + org,
			DateRange:        reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
			Policies: []reports.PolicyResult{
				{
					Policy:  reports.Policy{Type: "sts", Domain: "Example.COM.", MXHosts: []string{"mx1.example.com"}, Strings: []string{"version: STSv1", "mode: testing"}},
					Summary: reports.Summary{TotalSuccessfulSessionCount: 100, TotalFailureSessionCount: 5},
					FailureDetails: []reports.FailureDetail{
						{ResultType: "certificate-expired", SendingMTAIP: "2001:db8::1", ReceivingMXHostname: "MX1.example.com.", ReceivingIP: "192.0.2.1", FailedSessionCount: 3},
						{ResultType: "starttls-not-supported", SendingMTAIP: "not an ip", ReceivingMXHostname: "mx2.example.com", FailedSessionCount: 2, FailureReasonCode: "x\x00y"},
					},
				},
				{
					Policy:  reports.Policy{Type: "no-policy-found", Domain: "other.example"},
					Summary: reports.Summary{TotalSuccessfulSessionCount: 7},
				},
			},
		},
		JSON:       []byte(fmt.Sprintf(`{"organization-name":%q,"report-id":%q}`, org, id)),
		Source:     reports.SourceFile,
		SourceRef:  "/tmp/" + id + ".json",
		ReceivedAt: day.Add(30 * time.Hour),
	}
}

func TestStoreReportIdempotent(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	r := sample("google.com", "r1", day1)
	id, dup, err := d.StoreReport(ctx, r)
	if err != nil || dup || id == 0 {
		t.Fatalf("StoreReport() = %d, %v, %v; want new id", id, dup, err)
	}
	id2, dup, err := d.StoreReport(ctx, r)
	if err != nil || !dup || id2 != id {
		t.Fatalf("StoreReport() again = %d, %v, %v; want %d, true, nil", id2, dup, err, id)
	}
	// A different report-id is another report.
	id3, dup, err := d.StoreReport(ctx, sample("google.com", "r2", day1))
	if err != nil || dup || id3 == id {
		t.Fatalf("StoreReport(r2) = %d, %v, %v", id3, dup, err)
	}
	counts := tableCounts(t, d)
	want := map[string]int{"reports": 2, "report_policies": 4, "failure_details": 4}
	for table, n := range want {
		if counts[table] != n {
			t.Errorf("%s has %d rows, want %d", table, counts[table], n)
		}
	}
	checkRollups(t, d, 2)
}

func tableCounts(t *testing.T, d *db.DB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"reports", "report_policies", "failure_details", "daily_policy_rollups", "daily_failure_rollups"} {
		var n int
		if err := d.Pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatalf("counting %s: %v", table, err)
		}
		out[table] = n
	}
	return out
}

// checkRollups checks the rollups after n distinct sample reports of the
// same day and organisation.
func checkRollups(t *testing.T, d *db.DB, n int64) {
	t.Helper()
	ctx := context.Background()
	var reps, succ, fail int64
	err := d.Pool.QueryRow(ctx, `SELECT reports, successful, failed FROM daily_policy_rollups
		WHERE policy_domain = 'example.com' AND day = $1 AND organization_name = 'google.com' AND policy_type = 'sts' AND trusted`, day1).Scan(&reps, &succ, &fail)
	if err != nil {
		t.Fatalf("reading policy rollup: %v", err)
	}
	if reps != n || succ != 100*n || fail != 5*n {
		t.Errorf("policy rollup = %d reports, %d ok, %d failed; want %d, %d, %d", reps, succ, fail, n, 100*n, 5*n)
	}
	var expired int64
	err = d.Pool.QueryRow(ctx, `SELECT failed FROM daily_failure_rollups
		WHERE policy_domain = 'example.com' AND day = $1 AND result_type = 'certificate-expired' AND receiving_mx = 'mx1.example.com' AND trusted`, day1).Scan(&expired)
	if err != nil {
		t.Fatalf("reading failure rollup: %v", err)
	}
	if expired != 3*n {
		t.Errorf("failure rollup certificate-expired = %d, want %d", expired, 3*n)
	}
	var other int64
	err = d.Pool.QueryRow(ctx, `SELECT successful FROM daily_policy_rollups WHERE policy_domain = 'other.example' AND policy_type = 'no-policy-found'`).Scan(&other)
	if err != nil || other != 7*n {
		t.Errorf("other.example rollup = %d, %v; want %d", other, err, 7*n)
	}
}

func TestStoreReportConcurrent(t *testing.T) {
	u := dbtest.NewURL(t, true)
	ctx := context.Background()
	// Separate pools stand for separate processes.
	const workers = 6
	stores := make([]*db.DB, workers)
	for i := range stores {
		d, err := db.Open(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		stores[i] = d
	}
	batch := make([]reports.Received, 20)
	for i := range batch {
		batch[i] = sample("google.com", fmt.Sprintf("c%02d", i), day1)
	}
	var wg sync.WaitGroup
	newCount := make([]int, workers)
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batch {
				// Each worker goes through the reports in its own order.
				r := batch[(i+w*7)%len(batch)]
				_, dup, err := stores[w].StoreReport(ctx, r)
				if err != nil {
					errs[w] = err
					return
				}
				if !dup {
					newCount[w]++
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		total += newCount[w]
	}
	if total != len(batch) {
		t.Errorf("%d stores said new, want %d", total, len(batch))
	}
	if n := tableCounts(t, stores[0])["reports"]; n != len(batch) {
		t.Errorf("reports has %d rows, want %d", n, len(batch))
	}
	checkRollups(t, stores[0], int64(len(batch)))
}

func TestStoreReportsBatch(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	a, b := sample("google.com", "b1", day1), sample("google.com", "b2", day1)
	if _, _, err := d.StoreReport(ctx, a); err != nil {
		t.Fatal(err)
	}
	// a is stored already; b appears twice in the batch.
	res, err := d.StoreReports(ctx, []reports.Received{b, a, b})
	if err != nil {
		t.Fatalf("StoreReports() = %v", err)
	}
	if res[0].Duplicate || !res[1].Duplicate || !res[2].Duplicate || res[0].ID != res[2].ID || res[1].ID == res[0].ID {
		t.Fatalf("StoreReports() = %+v; want b new, a and b again duplicate", res)
	}
	checkRollups(t, d, 2)
}

func TestReportRoundTrip(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	in := sample("microsoft.com", "rt", day1.Add(23*time.Hour+time.Microsecond))
	id, _, err := d.StoreReport(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Report(ctx, id)
	if err != nil {
		t.Fatalf("Report() = %v", err)
	}
	if !got.Report.DateRange.Start.Equal(in.Report.DateRange.Start) || !got.Day.Equal(day1) {
		t.Errorf("Report() start %v day %v, want %v day %v", got.Report.DateRange.Start, got.Day, in.Report.DateRange.Start, day1)
	}
	if !got.Trusted || got.Source != reports.SourceFile || got.DKIM != reports.DKIMNone {
		t.Errorf("Report() provenance = %v %v %v", got.Trusted, got.Source, got.DKIM)
	}
	if len(got.Report.Policies) != 2 || len(got.Report.Policies[0].FailureDetails) != 2 {
		t.Fatalf("Report() policies = %+v", got.Report.Policies)
	}
	p := got.Report.Policies[0]
	if p.Policy.Domain != "example.com" || p.Summary.TotalFailureSessionCount != 5 || p.Policy.Strings[1] != "mode: testing" {
		t.Errorf("Report() policy = %+v", p)
	}
	f := p.FailureDetails[1]
	if f.SendingMTAIP != "not an ip" || f.FailureReasonCode != "xy" || f.FailedSessionCount != 2 {
		t.Errorf("Report() detail = %+v", f)
	}
	var inet *string
	if err := d.Pool.QueryRow(ctx, `SELECT host(sending_mta_ip) FROM failure_details WHERE report_id = $1 AND position = 0`, id).Scan(&inet); err != nil || inet == nil || *inet != "2001:db8::1" {
		t.Errorf("sending_mta_ip inet = %v, %v", inet, err)
	}
	js, err := d.ReportJSON(ctx, id)
	if err != nil || string(js) != string(in.JSON) {
		t.Errorf("ReportJSON() = %q, %v; want %q", js, err, in.JSON)
	}
	if _, err := d.Report(ctx, id+100); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("Report(missing) = %v, want ErrNotFound", err)
	}
}

func TestTrusted(t *testing.T) {
	tests := []struct {
		src      reports.Source
		dkim     reports.DKIMResult
		from, d  string
		expected bool
	}{
		// Imported files are the operator's: their reporter is the
		// contact-info domain, or the name.
		{reports.SourceFile, reports.DKIMNone, "", "", true},
		// A post proves nothing without a verified reverse name
		// (reports.Attribute; TestAttribute covers the rest).
		{reports.SourceHTTPS, reports.DKIMNone, "", "", false},
		{reports.SourceIMAP, reports.DKIMPass, "noreply-smtp-tls-reporting@google.com", "google.com", true},
		{reports.SourceIMAP, reports.DKIMPass, "Reports <tlsrpt@mail.example.co.uk>", "example.co.uk", true},
		{reports.SourceIMAP, reports.DKIMPass, "tlsrpt@example.co.uk", "other.co.uk", false},
		{reports.SourceIMAP, reports.DKIMPass, "tlsrpt@google.com", "evil.com", false},
		{reports.SourceIMAP, reports.DKIMFail, "tlsrpt@google.com", "google.com", false},
		{reports.SourceIMAP, reports.DKIMNone, "tlsrpt@google.com", "", false},
		{reports.SourceIMAP, reports.DKIMTempError, "tlsrpt@google.com", "google.com", false},
	}
	for _, tt := range tests {
		r := reports.Received{Source: tt.src, DKIM: tt.dkim, From: tt.from, DKIMDomain: tt.d,
			Report: &reports.Report{OrganizationName: "Example", ContactInfo: "tlsrpt@example.net"}}
		if got := db.Trusted(r); got != tt.expected {
			t.Errorf("Trusted(%s %s from %q d=%q) = %v, want %v", tt.src, tt.dkim, tt.from, tt.d, got, tt.expected)
		}
	}
}

func TestUntrustedRollupsApart(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	r := sample("google.com", "u1", day1)
	r.Source, r.DKIM, r.From, r.DKIMDomain = reports.SourceIMAP, reports.DKIMFail, "x@google.com", "google.com"
	if _, _, err := d.StoreReport(ctx, r); err != nil {
		t.Fatal(err)
	}
	var trusted, untrusted int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE trusted), count(*) FILTER (WHERE NOT trusted) FROM daily_policy_rollups`).Scan(&trusted, &untrusted); err != nil {
		t.Fatal(err)
	}
	if trusted != 0 || untrusted != 2 {
		t.Errorf("rollups trusted/untrusted = %d/%d, want 0/2", trusted, untrusted)
	}
}

func TestListReports(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	for i := range 5 {
		r := sample("google.com", fmt.Sprintf("l%d", i), day1.AddDate(0, 0, i))
		if i == 4 {
			r.Report.Policies = r.Report.Policies[1:] // only other.example
		}
		if _, _, err := d.StoreReport(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, total, err := d.ListReports(ctx, db.ReportFilter{Domain: "EXAMPLE.com", Limit: 2})
	if err != nil {
		t.Fatalf("ListReports() = %v", err)
	}
	if total != 4 || len(got) != 2 || got[0].ReportID != "l3" || got[1].ReportID != "l2" {
		t.Fatalf("ListReports() = %d total, %+v", total, got)
	}
	if got[0].Successful != 107 || got[0].Failed != 5 || len(got[0].Domains) != 2 {
		t.Errorf("ListReports()[0] = %+v", got[0])
	}
	got, total, err = d.ListReports(ctx, db.ReportFilter{Domain: "example.com", Limit: 2, Offset: 2, Since: day1.AddDate(0, 0, 1)})
	if err != nil || total != 3 || len(got) != 1 || got[0].ReportID != "l1" {
		t.Fatalf("ListReports(page 2, since) = %d, %+v, %v", total, got, err)
	}
}

// TestStoreKeepsInputGzip: a report whose Gzip is the stream its JSON came
// from is stored with those bytes as its raw report; a Gzip that is not
// (another report's, or with data after the stream) is ignored and the
// JSON compressed anew. Either way ReportJSON gives the JSON back.
func TestStoreKeepsInputGzip(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	gz := func(s []byte) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		w.Write(s)
		w.Close()
		return b.Bytes()
	}
	same := sample("google.com", "gz-same", day1)
	same.Gzip = gz(same.JSON)
	other := sample("google.com", "gz-other", day1)
	other.Gzip = gz([]byte(`{"organization-name":"someone else"}`))
	trailing := sample("google.com", "gz-trailing", day1)
	trailing.Gzip = append(gz(trailing.JSON), "garbage"...)
	for _, tt := range []struct {
		r    reports.Received
		kept bool
	}{{same, true}, {other, false}, {trailing, false}} {
		id, _, err := d.StoreReport(ctx, tt.r)
		if err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if err := d.Pool.QueryRow(ctx, `SELECT raw_gzip FROM reports WHERE id = $1`, id).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if kept := bytes.Equal(raw, tt.r.Gzip); kept != tt.kept {
			t.Errorf("%s: input gzip kept = %v, want %v", tt.r.Report.ReportID, kept, tt.kept)
		}
		if js, err := d.ReportJSON(ctx, id); err != nil || !bytes.Equal(js, tt.r.JSON) {
			t.Errorf("%s: ReportJSON() = %q, %v; want %q", tt.r.Report.ReportID, js, err, tt.r.JSON)
		}
	}
}

// TestStoreReportsCountOverflow: two reports whose session counts add up
// to more than a bigint are refused as a batch (the Go totals would wrap);
// one at a time both are stored and the daily rollup saturates at the
// largest bigint: a sum never fails, so a domain's day that reached the
// top still takes the reports that follow.
func TestStoreReportsCountOverflow(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	huge := func(id string) reports.Received {
		r := sample("big.example", id, day1)
		r.Report.Policies[0].Summary.TotalSuccessfulSessionCount = math.MaxInt64/2 + 1
		return r
	}
	a, b := huge("o1"), huge("o2")
	_, err := d.StoreReports(ctx, []reports.Received{a, b})
	var rej *db.RejectedError
	if !errors.As(err, &rej) {
		t.Fatalf("StoreReports(overflowing pair) error = %v, want a RejectedError", err)
	}
	var n int
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d reports stored by the refused batch (%v), want 0", n, err)
	}
	if _, _, err := d.StoreReport(ctx, a); err != nil {
		t.Fatalf("StoreReport(first) error = %v", err)
	}
	if _, _, err := d.StoreReport(ctx, b); err != nil {
		t.Fatalf("StoreReport(second) error = %v, want it stored, the rollup saturated", err)
	}
	var successful int64
	if err := d.Pool.QueryRow(ctx, `SELECT sum(successful)::bigint FROM daily_policy_rollups WHERE policy_domain = 'example.com'`).Scan(&successful); err != nil {
		t.Fatal(err)
	}
	if successful != math.MaxInt64 {
		t.Errorf("rollup successful = %d, want it saturated at %d", successful, int64(math.MaxInt64))
	}
}
