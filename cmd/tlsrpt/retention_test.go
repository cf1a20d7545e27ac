package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// TestRetentionCommand seeds 18 old days and 18 recent ones, counts, then
// deletes the old ones (their month's partitions dropped whole); a report
// for a removed day is refused by import afterwards; too short a
// retention is refused.
func TestRetentionCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	yesterday := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	for _, end := range []time.Time{time.Date(2020, 1, 31, 0, 0, 0, 0, time.UTC), yesterday} {
		seedDays(t, d, "d0000.example", end, 18)
	}
	code, out, errOut := runStoreCmd(t, "retention", "--db", url, "--keep-days", "400", "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "18 reports before ") {
		t.Fatalf("retention --dry-run = %d, %q, %q", code, out, errOut)
	}
	if code, out, errOut := runStoreCmd(t, "retention", "--db", url, "--keep-days", "400", "--whole-months", "--dry-run"); code != 0 || !strings.HasPrefix(out, "18 reports before ") || !strings.Contains(out, "-01 would") {
		t.Fatalf("retention --whole-months --dry-run = %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runStoreCmd(t, "retention", "--db", url, "--keep-days", "400")
	if code != 0 || !strings.HasPrefix(out, "deleted 18 reports before ") || !strings.Contains(out, "(1 monthly partitions dropped: 2020-01)") {
		t.Fatalf("retention = %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := runStoreCmd(t, "retention", "--db", url, "--keep-days", "400", "--dry-run"); code != 0 || !strings.HasPrefix(out, "0 reports") {
		t.Errorf("retention --dry-run after = %d, %q", code, out)
	}
	old := filepath.Join(t.TempDir(), "old.json")
	if err := os.WriteFile(old, []byte(strings.ReplaceAll(goodReport, "2026-03-01", "2020-01-15")), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runStoreCmd(t, "import", "--db", url, old); code != 1 || !strings.Contains(out, "1 refused") || !strings.Contains(errOut, "retention cutoff") {
		t.Errorf("import of a report before the cutoff = %d, %q, %q; want it refused", code, out, errOut)
	}
	for _, keep := range []string{"30", "0", "99999999"} {
		if code, _, _ := runStoreCmd(t, "retention", "--db", url, "--keep-days", keep); code != 2 {
			t.Errorf("retention --keep-days %s = %d, want 2", keep, code)
		}
	}
}

// TestStorageMaintenance: serve's daily run makes this month's and the
// next month's partitions, and applies the retention when set.
func TestStorageMaintenance(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Date(2026, 12, 15, 10, 0, 0, 0, time.UTC)
	maintainStorage(ctx, d, retentionConfig{}, now, log)
	parts, err := d.Partitions(ctx)
	if err != nil || len(parts) != 2 || !parts[0].Month.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !parts[1].Month.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Partitions() after maintenance = %+v, %v; want 2026-12 and 2027-01", parts, err)
	}
	if err := d.EnsurePartitions(ctx, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	maintainStorage(ctx, d, retentionConfig{keepDays: db.MinRetentionDays, wholeMonths: true}, now, log)
	parts, err = d.Partitions(ctx)
	if err != nil || len(parts) != 2 {
		t.Errorf("Partitions() after retention = %+v, %v; want 2025-01 dropped", parts, err)
	}
}

// TestStorageMaintenanceQuarantine: serve's daily run deletes quarantine
// entries older than TLSRPT_QUARANTINE_DAYS (default 90), and keeps them
// when it is 0.
func TestStorageMaintenanceQuarantine(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	now := time.Date(2026, 12, 15, 10, 0, 0, 0, time.UTC) // the one clock of this test
	for i, age := range []int{100, 10} {
		id, err := d.Quarantine(ctx, []byte{byte(i)}, "no report", reports.SourceHTTPS, "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Pool.Exec(ctx, `UPDATE quarantine SET created_at = $1 WHERE id = $2`, now.AddDate(0, 0, -age), id); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		var n int
		if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM quarantine`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	maintainStorage(ctx, d, retentionConfig{}, now, log)
	if n := count(); n != 2 {
		t.Fatalf("quarantine entries with TLSRPT_QUARANTINE_DAYS=0 = %d, want 2", n)
	}
	rc, err := retentionFromEnv(&Env{Getenv: func(string) string { return "" }})
	if err != nil || rc.quarantineDays != 90 {
		t.Fatalf("retentionFromEnv() = %+v, %v; want 90 quarantine days by default", rc, err)
	}
	maintainStorage(ctx, d, rc, now, log)
	if n := count(); n != 1 {
		t.Errorf("quarantine entries after the daily run = %d, want the 10-day-old one only", n)
	}
}

// TestQuarantineSettings: the quarantine's retention and cap are read
// from the environment, and a wrong value names its variable.
func TestQuarantineSettings(t *testing.T) {
	env := func(kv map[string]string) *Env { return &Env{Getenv: func(k string) string { return kv[k] }} }
	rc, err := retentionFromEnv(env(map[string]string{"TLSRPT_QUARANTINE_DAYS": "0", "TLSRPT_QUARANTINE_MAX_BYTES": "1048576"}))
	if err != nil || rc.quarantineDays != 0 || rc.quarantineMaxBytes != 1<<20 {
		t.Errorf("retentionFromEnv(0 days, 1 MiB) = %+v, %v", rc, err)
	}
	if rc, err := retentionFromEnv(env(nil)); err != nil || rc.quarantineMaxBytes != db.DefaultQuarantineMaxBytes {
		t.Errorf("retentionFromEnv(defaults) = %+v, %v", rc, err)
	}
	for name, v := range map[string]string{"TLSRPT_QUARANTINE_DAYS": "-1", "TLSRPT_QUARANTINE_MAX_BYTES": "1000"} {
		if _, err := retentionFromEnv(env(map[string]string{name: v})); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("retentionFromEnv(%s=%s) = %v, want an error naming it", name, v, err)
		}
	}
}

// seedDays stores one report a day for domain, the n days that end with
// end.
func seedDays(t *testing.T, d *db.DB, domain string, end time.Time, n int) {
	t.Helper()
	ctx := context.Background()
	first := end.AddDate(0, 0, -(n - 1))
	if err := d.EnsurePartitions(ctx, first, end); err != nil {
		t.Fatal(err)
	}
	for day := first; !day.After(end); day = day.AddDate(0, 0, 1) {
		r := &reports.Report{OrganizationName: "Google Inc.", ReportID: domain + "-" + day.Format(time.DateOnly),
			DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
			Policies: []reports.PolicyResult{{
				Policy:  reports.Policy{Type: "sts", Domain: domain, MXHosts: []string{"mx1." + domain}},
				Summary: reports.Summary{TotalSuccessfulSessionCount: 100},
			}}}
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := d.StoreReport(ctx, reports.Received{Report: r, JSON: raw, Source: reports.SourceFile, ReceivedAt: day.Add(30 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
}
