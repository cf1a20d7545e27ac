package db

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Reports, their policies and failure details are partitioned by the month
// of the report's UTC day (migration 060, docs/store.md). The store creates
// a month's partitions the first time it stores a report of that month;
// retention drops them whole.

// Days the store accepts: a report whose range starts before 2000 or more
// than a year ahead is a sender's bug, not history, and would otherwise
// make a partition of its own.
var firstDay = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maxDaysAhead bounds how far in the future a report's day may be.
const maxDaysAhead = 366

// cutoffTTL is how long the store trusts the retention cutoff it read:
// retention runs daily, and a report stored in the minute after a run is
// deleted by the next one at worst.
const cutoffTTL = time.Minute

// partitionCache is what the store remembers between batches so that the
// steady state costs no query: the months whose partitions exist and the
// retention cutoff of the last run.
type partitionCache struct {
	mu       sync.Mutex
	months   map[int]bool // year*12 + month - 1
	cutoff   time.Time    // zero: retention never ran
	cutoffAt time.Time    // when cutoff was read; zero: never
}

func monthOf(day time.Time) int { return day.Year()*12 + int(day.Month()) - 1 }

func monthStart(m int) time.Time { return time.Date(m/12, time.Month(m%12+1), 1, 0, 0, 0, 0, time.UTC) }

// forget drops the cached months: a partition went away (retention).
func (c *partitionCache) forget() {
	c.mu.Lock()
	c.months = nil
	c.cutoffAt = time.Time{}
	c.mu.Unlock()
}

// checkDay says why the store refuses a report of day, or "".
// RefusedDay says why the store refuses a report of day when the clock
// reads now and no retention has run, "" when it takes it: for callers
// (tests of the pipeline) that predict what becomes of a report.
func RefusedDay(day, now time.Time) string { return checkDay(day, now, time.Time{}) }

func checkDay(day, now, cutoff time.Time) string {
	switch {
	case day.Before(firstDay):
		return fmt.Sprintf("report day %s is before %s", day.Format(time.DateOnly), firstDay.Format(time.DateOnly))
	case day.After(now.AddDate(0, 0, maxDaysAhead)):
		return fmt.Sprintf("report day %s is more than %d days ahead", day.Format(time.DateOnly), maxDaysAhead)
	case !cutoff.IsZero() && day.Before(cutoff):
		return fmt.Sprintf("report day %s is before the retention cutoff %s (its month's raw reports were dropped; the rollups keep the totals)",
			day.Format(time.DateOnly), cutoff.Format(time.DateOnly))
	}
	return ""
}

