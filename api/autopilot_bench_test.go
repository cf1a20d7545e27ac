package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// bulkDomains is the fleet of the bulk promotion benchmark.
const bulkDomains = 1000

// seedFleet lists n domains and stores 20 days of clean testing reports
// for them from three organisations: each report covers up to
// reports.DefaultMaxPolicyDomains of the domains (a report per domain
// would make 60,000 reports; the verdict reads the same daily rollups).
func seedFleet(tb testing.TB, e *testEnv, n int) []string {
	tb.Helper()
	ctx := context.Background()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("d%04d.example", i)
		if _, _, err := e.d.AddDomain(ctx, names[i]); err != nil {
			tb.Fatal(err)
		}
	}
	today := rollout.UTCDay(testNow)
	per := reports.DefaultMaxPolicyDomains
	for day := 20; day >= 1; day-- {
		d := today.AddDate(0, 0, -day)
		for j, org := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."} {
			for start := 0; start < n; start += per {
				rep := &reports.Report{OrganizationName: org, ContactInfo: fmt.Sprintf("tlsrpt@%d.example", j),
					DateRange: reports.DateRange{Start: d, End: d.Add(24*time.Hour - time.Second)},
					ReportID:  fmt.Sprintf("fleet-%s-%d-%d", d.Format("20060102"), j, start)}
				for _, name := range names[start:min(start+per, n)] {
					mx := []string{"mx1." + name, "mx2." + name}
					rep.Policies = append(rep.Policies, reports.PolicyResult{
						Policy: reports.Policy{Type: reports.PolicySTS, Domain: name, MXHosts: mx,
							Strings: []string{"version: STSv1", "mode: testing", "mx: " + mx[0], "mx: " + mx[1], "max_age: 86400"}},
						Summary: reports.Summary{TotalSuccessfulSessionCount: int64(500 + j*10)},
					})
				}
				js, err := json.Marshal(rep)
				if err != nil {
					tb.Fatal(err)
				}
				if _, _, err := e.d.StoreReport(ctx, reports.Received{Report: rep, JSON: js, Source: reports.SourceFile,
					SourceRef: "seed/" + rep.ReportID, ReceivedAt: d.Add(30 * time.Hour)}); err != nil {
					tb.Fatalf("StoreReport(%s): %v", rep.ReportID, err)
				}
			}
		}
	}
	return names
}

// BenchmarkBulkPromote1000 is one POST /api/v1/promotions of 1,000 ready
// domains (BENCHMARKS.md): each domain's verdict computed, a version made,
// audited and given its first verification poll. After each run every
// domain must have exactly one version, in enforce, with the id the answer
// names. Run it with
//
//	go test ./api/ -run '^$' -bench BulkPromote1000 -benchtime 1x
func BenchmarkBulkPromote1000(b *testing.B) {
	e := newTestEnv(b, nil)
	names := seedFleet(b, e, bulkDomains)
	admin := e.token("admin")
	body, err := json.Marshal(promotionsJSON{Domains: names, Reason: "benchmark"})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 {
			b.StopTimer()
			if _, err := e.d.Pool.Exec(ctx, `DELETE FROM policy_versions`); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		rec := e.do(admin, jsonReq(http.MethodPost, "/api/v1/promotions", string(body)))
		b.StopTimer()
		if rec.Code != http.StatusOK {
			b.Fatalf("POST promotions = %d %.500s", rec.Code, rec.Body)
		}
		var a promotionsAnswer
		if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
			b.Fatal(err)
		}
		if a.Counts["promoted"] != bulkDomains {
			b.Fatalf("promoted %d of %d: %v (first: %+v)", a.Counts["promoted"], bulkDomains, a.Counts, a.Results[0])
		}
		for _, r := range a.Results {
			vs, err := e.d.PolicyVersions(ctx, r.Domain, 0)
			if err != nil {
				b.Fatal(err)
			}
			if len(vs) != 1 || vs[0].ID != r.ID || vs[0].Policy.Mode != rollout.ModeEnforce || vs[0].Kind != rollout.KindPromote {
				b.Fatalf("%s: versions %+v, want one enforce version %s", r.Domain, vs, r.ID)
			}
		}
		b.StartTimer()
	}
}
