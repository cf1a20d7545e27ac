package ingest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// FuzzPipelineReport feeds any body through the pipeline into a real
// database: whatever the parser accepts, the store must take (or refuse
// as input), never fail as if the database were down, and a second pass
// must find it a duplicate.
func FuzzPipelineReport(f *testing.F) {
	for _, dir := range []string{"../testdata/corpus", "/work/shared/corpus/tlsrpt"} {
		_ = filepath.WalkDir(dir, func(path string, de os.DirEntry, err error) error {
			if err == nil && de.Type().IsRegular() {
				if b, err := os.ReadFile(path); err == nil && reports.IsReportData(b) {
					f.Add(b)
				}
			}
			return nil
		})
	}
	f.Add([]byte(`{"organization-name":"a\u0000b","date-range":{"start-datetime":"0001-01-01T00:00:00Z","end-datetime":"9999-12-31T23:59:59Z"},"report-id":"\u0000","policies":[{"policy":{"policy-type":"x","policy-domain":"\u00e9.","mx-host":"m"},"summary":{"total-successful-session-count":9223372036854775807,"total-failure-session-count":0},"failure-details":[{"result-type":"y","sending-mta-ip":"fe80::1%eth0","failed-session-count":1}]}]}`))
	// At the claim limits (reports/limits.go), and one past them.
	f.Add([]byte(`{"organization-name":"o","date-range":{"start-datetime":"2026-03-01T00:00:00Z","end-datetime":"2026-03-01T23:59:59Z"},"report-id":"lim","policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":1000000000000,"total-failure-session-count":1000000000000},"failure-details":[{"result-type":"y","sending-mta-ip":"192.0.2.1","failed-session-count":1000000000000}]},{"policy":{"policy-type":"sts","policy-domain":"EXAMPLE.com."},"summary":{"total-successful-session-count":1000000000000,"total-failure-session-count":0}}]}`))
	f.Add([]byte(`{"organization-name":"o","date-range":{"start-datetime":"2026-03-01T00:00:00Z","end-datetime":"2026-03-01T23:59:59Z"},"report-id":"over","policies":[{"policy":{"policy-type":"sts","policy-domain":"example.com"},"summary":{"total-successful-session-count":1000000000001,"total-failure-session-count":0}}]}`))
	d := dbtest.New(f)
	p := &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Now: func() time.Time { return testNow }}
	f.Fuzz(func(t *testing.T, body []byte) {
		ctx := context.Background()
		out, err := p.Report(ctx, body, reports.SourceHTTPS, "fuzz")
		if err != nil {
			t.Fatalf("Report() = %v", err)
		}
		if out.Reports == 0 {
			if !out.Quarantined {
				t.Fatalf("Report() = %+v: neither stored nor quarantined", out)
			}
			return
		}
		again, err := p.Report(ctx, body, reports.SourceHTTPS, "fuzz")
		if err != nil || again.Duplicates != 1 {
			t.Fatalf("Report() again = %+v, %v; want a duplicate", again, err)
		}
	})
}
