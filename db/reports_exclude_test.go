package db_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// nonZeroRollups is every daily rollup row with a non-zero count, as
// text: what the pages and the verdict read.
func nonZeroRollups(t *testing.T, d *db.DB) string {
	t.Helper()
	var s string
	err := d.Pool.QueryRow(context.Background(), `SELECT
		coalesce((SELECT json_agg(t ORDER BY t::text)::text FROM daily_policy_rollups t WHERE reports <> 0 OR successful <> 0 OR failed <> 0), '') ||
		coalesce((SELECT json_agg(t ORDER BY t::text)::text FROM daily_failure_rollups t WHERE failed <> 0), '') ||
		coalesce((SELECT json_agg(to_jsonb(t) - 'last_policy_id' ORDER BY t::text)::text FROM daily_mode_rollups t WHERE reports <> 0), '') ||
		coalesce((SELECT json_agg(to_jsonb(t) - 'last_detail_id' ORDER BY t::text)::text FROM daily_sender_rollups t WHERE failed <> 0), '') ||
		coalesce((SELECT json_agg(t ORDER BY t::text)::text FROM daily_ip_rollups t WHERE failed <> 0), '')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestExcludeReport: an excluded report's totals leave every rollup, as if
// it had never been stored; included again, they come back; deleted, the
// rows go too.
func TestExcludeReport(t *testing.T) {
	ctx := context.Background()
	alone := dbtest.New(t)
	if _, _, err := alone.StoreReport(ctx, sample("google.com", "keep", day1)); err != nil {
		t.Fatal(err)
	}
	want := nonZeroRollups(t, alone)

	d := dbtest.New(t)
	if _, _, err := d.StoreReport(ctx, sample("google.com", "keep", day1)); err != nil {
		t.Fatal(err)
	}
	forged, _, err := d.StoreReport(ctx, sample("microsoft.com", "forged", day1))
	if err != nil {
		t.Fatal(err)
	}
	both := nonZeroRollups(t, d)
	if both == want {
		t.Fatal("the second report changed no rollup: the test proves nothing")
	}
	at := day1.Add(48 * time.Hour)
	if err := d.ExcludeReport(ctx, forged, "admin", "forged", at); err != nil {
		t.Fatalf("ExcludeReport() = %v", err)
	}
	if got := nonZeroRollups(t, d); got != want {
		t.Errorf("rollups after excluding the report:\n%s\nwant those without it:\n%s", got, want)
	}
	r, err := d.Report(ctx, forged)
	if err != nil || r.ExcludedAt == nil || !r.ExcludedAt.Equal(at) || r.ExcludedBy != "admin" || r.ExcludedReason != "forged" {
		t.Errorf("Report() after exclusion = %+v, %v", r, err)
	}
	if err := d.ExcludeReport(ctx, forged, "admin", "again", at); !errors.Is(err, db.ErrExcluded) {
		t.Errorf("ExcludeReport() twice = %v, want ErrExcluded", err)
	}
	if err := d.IncludeReport(ctx, forged); err != nil {
		t.Fatalf("IncludeReport() = %v", err)
	}
	if got := nonZeroRollups(t, d); got != both {
		t.Errorf("rollups after including it again:\n%s\nwant:\n%s", got, both)
	}
	if err := d.DeleteReport(ctx, forged); err != nil {
		t.Fatalf("DeleteReport() = %v", err)
	}
	if got := nonZeroRollups(t, d); got != want {
		t.Errorf("rollups after deleting the report:\n%s\nwant:\n%s", got, want)
	}
	if _, err := d.Report(ctx, forged); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("Report() after deletion = %v, want ErrNotFound", err)
	}
	if err := d.ExcludeReport(ctx, forged, "admin", "", at); !errors.Is(err, db.ErrNotFound) {
		t.Errorf("ExcludeReport(deleted) = %v, want ErrNotFound", err)
	}
	counts := tableCounts(t, d)
	if counts["reports"] != 1 || counts["report_policies"] != 2 || counts["failure_details"] != 2 {
		t.Errorf("rows after deleting one of two reports: %v", counts)
	}
}

// TestMigrateReattributesLegacyHTTPS: an HTTPS report stored when every
// post counted leaves the trusted evidence on the next Migrate, as if it
// had been stored unverified.
func TestMigrateReattributesLegacyHTTPS(t *testing.T) {
	ctx := context.Background()
	posted := sample("google.com", "posted", day1)
	posted.Source = reports.SourceHTTPS
	want := dbtest.New(t)
	if _, _, err := want.StoreReport(ctx, posted); err != nil {
		t.Fatal(err)
	}
	d := dbtest.New(t)
	id, _, err := d.StoreReport(ctx, posted)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.MakeLegacyTrusted(ctx, id, day1); err != nil {
		t.Fatal(err)
	}
	if nonZeroRollups(t, d) == nonZeroRollups(t, want) {
		t.Fatal("the legacy report counts as the unverified one: the test proves nothing")
	}
	if err := d.Migrate(ctx); err != nil {
		t.Fatalf("Migrate() = %v", err)
	}
	if got, w := nonZeroRollups(t, d), nonZeroRollups(t, want); got != w {
		t.Errorf("rollups after Migrate:\n%s\nwant those of the report stored unverified:\n%s", got, w)
	}
	if r, err := d.Report(ctx, id); err != nil || r.Trusted {
		t.Errorf("Report() after Migrate = trusted %v, %v; want unverified", r != nil && r.Trusted, err)
	}
}
