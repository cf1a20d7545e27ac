package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

func init() {
	register(command{name: "ingest", summary: "read reports from the IMAP mailbox (--once: one pass)", run: runIngest})
}

// runIngest is "tlsrpt ingest [--once] [--db URL] [--imap URL]" (docs/cli.md):
// with --once one full pass over the mailbox, printing what it did;
// without, the poller in the foreground until interrupted.
func runIngest(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	once := fs.Bool("once", false, "make one full pass over the mailbox and exit")
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	imapURL := fs.String("imap", "", "mailbox URL, imaps://USER@HOST/INBOX or imap://USER@HOST/INBOX (STARTTLS) (default: $TLSRPT_IMAP_URL)")
	maxBytes := fs.Int64("max-message-bytes", reports.DefaultMaxMessageBytes, "larger messages are quarantined unread")
	dkim := fs.Bool("dkim", true, "verify DKIM signatures with the system resolver (false records every mail as DKIM none: not counted)")
	verbose := fs.Bool("v", false, "log every report stored")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt ingest [--once] [--db URL] [--imap URL]")
		fmt.Fprintln(env.Stderr, "The IMAP settings are TLSRPT_IMAP_* variables; see docs/imap.md.")
		printFlags(env, fs, "ingest")
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	cfg, err := ingest.IMAPConfigFromEnv(env.Getenv, *imapURL)
	if err == nil {
		err = cfg.Validate()
	}
	if errors.Is(err, ingest.ErrNoIMAP) {
		fmt.Fprintln(env.Stderr, "tlsrpt ingest: no IMAP mailbox configured: set --imap or TLSRPT_IMAP_URL (see docs/imap.md)")
		return 2
	}
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt ingest: %v\n", err)
		return 2
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))

	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt ingest: %v\n", err)
		return 1
	}
	defer closeDB()
	lim := reports.DefaultLimits()
	lim.MaxMessageBytes = *maxBytes
	pipe := &ingest.Pipeline{Store: d, Limits: lim, Now: time.Now, Log: log}
	if *dkim {
		pipe.VerifyDKIM = ingest.NewDKIMVerifier(nil)
	}
	p, err := ingest.NewPoller(cfg, pipe, d, log)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt ingest: %v\n", err)
		return 2
	}
	// One transaction per FETCH batch instead of one per report.
	p.SetStoreBatch(d.StoreBatch)
	if !*once {
		log.Info("Polling the mailbox; stop with Ctrl-C", "mailbox", cfg.MailboxKey())
		if err := p.Run(ctx); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt ingest: %v\n", err)
			return 1
		}
		printStats(env, p.Status().Totals)
		return 0
	}
	st, err := p.Once(ctx)
	printStats(env, st)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt ingest: %v\n", err)
		return 1
	}
	if st.Deferred > 0 {
		fmt.Fprintf(env.Stderr, "tlsrpt ingest: %d messages left in the mailbox for a later pass (see the log)\n", st.Deferred)
		return 1
	}
	return 0
}

func printStats(env *Env, st ingest.Stats) {
	fmt.Fprintf(env.Stdout, "messages read:      %d\n", st.Messages)
	fmt.Fprintf(env.Stdout, "reports stored:     %d\n", st.Stored)
	fmt.Fprintf(env.Stdout, "duplicates:         %d\n", st.Duplicates)
	fmt.Fprintf(env.Stdout, "refused (quarantined messages): %d\n", st.Quarantined)
	if st.Refused > 0 {
		fmt.Fprintf(env.Stdout, "broken report parts: %d\n", st.Refused)
	}
	if st.Deferred > 0 {
		fmt.Fprintf(env.Stdout, "left for later:     %d\n", st.Deferred)
	}
}

var _ ingest.StateStore = (*db.DB)(nil)
