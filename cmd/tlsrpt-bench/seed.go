package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
)

// Bounds of "tlsrpt-bench seed": enough for the benchmarks' 1,000 domains × 3
// years ten times over, not enough to fill a disk by a typo.
const (
	maxSeedDomains = 100_000
	maxSeedDays    = 40 * 366
	maxSeedReports = 20_000_000
	maxSeedBatch   = 10_000
)

// runBenchSeed stores N domains × Y years of realistic reports through the
// store's batch API (StoreReports: COPY into the real tables, rollups in
// the same transaction), so that the dashboard and the verdict read what
// they would read in production. One report per domain and day, from a
// reporter that rotates with the day; the last day seeded is yesterday
// (UTC) unless --end says otherwise.
func runBenchSeed(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default DATABASE_URL, else the embedded server)")
	domains := fs.Int("domains", 1000, "policy domains (d0000.example ...)")
	years := fs.Float64("years", 3, "years of history per domain")
	details := fs.Int("details", 10, "at most this many failure details per report (average half of it)")
	listed := fs.Int("listed", -1, "add the first N domains to the allow-list (-1: all)")
	batch := fs.Int("batch", 1000, "reports per StoreReports call")
	workers := fs.Int("workers", 2, "concurrent StoreReports calls")
	endFlag := fs.String("end", "", "last day seeded, YYYY-MM-DD (default yesterday UTC)")
	setUsage(fs, env, "seed", "[flags]")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	days := int(*years * 365)
	end := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	if *endFlag != "" {
		t, err := time.Parse(time.DateOnly, *endFlag)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt-bench seed: --end: %v\n", err)
			return 2
		}
		end = t
	}
	switch {
	case *domains < 1 || *domains > maxSeedDomains, days < 1 || days > maxSeedDays,
		*domains*days > maxSeedReports, *batch < 1 || *batch > maxSeedBatch,
		*workers < 1 || *workers > 64, *details < 0 || *details > 100:
		fmt.Fprintf(env.Stderr, "tlsrpt-bench seed: out of bounds (domains 1..%d, days 1..%d, reports ≤ %d, batch 1..%d, workers 1..64, details 0..100)\n",
			maxSeedDomains, maxSeedDays, maxSeedReports, maxSeedBatch)
		return 2
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench seed: %v\n", err)
		return 1
	}
	defer closeDB()
	if *listed < 0 || *listed > *domains {
		*listed = *domains
	}
	for i := range *listed {
		if _, _, err := d.AddDomain(ctx, benchDomain(i)); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt-bench seed: adding domain: %v\n", err)
			return 1
		}
	}
	st, err := seedReports(ctx, d, seedPlan{domains: *domains, days: days, end: end, details: *details, batch: *batch, workers: *workers},
		func(s seedStats) {
			fmt.Fprintf(env.Stderr, "  %d reports, %d details, %.0f reports/s\n", s.reports, s.details, s.rate())
		})
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench seed: %v\n", err)
		return 1
	}
	if _, err := d.Pool.Exec(ctx, `ANALYZE`); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt-bench seed: analyzing: %v\n", err)
		return 1
	}
	fmt.Fprintf(env.Stdout, "seeded %d domains × %d days: %d reports (%d new), %d failure details in %s: %.0f reports/s, %.0f details/s\n",
		*domains, days, st.reports, st.stored, st.details, st.elapsed.Round(time.Millisecond), st.rate(), float64(st.details)/st.elapsed.Seconds())
	return 0
}

// seedPlan is what seedReports stores.
type seedPlan struct {
	domains, days int
	end           time.Time // the last day
	details       int
	batch         int
	workers       int
}

// seedStats counts what was stored.
type seedStats struct {
	reports, stored, details int64
	elapsed                  time.Duration
}

func (s seedStats) rate() float64 { return float64(s.reports) / s.elapsed.Seconds() }

// seedReports generates the plan's reports day by day (so a batch holds
// many domains of one day, as a daily mail run would) and stores them in
// batches with several workers. Reports are generated as JSON in the
// reporter's shape and parsed by reports.ParseBytes, as the importer
// would; generation runs in the workers, so the producer stays cheap.
func seedReports(ctx context.Context, d *db.DB, p seedPlan, progress func(seedStats)) (seedStats, error) {
	type job struct{ first, n int } // report numbers [first, first+n)
	total := p.domains * p.days
	start := p.end.AddDate(0, 0, -(p.days - 1))
	jobs := make(chan job)
	var st seedStats
	var stored, nDet atomic.Int64
	t0 := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, p.workers)
	lim := reports.DefaultLimits()
	for range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				batch := make([]reports.Received, 0, j.n)
				for k := j.first; k < j.first+j.n; k++ {
					day := start.AddDate(0, 0, k/p.domains)
					g := benchReport(k%p.domains, day, 0, p.details)
					rep, raw, err := reports.ParseBytes(g.JSON(), lim)
					if err != nil {
						errs <- fmt.Errorf("parsing generated report %s: %w", g.ReportID(), err)
						cancel()
						return
					}
					for _, pr := range rep.Policies {
						nDet.Add(int64(len(pr.FailureDetails)))
					}
					batch = append(batch, reports.Received{Report: rep, JSON: raw, Source: reports.SourceFile,
						SourceRef: "bench-seed", ReceivedAt: day.Add(30 * time.Hour)})
				}
				res, err := d.StoreReports(ctx, batch)
				if err != nil {
					errs <- fmt.Errorf("storing reports: %w", err)
					cancel()
					return
				}
				for _, r := range res {
					if !r.Duplicate {
						stored.Add(1)
					}
				}
			}
		}()
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	sent := 0
feed:
	for sent < total {
		n := min(p.batch, total-sent)
		select {
		case jobs <- job{sent, n}:
			sent += n
		case <-tick.C:
			if progress != nil {
				progress(seedStats{reports: int64(sent), details: nDet.Load(), elapsed: time.Since(t0)})
			}
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	st = seedStats{reports: int64(sent), stored: stored.Load(), details: nDet.Load(), elapsed: time.Since(t0)}
	return st, err
}
