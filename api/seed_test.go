package api

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
)

// seedOptions shape the reports seed stores.
type seedOptions struct {
	domain string
	days   int
	// hostile, when set, is put in every attacker-controlled string.
	hostile string
}

// seedReports stores realistic reports through db.StoreReport: for each of
// the last days, one report from each of three organisations, with a few
// certificate failures on one MX and an occasional policy fetch error.
// It returns the ids stored.
func seedReports(t testing.TB, d *db.DB, now time.Time, o seedOptions) []int64 {
	t.Helper()
	ctx := context.Background()
	orgs := []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."}
	if o.hostile != "" {
		orgs[2] = o.hostile
	}
	mx := []string{"mx1." + o.domain, "mx2." + o.domain}
	var ids []int64
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := o.days; i >= 1; i-- {
		day := today.AddDate(0, 0, -i)
		for j, org := range orgs {
			ok := int64(400 + (i*37+j*101)%300)
			var details []reports.FailureDetail
			var failed int64
			if (i+j)%4 == 0 {
				n := int64(1 + (i+j)%5)
				failed += n
				details = append(details, reports.FailureDetail{
					ResultType: reports.ResultCertificateExpired, SendingMTAIP: fmt.Sprintf("203.0.113.%d", 10+j),
					ReceivingMXHostname: mx[1], ReceivingIP: "198.51.100.2", FailedSessionCount: n,
					AdditionalInformation: "https://" + org + "/why", FailureReasonCode: "X509_V_ERR_CERT_HAS_EXPIRED",
				})
			}
			if j == 1 && i%9 == 0 {
				failed++
				details = append(details, reports.FailureDetail{ResultType: reports.ResultSTSPolicyFetchError, SendingMTAIP: "2001:db8::25", FailedSessionCount: 1})
			}
			if o.hostile != "" {
				failed++
				details = append(details, reports.FailureDetail{
					ResultType: o.hostile, SendingMTAIP: o.hostile, ReceivingMXHostname: o.hostile,
					ReceivingMXHelo: o.hostile, FailedSessionCount: 1, AdditionalInformation: "javascript:alert(1)",
					FailureReasonCode: o.hostile,
				})
			}
			rep := &reports.Report{
				OrganizationName: org,
				DateRange:        reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
				ContactInfo:      "smtp-tls-reporting@" + fmt.Sprint(j) + ".example",
				ReportID:         fmt.Sprintf("%s-%s-%d-%d", o.domain, day.Format("20060102"), j, i),
				Policies: []reports.PolicyResult{{
					Policy: reports.Policy{
						Type:    reports.PolicySTS,
						Strings: []string{"version: STSv1", "mode: testing", "mx: " + mx[0], "mx: " + mx[1], "max_age: 86400"},
						Domain:  o.domain,
						MXHosts: mx,
					},
					Summary:        reports.Summary{TotalSuccessfulSessionCount: ok, TotalFailureSessionCount: failed},
					FailureDetails: details,
				}},
			}
			if o.hostile != "" {
				rep.ReportID = o.hostile + rep.ReportID
				rep.ContactInfo = "javascript:alert(2)"
			}
			js, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			id, _, err := d.StoreReport(ctx, reports.Received{
				Report: rep, JSON: js, Source: reports.SourceFile, SourceRef: "seed/" + rep.ReportID,
				ReceivedAt: day.Add(30 * time.Hour),
			})
			if err != nil {
				t.Fatalf("StoreReport(%s) = %v", rep.ReportID, err)
			}
			ids = append(ids, id)
		}
	}
	return ids
}
