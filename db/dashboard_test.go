package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// storeDashReport stores one report of org for domain on day.
func storeDashReport(t *testing.T, d *db.DB, org, domain string, day time.Time, ok int64, details []reports.FailureDetail, src reports.Source) int64 {
	t.Helper()
	var failed int64
	for _, f := range details {
		failed += f.FailedSessionCount
	}
	rep := &reports.Report{OrganizationName: org, ReportID: fmt.Sprintf("%s-%s-%s", org, domain, day.Format("20060102")),
		DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies: []reports.PolicyResult{{
			Policy:         reports.Policy{Type: "sts", Domain: domain, Strings: []string{"version: STSv1", "mode: testing", "mx: mx.example.com"}},
			Summary:        reports.Summary{TotalSuccessfulSessionCount: ok, TotalFailureSessionCount: failed},
			FailureDetails: details,
		}}}
	js, _ := json.Marshal(rep)
	r := reports.Received{Report: rep, JSON: js, Source: src, ReceivedAt: day.Add(26 * time.Hour)}
	if src == reports.SourceIMAP {
		r.DKIM, r.From = reports.DKIMFail, "noreply@"+org
	}
	id, _, err := d.StoreReport(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestDashboardQueries(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	day1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 1)
	exp := func(n int64, mx, ip string) reports.FailureDetail {
		return reports.FailureDetail{ResultType: "certificate-expired", ReceivingMXHostname: mx, SendingMTAIP: ip, FailedSessionCount: n}
	}
	storeDashReport(t, d, "a.example", "example.com", day1, 100, []reports.FailureDetail{exp(3, "MX2.example.com.", "192.0.2.1")}, reports.SourceFile)
	storeDashReport(t, d, "b.example", "example.com", day1, 50, nil, reports.SourceFile)
	storeDashReport(t, d, "a.example", "example.com", day2, 200, []reports.FailureDetail{exp(1, "mx1.example.com", "192.0.2.1"), {ResultType: "sts-policy-fetch-error", FailedSessionCount: 2}}, reports.SourceFile)
	// Untrusted: mailed with a failing DKIM signature. Counted nowhere but
	// in the unlisted list.
	storeDashReport(t, d, "c.example", "example.com", day2, 1000, []reports.FailureDetail{exp(100, "mx1.example.com", "198.51.100.1")}, reports.SourceIMAP)
	storeDashReport(t, d, "a.example", "other.example", day2, 7, nil, reports.SourceFile)
	if _, _, err := d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}

	days, err := d.DomainSeries(ctx, "Example.COM", day1, day2.AddDate(0, 0, 1))
	if err != nil || len(days) != 2 {
		t.Fatalf("DomainSeries = %+v, %v", days, err)
	}
	if days[0].Sessions() != 153 || days[0].Failed != 3 || days[0].Reports != 2 || days[1].Sessions() != 203 || days[1].Failed != 3 {
		t.Errorf("DomainSeries = %+v, want day1 153/3 (2 reports), day2 203/3", days)
	}
	if days, _ := d.DomainSeries(ctx, "example.com", day2, day2.AddDate(0, 0, 1)); len(days) != 1 || !days[0].Day.Equal(day2) {
		t.Errorf("DomainSeries(day2 only) = %+v", days)
	}
	all, err := d.ListedSeries(ctx, day1, day2.AddDate(0, 0, 1))
	if err != nil || len(all) != 1 || len(all["example.com"]) != 2 {
		t.Errorf("ListedSeries = %v, %v; want example.com only", all, err)
	}
	un, err := d.UnlistedDomains(ctx, day1, 10)
	if err != nil || len(un) != 1 || un[0].Domain != "other.example" || un[0].Sessions != 7 {
		t.Errorf("UnlistedDomains = %+v, %v", un, err)
	}
	check := func(by string, want []db.BreakdownRow) {
		t.Helper()
		got, err := d.Breakdown(ctx, "example.com", by, day1, day2.AddDate(0, 0, 1), 10)
		if err != nil {
			t.Fatalf("Breakdown(%s) = %v", by, err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Breakdown(%s) = %v, want %v", by, got, want)
		}
	}
	check(db.ByResultType, []db.BreakdownRow{{Key: "certificate-expired", Failed: 4}, {Key: "sts-policy-fetch-error", Failed: 2}})
	check(db.ByMX, []db.BreakdownRow{{Key: "mx2.example.com", Failed: 3}, {Key: "", Failed: 2}, {Key: "mx1.example.com", Failed: 1}})
	check(db.ByOrg, []db.BreakdownRow{{Key: "a.example", Sessions: 306, Failed: 6}, {Key: "b.example", Sessions: 50}})
	check(db.BySendingIP, []db.BreakdownRow{{Key: "192.0.2.1", Failed: 4}, {Key: "", Failed: 2}})
	if _, err := d.Breakdown(ctx, "example.com", "nope", day1, day2, 10); err == nil {
		t.Errorf("Breakdown(nope) succeeded")
	}
	if m, err := d.DomainMode(ctx, "example.com"); err != nil || m != "testing" {
		t.Errorf("DomainMode = %q, %v", m, err)
	}
	if m, err := d.DomainMode(ctx, "none.example"); err != nil || m != "" {
		t.Errorf("DomainMode(none) = %q, %v", m, err)
	}

	list := func(f db.ReportListFilter) []db.ReportListRow {
		t.Helper()
		rows, err := d.DashboardReports(ctx, f)
		if err != nil {
			t.Fatalf("DashboardReports(%+v) = %v", f, err)
		}
		return rows
	}
	if rows := list(db.ReportListFilter{Domain: "example.com"}); len(rows) != 4 || rows[0].Start.Before(rows[3].Start) {
		t.Errorf("list by domain = %d rows, want 4 newest first", len(rows))
	}
	if rows := list(db.ReportListFilter{MX: "mx2.example.com"}); len(rows) != 1 || rows[0].OrganizationName != "a.example" || !rows[0].Day.Equal(day1) {
		t.Errorf("list by mx (stored as MX2.example.com.) = %+v", rows)
	}
	if rows := list(db.ReportListFilter{SendingIP: "198.51.100.1"}); len(rows) != 1 || rows[0].Trusted {
		t.Errorf("list by ip = %+v, want the untrusted report", rows)
	}
	if rows := list(db.ReportListFilter{ResultType: "sts-policy-fetch-error", Org: "a.example"}); len(rows) != 1 {
		t.Errorf("list by result and org = %+v", rows)
	}
	if rows := list(db.ReportListFilter{From: day2, To: day2.AddDate(0, 0, 1), Domain: "example.com"}); len(rows) != 2 {
		t.Errorf("list of day2 = %d rows, want 2", len(rows))
	}
	first := list(db.ReportListFilter{Limit: 2})
	rest := list(db.ReportListFilter{Before: &db.ReportCursor{Start: first[1].Start, ID: first[1].ID}})
	if len(first) != 2 || len(rest) != 3 {
		t.Fatalf("paging: %d + %d rows, want 2 + 3", len(first), len(rest))
	}
	seen := map[int64]bool{}
	for _, r := range append(first, rest...) {
		if seen[r.ID] {
			t.Errorf("report %d on two pages", r.ID)
		}
		seen[r.ID] = true
	}
	// Paging within one domain (its own query plan: the domain's policies
	// first) walks the same reports, newest first, once each.
	var walked []int64
	cur := (*db.ReportCursor)(nil)
	for range 10 {
		page := list(db.ReportListFilter{Domain: "example.com", Limit: 1, Before: cur})
		if len(page) == 0 {
			break
		}
		walked = append(walked, page[0].ID)
		cur = &db.ReportCursor{Start: page[0].Start, ID: page[0].ID}
	}
	var byDomain []int64
	for _, r := range list(db.ReportListFilter{Domain: "example.com"}) {
		byDomain = append(byDomain, r.ID)
	}
	if fmt.Sprint(walked) != fmt.Sprint(byDomain) {
		t.Errorf("paging one domain by one = %v, want %v", walked, byDomain)
	}
	if rows := list(db.ReportListFilter{Domain: "example.com", MX: "mx2.example.com", Org: "a.example"}); len(rows) != 1 || !rows[0].Day.Equal(day1) {
		t.Errorf("list by domain, mx and org = %+v", rows)
	}
	if rows := list(db.ReportListFilter{Domain: "other.example", MX: "mx2.example.com"}); len(rows) != 0 {
		t.Errorf("list by another domain and mx2 = %+v, want none", rows)
	}
	c := db.ReportCursor{Start: day2.Add(time.Microsecond), ID: 42}
	if back, err := db.ParseReportCursor(c.String()); err != nil || !back.Start.Equal(c.Start) || back.ID != 42 {
		t.Errorf("ParseReportCursor(%q) = %+v, %v", c.String(), back, err)
	}

	m, err := d.MetricsCounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Quarantined != 0 || len(m.Reports) != 2 || len(m.Sessions) != 1 || m.Sessions[0].Successful != 350 || len(m.Failures) != 2 {
		t.Errorf("MetricsCounts = %+v", m)
	}
}

func FuzzParseReportCursor(f *testing.F) {
	for _, s := range []string{"1764460800000000-42", "0-0", "-1-1", "1-", "-", "", "x-y", "9223372036854775807-9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := db.ParseReportCursor(s)
		if err != nil {
			return
		}
		back, err := db.ParseReportCursor(c.String())
		if err != nil || !back.Start.Equal(c.Start) || back.ID != c.ID {
			t.Errorf("ParseReportCursor(%q) = %+v; round trip gives %+v, %v", s, c, back, err)
		}
	})
}

