package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
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

// TestApplyRetentionPartitions stores reports in three months and
// removes those before a cutoff in the middle of the last: the first two
// months' partitions are dropped whole, the edge month's days before the
// cutoff deleted with their policies and details, the rollups untouched.
// Afterwards the store refuses reports for the removed days, also one
// whose process still believes the month exists; whole-month retention
// keeps the edge month.
func TestApplyRetentionPartitions(t *testing.T) {
	u := dbtest.NewURL(t, true)
	ctx := context.Background()
	d, err := db.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	other, err := db.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	jan := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var batch []reports.Received
	for i := range 90 {
		day := jan.AddDate(0, 0, i) // 2025-01-01 .. 2025-03-31
		batch = append(batch, sample("google.com", fmt.Sprintf("m-%d", i), day))
	}
	if _, err := d.StoreReports(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// The other process has seen January.
	if _, _, err := other.StoreReport(ctx, sample("google.com", "other-jan", jan)); err != nil {
		t.Fatal(err)
	}
	rollups := func() string {
		var s string
		if err := d.Pool.QueryRow(ctx, `SELECT concat_ws(' ', (SELECT sum(reports) FROM daily_policy_rollups),
			(SELECT sum(failed) FROM daily_failure_rollups), (SELECT sum(reports) FROM daily_mode_rollups),
			(SELECT sum(failed) FROM daily_sender_rollups), (SELECT sum(failed) FROM daily_ip_rollups))`).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := rollups()
	cutoff := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	if n, err := d.ReportsBefore(ctx, cutoff); err != nil || n != 31+28+9+1 {
		t.Fatalf("ReportsBefore() = %d, %v; want %d", n, err, 31+28+9+1)
	}
	res, err := d.ApplyRetention(ctx, cutoff, false, 4)
	if err != nil {
		t.Fatalf("ApplyRetention() = %v", err)
	}
	if res.Reports != 31+28+9+1 || len(res.Dropped) != 2 || !res.Dropped[1].Equal(jan.AddDate(0, 1, 0)) || !res.Cutoff.Equal(cutoff) {
		t.Errorf("ApplyRetention() = %+v; want 69 reports, January and February dropped", res)
	}
	counts := tableCounts(t, d)
	if counts["reports"] != 22 || counts["report_policies"] != 44 || counts["failure_details"] != 44 {
		t.Errorf("after retention: %v; want 22 reports, 44 policies, 44 details", counts)
	}
	if parts, err := d.Partitions(ctx); err != nil || len(parts) != 1 {
		t.Errorf("Partitions() = %+v, %v; want March only", parts, err)
	}
	if after := rollups(); after != before {
		t.Errorf("rollups changed by retention: %s, were %s", after, before)
	}
	for _, s := range []*db.DB{d, other} {
		for _, day := range []time.Time{jan.AddDate(0, 0, 3), cutoff.AddDate(0, 0, -1)} {
			_, _, err := s.StoreReport(ctx, sample("google.com", "late-"+day.Format("0102"), day))
			var re *db.RejectedError
			if !errors.As(err, &re) {
				t.Errorf("StoreReport(%s) after retention = %v, want a RejectedError", day.Format(time.DateOnly), err)
			}
		}
	}
	if _, _, err := other.StoreReport(ctx, sample("google.com", "on-cutoff", cutoff)); err != nil {
		t.Errorf("StoreReport(cutoff day) = %v", err)
	}
	if parts, _ := d.Partitions(ctx); len(parts) != 1 {
		t.Errorf("a refused report re-created a month: %+v", parts)
	}
	// Whole months: the cutoff moves back to the first of its month, the
	// edge month is kept, and reports for its days are stored again.
	res, err = d.ApplyRetention(ctx, time.Date(2025, 3, 20, 0, 0, 0, 0, time.UTC), true, 0)
	if err != nil || res.Reports != 0 || len(res.Dropped) != 0 || !res.Cutoff.Equal(jan.AddDate(0, 2, 0)) {
		t.Errorf("ApplyRetention(whole months) = %+v, %v; want nothing removed, cutoff 2025-03-01", res, err)
	}
	fresh, err := db.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if _, _, err := fresh.StoreReport(ctx, sample("google.com", "march-2", jan.AddDate(0, 2, 1))); err != nil {
		t.Errorf("StoreReport(2025-03-02) after whole-month retention = %v", err)
	}
}
