package publishtest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// SeedDays adds domain and stores, for each of the days from-1 .. last
// before now, SeedDay's reports in mode; on the last failingDays days
// before now a quarter of the sessions fail.
func SeedDays(t testing.TB, d *db.DB, now time.Time, domain string, from, last, failingDays int, mode rollout.Mode) {
	t.Helper()
	if _, _, err := d.AddDomain(context.Background(), domain); err != nil {
		t.Fatal(err)
	}
	today := rollout.UTCDay(now)
	for i := from; i >= last; i-- {
		SeedDay(t, d, domain, today.AddDate(0, 0, -i), mode, i <= failingDays)
	}
}

// SeedDay stores one report from each of three organisations for domain
// on day, showing mode; failing makes a quarter of the sessions fail with
// certificate-expired on mx2. The report ids name the mode, so that the
// same day seen in two modes makes two sets of reports.
func SeedDay(t testing.TB, d *db.DB, domain string, day time.Time, mode rollout.Mode, failing bool) {
	t.Helper()
	mx := []string{"mx1." + domain, "mx2." + domain}
	for j, org := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."} {
		ok := int64(500 + j*10)
		var failed int64
		var details []reports.FailureDetail
		if failing {
			failed = ok / 4
			details = []reports.FailureDetail{{ResultType: reports.ResultCertificateExpired, SendingMTAIP: fmt.Sprintf("192.0.2.%d", j+1),
				ReceivingMXHostname: mx[1], FailedSessionCount: failed}}
		}
		rep := &reports.Report{
			OrganizationName: org,
			DateRange:        reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
			ContactInfo:      "tlsrpt@" + fmt.Sprint(j) + ".example",
			ReportID:         fmt.Sprintf("%s-%s-%d-%s", domain, day.Format("20060102"), j, mode),
			Policies: []reports.PolicyResult{{
				Policy: reports.Policy{Type: reports.PolicySTS, Domain: domain, MXHosts: mx,
					Strings: []string{"version: STSv1", "mode: " + string(mode), "mx: " + mx[0], "mx: " + mx[1], "max_age: 86400"}},
				Summary:        reports.Summary{TotalSuccessfulSessionCount: ok, TotalFailureSessionCount: failed},
				FailureDetails: details,
			}},
		}
		js, err := json.Marshal(rep)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.StoreReport(context.Background(), reports.Received{Report: rep, JSON: js, Source: reports.SourceFile,
			SourceRef: "seed/" + rep.ReportID, ReceivedAt: day.Add(30 * time.Hour)}); err != nil {
			t.Fatalf("StoreReport(%s): %v", rep.ReportID, err)
		}
	}
}
