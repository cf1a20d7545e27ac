package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// MinRetentionDays is the shortest retention of raw reports that keeps the
// verdict whole: the daily mode rollups it reads reach back 366 days and
// name the newest policy row of each day (last_policy_id), which must
// still exist; the margin covers the evaluation window.
const MinRetentionDays = 400

// maxRetentionBatch bounds the reports deleted by one statement, so that
// retention never holds long locks or a huge transaction.
const maxRetentionBatch = 50_000

// RetentionResult is what a retention run removed.
type RetentionResult struct {
	Cutoff  time.Time   // reports of days before it are gone
	Reports int64       // reports removed, in dropped months and deleted one by one
	Dropped []time.Time // months whose partitions were dropped whole, oldest first
}

// ReportsBefore counts the reports whose day is before cutoff: what
// DeleteReportsBefore would delete.
func (d *DB) ReportsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE day < $1`, cutoff).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting reports before %s: %w", cutoff.Format(time.DateOnly), err)
	}
	return n, nil
}

// DeleteReportsBefore removes the raw reports whose day is before cutoff,
// with their policies and failure details: ApplyRetention with day
// precision. It returns how many reports it removed, also when ctx ends
// midway.
func (d *DB) DeleteReportsBefore(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	res, err := d.ApplyRetention(ctx, cutoff, false, batch)
	return res.Reports, err
}

// ApplyRetention removes the raw reports whose day is before cutoff (a UTC
// day), with their policies and failure details. The months wholly before
// cutoff are dropped as partitions, a catalog change that leaves no vacuum
// work; the days of cutoff's own month before it are deleted in batches
// of batch reports, each its own transaction, unless wholeMonths is set:
// then cutoff is moved back to the first of its month and nothing is
// deleted row by row (up to a month more is kept). The cutoff is recorded
// first, so that the store refuses reports for the days removed (a store
// that read the cutoff less than a minute before may still add some; the
// next run removes them). The daily rollups stay: the dashboards and the
// verdict read only those.
func (d *DB) ApplyRetention(ctx context.Context, cutoff time.Time, wholeMonths bool, batch int) (RetentionResult, error) {
	cutoff = cutoff.UTC().Truncate(24 * time.Hour)
	edge := monthStart(monthOf(cutoff))
	if wholeMonths {
		cutoff = edge
	}
	res := RetentionResult{Cutoff: cutoff}
	wrap := func(err error) error {
		return fmt.Errorf("removing reports before %s: %w", cutoff.Format(time.DateOnly), err)
	}
	keep := int(d.now().Sub(cutoff).Hours() / 24)
	if _, err := d.Pool.Exec(ctx, `INSERT INTO retention_state (keep_days, cutoff) VALUES ($1, $2)
		ON CONFLICT (singleton) DO UPDATE SET keep_days = EXCLUDED.keep_days, cutoff = EXCLUDED.cutoff, ran_at = now()`,
		keep, cutoff); err != nil {
		return res, wrap(fmt.Errorf("recording the cutoff: %w", err))
	}
	parts, err := d.Partitions(ctx)
	if err != nil {
		return res, wrap(err)
	}
	for _, p := range parts {
		if !p.Month.Before(edge) {
			break
		}
		n, err := d.dropMonth(ctx, p.Month)
		if err != nil {
			return res, wrap(err)
		}
		res.Reports += n
		res.Dropped = append(res.Dropped, p.Month)
	}
	if len(res.Dropped) > 0 {
		d.parts.forget()
	}
	if cutoff.Equal(edge) {
		return res, nil
	}
	n, err := d.deleteDays(ctx, edge, cutoff, batch)
	res.Reports += n
	if err != nil {
		return res, wrap(err)
	}
	return res, nil
}

// dropMonth detaches and drops the partitions of month m of the three
// tables and returns how many reports they held. DETACH ... CONCURRENTLY
// takes no lock that blocks the readers and writers of the parents (a
// plain DROP would take ACCESS EXCLUSIVE on them and could deadlock with a
// reader joining the tables in another order); it waits for the queries
// that may still see the partition. A run stopped midway leaves a detach
// pending (finished here the next time) or a detached table (dropped).
func (d *DB) dropMonth(ctx context.Context, m time.Time) (int64, error) {
	suffix := m.Format("_y2006m01")
	var n int64
	err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{"reports" + suffix}.Sanitize()).Scan(&n)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" {
		return 0, nil // another instance dropped it meanwhile
	}
	if err != nil {
		return 0, fmt.Errorf("counting the reports of %s: %w", m.Format("2006-01"), err)
	}
	for _, parent := range []string{"reports", "report_policies", "failure_details"} {
		child := parent + suffix
		var pending *bool
		err := d.Pool.QueryRow(ctx, `SELECT (SELECT inhdetachpending FROM pg_inherits
			WHERE inhparent = $1::regclass AND inhrelid = to_regclass($2))`, parent, child).Scan(&pending)
		if err != nil {
			return 0, fmt.Errorf("dropping the partitions of %s: %w", m.Format("2006-01"), err)
		}
		if pending != nil {
			how := "CONCURRENTLY"
			if *pending {
				how = "FINALIZE"
			}
			_, err := d.Pool.Exec(ctx, `ALTER TABLE `+pgx.Identifier{parent}.Sanitize()+` DETACH PARTITION `+
				pgx.Identifier{child}.Sanitize()+` `+how)
			if errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42P16") {
				err = nil // detached or dropped by another instance meanwhile
			}
			if err != nil {
				return 0, fmt.Errorf("detaching %s: %w", child, err)
			}
		}
		if _, err := d.Pool.Exec(ctx, `DROP TABLE IF EXISTS `+pgx.Identifier{child}.Sanitize()); err != nil {
			return 0, fmt.Errorf("dropping %s: %w", child, err)
		}
	}
	return n, nil
}

// deleteDays deletes the reports of the days in [from, to), with their
// policies and failure details, batch reports per statement.
func (d *DB) deleteDays(ctx context.Context, from, to time.Time, batch int) (int64, error) {
	if batch < 1 || batch > maxRetentionBatch {
		batch = maxRetentionBatch
	}
	var total int64
	for {
		// One statement removes a batch of reports and their children:
		// there are no foreign keys to cascade (migration 060).
		var n int64
		err := d.Pool.QueryRow(ctx, `WITH r AS (
				DELETE FROM reports WHERE (id, day) IN (
					SELECT id, day FROM reports WHERE day >= $1 AND day < $2 ORDER BY id LIMIT $3)
				RETURNING id, day
			), p AS (
				DELETE FROM report_policies p USING r WHERE p.report_id = r.id AND p.day = r.day
				RETURNING p.id, p.day
			), f AS (
				DELETE FROM failure_details f USING p WHERE f.policy_id = p.id AND f.day = p.day
			)
			SELECT count(*) FROM r`, from, to, batch).Scan(&n)
		if err != nil {
			return total, fmt.Errorf("deleting the reports of %s to %s: %w", from.Format(time.DateOnly), to.Format(time.DateOnly), err)
		}
		total += n
		if n < int64(batch) {
			return total, nil
		}
	}
}
