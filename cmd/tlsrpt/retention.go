package main

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "retention", summary: "delete raw reports older than the retention (the daily rollups stay)", run: runRetention})
}

// maxRetentionDays bounds --keep-days (a century).
const maxRetentionDays = 36_600

// runRetention deletes the raw reports (with their policies and failure
// details) whose day is more than --keep-days (TLSRPT_RETENTION_DAYS)
// before today, UTC. The dashboards and the verdict read the daily
// rollups, which stay, so charts and totals keep their history; only the
// drill-down to single reports and re-parsing lose the old rows. Run it
// daily (a systemd timer or cron) where storage matters (SCALING.md).
func runRetention(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("retention", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default DATABASE_URL, else the embedded server)")
	keep := fs.Int("keep-days", 0, fmt.Sprintf("keep the reports of this many days (TLSRPT_RETENTION_DAYS; at least %d)", db.MinRetentionDays))
	dryRun := fs.Bool("dry-run", false, "only count what would be deleted")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *keep == 0 {
		if v := env.Getenv("TLSRPT_RETENTION_DAYS"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				fmt.Fprintf(env.Stderr, "tlsrpt retention: TLSRPT_RETENTION_DAYS: %q is not a number of days\n", v)
				return 2
			}
			*keep = n
		}
	}
	if *keep < db.MinRetentionDays || *keep > maxRetentionDays {
		fmt.Fprintf(env.Stderr, "tlsrpt retention: --keep-days/TLSRPT_RETENTION_DAYS must be %d..%d (the verdict reads 366 days of policies), got %d\n",
			db.MinRetentionDays, maxRetentionDays, *keep)
		return 2
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
		return 1
	}
	defer closeDB()
	cutoff := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -*keep)
	if *dryRun {
		n, err := d.ReportsBefore(ctx, cutoff)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "%d reports before %s would be deleted\n", n, cutoff.Format(time.DateOnly))
		return 0
	}
	n, err := d.DeleteReportsBefore(ctx, cutoff, 0)
	fmt.Fprintf(env.Stdout, "deleted %d reports before %s\n", n, cutoff.Format(time.DateOnly))
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt retention: %v\n", err)
		return 1
	}
	return 0
}
