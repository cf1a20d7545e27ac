package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "migrate", summary: "apply pending database migrations", run: runMigrate})
}

// runMigrate is "tlsrpt migrate [--db URL]": it applies every pending
// migration and says how many it applied.
func runMigrate(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt migrate [--db URL]")
		printFlags(env, fs, "migrate")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return 2
	}
	d, closeFn, _, err := openDatabaseUnchecked(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt migrate: %v\n", err)
		return 1
	}
	defer closeFn()
	before, err := appliedCount(ctx, d)
	if err == nil {
		err = d.Migrate(ctx)
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt migrate: %v\n", err)
		return 1
	}
	after, err := appliedCount(ctx, d)
	if err == nil {
		// The old publishing variables go into the stored setting once.
		err = importLegacyPublishing(ctx, d, env, "cli", slog.New(slog.NewTextHandler(env.Stderr, nil)))
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt migrate: %v\n", err)
		return 1
	}
	fmt.Fprintf(env.Stdout, "applied %d migrations; schema is up to date (%d migrations)\n", after-before, after)
	return 0
}

// appliedCount is how many migrations the database has recorded.
func appliedCount(ctx context.Context, d *db.DB) (int, error) {
	vs, err := d.AppliedMigrations(ctx)
	return len(vs), err
}
