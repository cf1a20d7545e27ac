package db_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// BenchmarkStoreReports measures the store's bulk insert (target 3 of
// BENCHMARKS.md: 10,000 reports/s): batches of 500 reports, each with two
// policies and two failure details, as a typical Google or Microsoft daily
// report.
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

// BenchmarkStoreReportsCPU measures the CPU time of storing, on both sides,
// which a loaded machine does not distort as it does wall-clock time:
// batches of 500 reports (two policies, two failure details each) of 1,000
// domains, 6 reporters and 365 days, so that the rollups grow as in a real
// backfill, over one connection, the PostgreSQL backend's CPU read from /proc/<pid>/stat (the
// test server runs on this machine) and the client's from getrusage. A
// 2-core machine with both sides busy stores at most 2e6 /
// (server+client µs) reports per second.
//
//	go test -run '^$' -bench StoreReportsCPU -benchtime 20x ./db/
func BenchmarkStoreReportsCPU(b *testing.B) {
	ctx := context.Background()
	d0 := dbtest.New(b)
	cfg := d0.Pool.Config()
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer pool.Close()
	d := &db.DB{Pool: pool}
	var pid int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		b.Fatal(err)
	}
	n := 0
	batch := func() []reports.Received {
		out := make([]reports.Received, 500)
		for j := range out {
			n++
			r := sample(fmt.Sprintf("org%d.example", n%6), fmt.Sprintf("cpu-%d", n), day1.AddDate(0, 0, -(n*7)%365))
			r.Report.Policies[0].Policy.Domain = fmt.Sprintf("d%d.example", n%1000)
			r.Report.Policies[0].FailureDetails[0].SendingMTAIP = fmt.Sprintf("198.51.100.%d", n%200)
			out[j] = r
		}
		return out
	}
	// Warm up: partitions, plans, caches.
	if err := d.EnsurePartitions(ctx, day1.AddDate(-1, 0, 0), day1); err != nil {
		b.Fatal(err)
	}
	for range 2 {
		if _, err := d.StoreReports(ctx, batch()); err != nil {
			b.Fatal(err)
		}
	}
	server0, err := backendCPU(pid)
	if err != nil {
		b.Skipf("reading the backend's CPU time: %v", err)
	}
	client0 := clientCPU()
	stored := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rs := batch()
		if _, err := d.StoreReports(ctx, rs); err != nil {
			b.Fatal(err)
		}
		stored += len(rs)
	}
	b.StopTimer()
	server1, err := backendCPU(pid)
	if err != nil {
		b.Fatal(err)
	}
	client := clientCPU() - client0
	b.ReportMetric(float64((server1-server0).Microseconds())/float64(stored), "server-µs/report")
	b.ReportMetric(float64(client.Microseconds())/float64(stored), "client-µs/report")
}

// backendCPU is the user+system CPU time of process pid (/proc/pid/stat
// fields 14 and 15, in clock ticks of 1/100 s).
func backendCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// The command name may hold spaces; the fields follow its ')'.
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parsing /proc/%d/stat", pid)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

func clientCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
