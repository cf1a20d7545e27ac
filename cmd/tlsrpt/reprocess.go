package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

func init() {
	register(command{name: "reprocess", summary: "run quarantined messages through the parser again (ID... or --all)", run: runReprocess})
}

// maxReprocess bounds one --all run; run it again for more.
const maxReprocess = 100_000

// runReprocess is "tlsrpt reprocess [ID...|--all] [--db URL]" (docs/cli.md):
// after a parser fix, quarantined inputs are parsed again; an entry whose
// reports are now stored is marked reprocessed, one that still fails keeps
// its row with the new reason.
func runReprocess(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("reprocess", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	all := fs.Bool("all", false, "every quarantine entry not yet reprocessed")
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	dkim := fs.Bool("dkim", true, "verify DKIM signatures with the system resolver")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt reprocess [--db URL] ID... | --all")
		printFlags(env, fs, "reprocess")
	}
	// Flags may come before or after the ids.
	pos, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code
	}
	var ids []int64
	for _, a := range pos {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			fmt.Fprintf(env.Stderr, "tlsrpt reprocess: %q is not a quarantine id\n", a)
			return 2
		}
		ids = append(ids, id)
	}
	if *all == (len(ids) > 0) {
		fs.Usage()
		return 2
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt reprocess: %v\n", err)
		return 1
	}
	defer closeDB()
	if *all {
		if ids, err = unresolvedQuarantine(ctx, d); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt reprocess: %v\n", err)
			return 1
		}
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	pipe := &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Now: time.Now, Log: log}
	if *dkim {
		pipe.VerifyDKIM = ingest.NewDKIMVerifier(nil)
	}
	resolved, still, failed := 0, 0, 0
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		e, err := d.QuarantineGet(ctx, id)
		if err != nil {
			fmt.Fprintf(env.Stderr, "%d: %v\n", id, err)
			failed++
			continue
		}
		if e.Truncated != "" {
			fmt.Fprintf(env.Stdout, "%d: not reprocessable: %s (of %d bytes)\n", id, e.Truncated, e.Size)
			still++
			continue
		}
		out, err := pipe.Reprocess(ctx, e.Raw, e.Source, e.SourceRef)
		if err != nil {
			fmt.Fprintf(env.Stderr, "%d: %v\n", id, err)
			failed++
			continue
		}
		if out.Reports == 0 {
			fmt.Fprintf(env.Stdout, "%d: still refused: %s\n", id, out.Reason)
			still++
			continue
		}
		if err := d.QuarantineResolved(ctx, id, time.Now()); err != nil {
			fmt.Fprintf(env.Stderr, "%d: %v\n", id, err)
			failed++
			continue
		}
		fmt.Fprintf(env.Stdout, "%d: %d reports (%d new, %d duplicates)\n", id, out.Reports, out.New, out.Duplicates)
		resolved++
	}
	fmt.Fprintf(env.Stdout, "reprocessed %d: %d resolved, %d still refused, %d failed\n", len(ids), resolved, still, failed)
	if failed > 0 || ctx.Err() != nil {
		return 1
	}
	return 0
}

// unresolvedQuarantine lists the ids of every entry not yet reprocessed,
// oldest first, before any is changed.
func unresolvedQuarantine(ctx context.Context, d *db.DB) ([]int64, error) {
	var ids []int64
	for off := 0; len(ids) < maxReprocess; {
		page, err := d.QuarantineList(ctx, db.QuarantineFilter{Limit: 1000, Offset: off})
		if err != nil {
			return nil, err
		}
		for _, e := range page {
			ids = append(ids, e.ID)
		}
		if len(page) < 1000 {
			break
		}
		off += len(page)
	}
	// The list is newest first.
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
	}
	return ids, nil
}
