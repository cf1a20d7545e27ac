package db

import (
	"context"
	"fmt"
	"time"
)

// MinRetentionDays is the shortest retention of raw reports that keeps the
// verdict whole: the daily mode rollups it reads reach back 366 days and
// name the newest policy row of each day (last_policy_id), which must
// still exist; the margin covers the evaluation window.
const MinRetentionDays = 400

// maxRetentionBatch bounds the reports deleted by one statement, so that
// retention never holds long locks or a huge transaction.
const maxRetentionBatch = 50_000

// ReportsBefore counts the reports whose day is before cutoff: what
// DeleteReportsBefore would delete.
func (d *DB) ReportsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE day < $1`, cutoff).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting reports before %s: %w", cutoff.Format(time.DateOnly), err)
	}
	return n, nil
}

// DeleteReportsBefore deletes the raw reports whose day is before cutoff,
// with their policies and failure details (by the foreign keys' cascade),
// batch reports per statement, each its own transaction. The daily rollups
// stay: the dashboards and the verdict read only those, so history keeps
// its charts and totals without the raw rows. It returns how many reports
// it deleted, also when ctx ends midway.
//
// Monthly partitions dropped whole would make this a catalog change
// instead of a delete (SCALING.md); until the tables are partitioned,
// retention deletes in bounded batches.
func (d *DB) DeleteReportsBefore(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	if batch < 1 || batch > maxRetentionBatch {
		batch = maxRetentionBatch
	}
	var total int64
	for {
		tag, err := d.Pool.Exec(ctx, `DELETE FROM reports WHERE id IN (
			SELECT id FROM reports WHERE day < $1 ORDER BY id LIMIT $2)`, cutoff, batch)
		if err != nil {
			return total, fmt.Errorf("deleting reports before %s: %w", cutoff.Format(time.DateOnly), err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < int64(batch) {
			return total, nil
		}
	}
}
