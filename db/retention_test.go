package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// TestDeleteReportsBefore stores reports on old and recent days, deletes
// the old ones in small batches, and checks that their policies and
// failure details went with them, the recent ones stayed, the rollups are
// unchanged, and the verdict's facts still read.
func TestDeleteReportsBefore(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(24 * time.Hour)
	old, recent := now.AddDate(0, 0, -500), now.AddDate(0, 0, -10)
	for i := range 7 {
		for _, day := range []time.Time{old.AddDate(0, 0, i), recent.AddDate(0, 0, i)} {
			if _, _, err := d.StoreReport(ctx, sample("google.com", fmt.Sprintf("ret-%s-%d", day.Format("20060102"), i), day)); err != nil {
				t.Fatal(err)
			}
		}
	}
	counts := func() (reps, pols, dets int64, rollups string) {
		t.Helper()
		err := d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM report_policies),
			(SELECT count(*) FROM failure_details),
			(SELECT concat_ws('/', sum(reports), sum(successful), sum(failed)) FROM daily_policy_rollups) || ' ' ||
			(SELECT sum(failed)::text FROM daily_failure_rollups) || ' ' ||
			(SELECT count(*)::text FROM daily_mode_rollups) || ' ' || (SELECT sum(failed)::text FROM daily_sender_rollups)`).
			Scan(&reps, &pols, &dets, &rollups)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	_, _, _, rollupsBefore := counts()
	cutoff := now.AddDate(0, 0, -db.MinRetentionDays)
	n, err := d.ReportsBefore(ctx, cutoff)
	if err != nil || n != 7 {
		t.Fatalf("ReportsBefore() = %d, %v; want 7", n, err)
	}
	deleted, err := d.DeleteReportsBefore(ctx, cutoff, 3)
	if err != nil || deleted != 7 {
		t.Fatalf("DeleteReportsBefore() = %d, %v; want 7", deleted, err)
	}
	reps, pols, dets, rollupsAfter := counts()
	// sample: two policies and two failure details per report.
	if reps != 7 || pols != 14 || dets != 14 {
		t.Errorf("after retention: %d reports, %d policies, %d details; want 7, 14, 14", reps, pols, dets)
	}
	if rollupsAfter != rollupsBefore {
		t.Errorf("rollups changed by retention: %s, were %s", rollupsAfter, rollupsBefore)
	}
	var oldLeft int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE day < $1`, cutoff).Scan(&oldLeft); err != nil || oldLeft != 0 {
		t.Errorf("reports before the cutoff left: %d, %v", oldLeft, err)
	}
	if _, err := d.Facts(ctx, "example.com", now, rollout.DefaultThresholds().SpanDays()); err != nil {
		t.Errorf("Facts() after retention = %v", err)
	}
	if again, err := d.DeleteReportsBefore(ctx, cutoff, 0); err != nil || again != 0 {
		t.Errorf("DeleteReportsBefore() again = %d, %v; want 0", again, err)
	}
}