// prepareDays refuses reports of days the store does not keep (with a
// RejectedError naming the first) and makes sure the partitions of every
// month in days exist.
func (d *DB) prepareDays(ctx context.Context, days []time.Time) error {
	cutoff, err := d.retentionCutoff(ctx)
	if err != nil {
		return err
	}
	now := d.now().UTC()
	var missing []int
	d.parts.mu.Lock()
	for _, day := range days {
		if why := checkDay(day, now, cutoff); why != "" {
			d.parts.mu.Unlock()
			return &RejectedError{Err: errors.New(why)}
		}
		if m := monthOf(day); !d.parts.months[m] {
			missing = append(missing, m)
		}
	}
	d.parts.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	sort.Ints(missing)
	for i, m := range missing {
		if i > 0 && m == missing[i-1] {
			continue
		}
		if err := d.ensureMonth(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// ensureMonth creates the partitions of month m unless they exist, in a
// transaction of its own (creating a partition locks the parent table; it
// must not wait inside a store transaction).
func (d *DB) ensureMonth(ctx context.Context, m int) error {
	day := monthStart(m)
	if _, err := d.Pool.Exec(ctx, `SELECT tlsrpt_ensure_month($1)`, day); err != nil {
		return fmt.Errorf("creating the partitions of %s: %w", day.Format("2006-01"), classify(err))
	}
	d.parts.mu.Lock()
	if d.parts.months == nil {
		d.parts.months = map[int]bool{}
	}
	d.parts.months[m] = true
	d.parts.mu.Unlock()
	return nil
}

// EnsurePartitions creates the partitions of the months from the one of
// from to the one of to, inclusive. The daily retention run creates the
// current and next month ahead of the first report, so that no store
// waits for the catalog change.
func (d *DB) EnsurePartitions(ctx context.Context, from, to time.Time) error {
	for m := monthOf(from.UTC()); m <= monthOf(to.UTC()); m++ {
		if err := d.ensureMonth(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// AnalyzePartitioned refreshes the planner statistics of the three
// partitioned tables. Autovacuum analyzes each month's partition but never
// the partitioned parents, whose statistics the planner uses for joins
// across months; without them the verdict's queries cost about 4 ms more
// (docs/bench-dashboard.md). Serve runs it daily; it samples, so its cost
// does not grow with the history (seconds on a million reports).
func (d *DB) AnalyzePartitioned(ctx context.Context) error {
	if _, err := d.Pool.Exec(ctx, `ANALYZE reports, report_policies, failure_details`); err != nil {
		return fmt.Errorf("analyzing the partitioned tables: %w", err)
	}
	return nil
}

// retentionCutoff returns the cutoff of the last retention run (zero when
// none ran), read at most once per cutoffTTL.
func (d *DB) retentionCutoff(ctx context.Context) (time.Time, error) {
	d.parts.mu.Lock()
	cutoff, at := d.parts.cutoff, d.parts.cutoffAt
	d.parts.mu.Unlock()
	if !at.IsZero() && time.Since(at) < cutoffTTL {
		return cutoff, nil
	}
	err := d.Pool.QueryRow(ctx, `SELECT cutoff FROM retention_state`).Scan(&cutoff)
	if errors.Is(err, pgx.ErrNoRows) {
		cutoff, err = time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the retention cutoff: %w", err)
	}
	cutoff = cutoff.UTC()
	d.parts.mu.Lock()
	d.parts.cutoff, d.parts.cutoffAt = cutoff, time.Now()
	d.parts.mu.Unlock()
	return cutoff, nil
}

// Partition is one month of the partitioned tables.
type Partition struct {
	Month   time.Time // first day of the month, UTC
	Reports int64     // estimated rows of reports (pg_class.reltuples)
	Bytes   int64     // size of the month's three partitions and their indexes
}

// Partitions lists the months that have partitions, oldest first.
func (d *DB) Partitions(ctx context.Context) ([]Partition, error) {
	rows, err := d.Pool.Query(ctx, `
		SELECT c.relname, greatest(c.reltuples, 0)::bigint,
			(SELECT sum(pg_total_relation_size(i.inhrelid))::bigint FROM pg_inherits i
				JOIN pg_class x ON x.oid = i.inhrelid
				WHERE i.inhparent IN ('reports'::regclass, 'report_policies'::regclass, 'failure_details'::regclass)
				AND substring(x.relname from '_y[0-9]{4}m[0-9]{2}$') = substring(c.relname from '_y[0-9]{4}m[0-9]{2}$'))
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'reports'::regclass
		ORDER BY c.relname`)
	if err != nil {
		return nil, fmt.Errorf("listing partitions: %w", err)
	}
	var (
		out  []Partition
		name string
		p    Partition
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &p.Reports, &p.Bytes}, func() error {
		m, err := time.Parse("y2006m01", strings.TrimPrefix(name, "reports_"))
		if err != nil {
			return fmt.Errorf("partition %s: unexpected name", name)
		}
		p.Month = m
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing partitions: %w", err)
	}
	return out, nil
}

// noPartition reports whether err is PostgreSQL finding no partition for a
// row: a month dropped since the cache said it exists.
func noPartition(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23514" && strings.Contains(pe.Message, "no partition")
}