// TestUnlistedDomainsFollowTheList: the unlisted list (kept by triggers,
// migration 071) follows reports, adding and removing domains, and the
// window.
func TestUnlistedDomainsFollowTheList(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	day1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	day2 := day1.AddDate(0, 0, 5)
	storeDashReport(t, d, "a.example", "old.example", day1, 10, nil, reports.SourceFile)
	storeDashReport(t, d, "a.example", "new.example", day1, 20, nil, reports.SourceFile)
	storeDashReport(t, d, "b.example", "new.example", day2, 30, nil, reports.SourceIMAP) // untrusted counts here
	list := func(from time.Time) string {
		t.Helper()
		us, err := d.UnlistedDomains(ctx, from, 10)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, u := range us {
			s = append(s, fmt.Sprintf("%s %d/%d %s", u.Domain, u.Reports, u.Sessions, u.LastDay.Format("01-02")))
		}
		return fmt.Sprint(s)
	}
	if got, want := list(day1), "[new.example 2/50 11-06 old.example 1/10 11-01]"; got != want {
		t.Errorf("UnlistedDomains(day1) = %s, want %s", got, want)
	}
	if got, want := list(day2), "[new.example 1/30 11-06]"; got != want {
		t.Errorf("UnlistedDomains(day2) = %s, want %s", got, want)
	}
	if _, _, err := d.AddDomain(ctx, "new.example"); err != nil {
		t.Fatal(err)
	}
	if got, want := list(day1), "[old.example 1/10 11-01]"; got != want {
		t.Errorf("after adding new.example: %s, want %s", got, want)
	}
	// Reports of a listed domain do not put it back; removing it does.
	storeDashReport(t, d, "c.example", "new.example", day2.AddDate(0, 0, 1), 5, nil, reports.SourceFile)
	if got, want := list(day1), "[old.example 1/10 11-01]"; got != want {
		t.Errorf("after a report of listed new.example: %s, want %s", got, want)
	}
	if _, _, err := d.RemoveDomain(ctx, "new.example"); err != nil {
		t.Fatal(err)
	}
	if got, want := list(day1), "[new.example 3/55 11-07 old.example 1/10 11-01]"; got != want {
		t.Errorf("after removing new.example: %s, want %s", got, want)
	}
	// A newer report moves the day on; an older one does not move it back.
	storeDashReport(t, d, "a.example", "old.example", day2, 1, nil, reports.SourceFile)
	storeDashReport(t, d, "d.example", "old.example", day1.AddDate(0, 0, -3), 1, nil, reports.SourceFile)
	if got, want := list(day1), "[new.example 3/55 11-07 old.example 2/11 11-06]"; got != want {
		t.Errorf("after more reports of old.example: %s, want %s", got, want)
	}
}
