package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

func init() {
	register(command{name: "import", summary: "load reports from files, directories, mbox files and Maildirs", run: runImport})
}

// runImport is "tlsrpt import [--db URL] PATH..." (docs/cli.md): every
// report found is stored once; at the end the new, duplicate and refused
// counts, each refused input with its reason, and exit 1 if anything was
// refused. Running it again changes nothing.
func runImport(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	batch := fs.Int("batch", ingest.DefaultImportBatch, "reports stored per transaction")
	progress := fs.Bool("progress", true, "show a progress bar when standard error is a terminal")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt import [--db URL] PATH...")
		fmt.Fprintln(env.Stderr, "PATH is a report (.json, .json.gz), a mail message, an mbox file, a Maildir or a directory (walked).")
		printFlags(env, fs, "import")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	files, err := ingest.ScanPaths(fs.Args())
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt import: %v\n", err)
		return 1
	}
	d, closeFn, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt import: %v\n", err)
		return 1
	}
	defer closeFn()
	defer importGC(env)()

	var total int64
	for _, f := range files {
		total += f.Size
	}
	im := &ingest.Importer{
		Pipeline: &ingest.Pipeline{
			Store:  d,
			Limits: reports.DefaultLimits(),
			Log:    slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		},
		// The files stay: commits need not wait for the disk, Durable
		// below waits once for all of them.
		StoreBatch: d.ImportBatch,
		BatchSize:  *batch,
	}
	var bar *progressbar.ProgressBar
	if f, ok := env.Stderr.(*os.File); ok && *progress && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(env.Stderr),
			progressbar.OptionSetDescription("importing"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		im.Progress = func(n int64) { _ = bar.Add64(n) }
	}
	start := time.Now()
	st, err := im.Import(ctx, files)
	if bar != nil {
		_ = bar.Finish()
	}
	// Also after a failed import: what was stored is kept.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	if derr := d.Durable(dctx); derr != nil && err == nil {
		err = derr
	}
	cancel()
	for _, r := range st.RefusedInputs {
		fmt.Fprintf(env.Stderr, "%s: refused: %s\n", r.Ref, strings.Join(strings.Fields(r.Outcome.Reason), " "))
	}
	for _, r := range st.SkippedInputs {
		fmt.Fprintf(env.Stderr, "%s: skipped: %s\n", r.Ref, r.Outcome.Reason)
	}
	elapsed := time.Since(start)
	skipped := ""
	if st.Skipped > 0 {
		skipped = fmt.Sprintf(", %d skipped (not reports)", st.Skipped)
	}
	fmt.Fprintf(env.Stdout, "%d inputs, %d reports: %d new, %d duplicate, %d refused%s (%s, %.0f reports/s)\n",
		st.Inputs, st.Reports, st.New, st.Duplicates, st.Refused, skipped, elapsed.Round(time.Millisecond), float64(st.Reports)/max(elapsed.Seconds(), 1e-3))
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt import: stopped: %v (run it again to complete: nothing is stored twice)\n", err)
		return 1
	}
	if st.Refused > 0 || len(st.RefusedInputs) > 0 {
		return 1
	}
	return 0
}

// importGC makes the garbage collector of an import run less often: what
// an import allocates lives for a file or a batch (the bytes read, the
// parsed report, the rows), and the default collected it often enough to
// take a fifth of the importer's CPU (docs/bench-import.md). The heap may
// grow to five times what is live, within a soft limit of a quarter of the
// machine's memory, at most 2 GiB; GOGC or GOMEMLIMIT, when set, win. The
// returned function restores the previous settings.
func importGC(env *Env) (restore func()) {
	gc, limit := -2, int64(-1)
	if env.Getenv("GOGC") == "" {
		gc = debug.SetGCPercent(400)
	}
	if env.Getenv("GOMEMLIMIT") == "" {
		l := int64(2 << 30)
		if m := pgembed.MemoryLimit(); m > 0 {
			l = min(l, int64(m/4))
		}
		limit = debug.SetMemoryLimit(l)
	}
	return func() {
		if gc != -2 {
			debug.SetGCPercent(gc)
		}
		if limit >= 0 {
			debug.SetMemoryLimit(limit)
		}
	}
}
