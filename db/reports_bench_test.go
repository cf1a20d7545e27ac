package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// BenchmarkStoreReports measures the store's bulk insert (issue 8: 10,000
// reports/s): batches of 500 reports, each with two policies and two
// failure details, as a typical Google or Microsoft daily report.
//
//	go test -run '^$' -bench StoreReports -benchtime 20x ./db/
func BenchmarkStoreReports(b *testing.B) {
	for _, size := range []int{1, 500} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			d := dbtest.New(b)
			ctx := context.Background()
			n := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				batch := make([]reports.Received, size)
				for j := range batch {
					n++
					batch[j] = sample("google.com", fmt.Sprintf("bench-%d", n), day1.AddDate(0, 0, n%60))
				}
				if _, err := d.StoreReports(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "reports/s")
		})
	}
}

// BenchmarkStoreReportDuplicate measures re-importing: every report is
// already stored.
func BenchmarkStoreReportDuplicate(b *testing.B) {
	d := dbtest.New(b)
	ctx := context.Background()
	batch := make([]reports.Received, 500)
	for j := range batch {
		batch[j] = sample("google.com", fmt.Sprintf("dup-%d", j), day1)
	}
	if _, err := d.StoreReports(ctx, batch); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := d.StoreReports(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "reports/s")
}
