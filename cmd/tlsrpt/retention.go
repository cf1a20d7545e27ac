package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "retention", summary: "delete raw reports older than the retention (the daily rollups stay)", run: runRetention})
}

// maxRetentionDays bounds --keep-days (a century).
const maxRetentionDays = 36_600

// maintenanceEvery is how often serve creates the coming month's
// partitions and applies the retention.
const maintenanceEvery = 24 * time.Hour

// defaultQuarantineDays is how long serve keeps quarantine entries unless
// TLSRPT_QUARANTINE_DAYS says otherwise: long enough for an operator to
// notice a parser problem and reprocess after the fix, short enough that
// a flood of junk does not stay.
const defaultQuarantineDays = 90

// retentionConfig is the retention setting: keep the raw reports of
// keepDays days (0: keep everything), with whole months only when
// wholeMonths is set; keep quarantine entries quarantineDays days (0:
// keep them) and at most quarantineMaxBytes of their bytes.
type retentionConfig struct {
	keepDays           int
	wholeMonths        bool
	quarantineDays     int
	quarantineMaxBytes int64
}

// retentionFromEnv reads TLSRPT_RETENTION_DAYS,
// TLSRPT_RETENTION_WHOLE_MONTHS, TLSRPT_QUARANTINE_DAYS and
// TLSRPT_QUARANTINE_MAX_BYTES.
func retentionFromEnv(env *Env) (retentionConfig, error) {
	rc := retentionConfig{quarantineDays: defaultQuarantineDays, quarantineMaxBytes: db.DefaultQuarantineMaxBytes}
	if v := env.Getenv("TLSRPT_QUARANTINE_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxRetentionDays {
			return rc, fmt.Errorf("TLSRPT_QUARANTINE_DAYS: %q is not a number of days from 0 (keep) to %d", v, maxRetentionDays)
		}
		rc.quarantineDays = n
	}
	if v := env.Getenv("TLSRPT_QUARANTINE_MAX_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < db.QuarantineKeepBytes || n > 1<<40 {
			return rc, fmt.Errorf("TLSRPT_QUARANTINE_MAX_BYTES: %q is not a size from %d to 1099511627776 bytes", v, db.QuarantineKeepBytes)
		}
		rc.quarantineMaxBytes = n
	}
	if v := env.Getenv("TLSRPT_RETENTION_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return rc, fmt.Errorf("TLSRPT_RETENTION_DAYS: %q is not a number of days", v)
		}
		rc.keepDays = n
	}
	if v := env.Getenv("TLSRPT_RETENTION_WHOLE_MONTHS"); v != "" {
		b, err := envBool(env, "TLSRPT_RETENTION_WHOLE_MONTHS")
		if err != nil {
			return rc, err
		}
		rc.wholeMonths = b
	}
	return rc, nil
}

func (rc retentionConfig) validate() error {
	if rc.keepDays < db.MinRetentionDays || rc.keepDays > maxRetentionDays {
		return fmt.Errorf("--keep-days/TLSRPT_RETENTION_DAYS must be %d..%d (the verdict reads 366 days of policies), got %d",
			db.MinRetentionDays, maxRetentionDays, rc.keepDays)
	}
	return nil
}

// cutoff is the first day kept when today is now.
func (rc retentionConfig) cutoff(now time.Time) time.Time {
	return now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -rc.keepDays)
}

// runRetention removes the raw reports (with their policies and failure
// details) whose day is more than --keep-days (TLSRPT_RETENTION_DAYS)
// before today, UTC: the months wholly before the cutoff are dropped as
// partitions, the days of the cutoff's month before it deleted in batches
// (none with --whole-months). The dashboards and the verdict read the
// daily rollups, which stay, so charts and totals keep their history; only
// the drill-down to single reports and re-parsing lose the old rows.
// serve runs it daily when TLSRPT_RETENTION_DAYS is set (docs/retention.md).
func runRetention(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("retention", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default DATABASE_URL, else the embedded server)")
	keep := fs.Int("keep-days", 0, fmt.Sprintf("keep the reports of this many days (TLSRPT_RETENTION_DAYS; at least %d)", db.MinRetentionDays))
	whole := fs.Bool("whole-months", false, "drop whole months only, keeping up to a month more, so that nothing is deleted row by row (TLSRPT_RETENTION_WHOLE_MONTHS)")
	dryRun := fs.Bool("dry-run", false, "only count what would be deleted")
	setUsage(fs, env, "retention", "--keep-days N [--whole-months] [--dry-run] [--db URL]")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	rc, err := retentionFromEnv(env)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
		return 2
	}
	if *keep != 0 {
		rc.keepDays = *keep
	}
	rc.wholeMonths = rc.wholeMonths || *whole
	if err := rc.validate(); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
		return 2
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
		return 1
	}
	defer closeDB()
	cutoff := rc.cutoff(time.Now())
	if *dryRun {
		if rc.wholeMonths {
			cutoff = time.Date(cutoff.Year(), cutoff.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
		n, err := d.ReportsBefore(ctx, cutoff)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "%d reports before %s would be deleted\n", n, cutoff.Format(time.DateOnly))
		return 0
	}
	res, err := d.ApplyRetention(ctx, cutoff, rc.wholeMonths, 0)
	fmt.Fprintf(env.Stdout, "deleted %d reports before %s%s\n", res.Reports, res.Cutoff.Format(time.DateOnly), droppedNote(res))
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
		return 1
	}
	return 0
}

// droppedNote names the months dropped whole, for the command's line.
func droppedNote(res db.RetentionResult) string {
	if len(res.Dropped) == 0 {
		return ""
	}
	months := make([]string, len(res.Dropped))
	for i, m := range res.Dropped {
		months[i] = m.Format("2006-01")
	}
	return fmt.Sprintf(" (%d monthly partitions dropped: %s)", len(months), strings.Join(months, ", "))
}

// runStorageMaintenance is serve's daily storage work until ctx ends: the
// partitions of this month and the next are made ahead of the first report
// (no store then waits for the catalog), and the retention, when set, is
// applied. Errors are logged and retried the next day; several instances
// may run it at once (partitions are made under a lock, dropped months
// skipped, deletes idempotent).
func runStorageMaintenance(ctx context.Context, store *db.DB, rc retentionConfig, every time.Duration, log *slog.Logger) {
	for {
		maintainStorage(ctx, store, rc, time.Now(), log)
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

func maintainStorage(ctx context.Context, store *db.DB, rc retentionConfig, now time.Time, log *slog.Logger) {
	if err := store.EnsurePartitions(ctx, now, now.AddDate(0, 1, 0)); err != nil && ctx.Err() == nil {
		log.Error("Creating the coming month's partitions failed", "error", err)
	}
	if err := store.AnalyzePartitioned(ctx); err != nil && ctx.Err() == nil {
		log.Error("Refreshing the planner statistics failed", "error", err)
	}
	if rc.quarantineDays > 0 {
		n, err := store.QuarantineBefore(ctx, now.AddDate(0, 0, -rc.quarantineDays))
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("Quarantine retention failed", "error", err)
		case err == nil && n > 0:
			log.Info("Quarantine retention applied", "keep_days", rc.quarantineDays, "entries_removed", n)
		}
	}
	if rc.keepDays == 0 {
		return
	}
	res, err := store.ApplyRetention(ctx, rc.cutoff(now), rc.wholeMonths, 0)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("Retention failed", "error", err, "reports_removed", res.Reports)
		}
		return
	}
	log.Info("Retention applied", "cutoff", res.Cutoff.Format(time.DateOnly), "reports_removed", res.Reports, "months_dropped", len(res.Dropped))
}
