package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "audit", summary: "show the audit log: promotes, overrides, rollbacks, settings, users, tokens, reports taken back", run: runAudit})
}

// runAudit is "tlsrpt audit [--domain D] [--limit N] [--json] [--db URL]"
// (docs/cli.md): the newest entries first, one line each, or with --json
// one object {entries: [{id, at, actor, action, domain, detail}]}, the
// shape of GET /api/v1/audit.
func runAudit(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	domain := fs.String("domain", "", "only this domain's entries")
	limit := fs.Int("limit", 50, "how many entries, 1 to 500")
	asJSON := fs.Bool("json", false, "print one JSON object")
	setUsage(fs, env, "audit", "[--domain DOMAIN] [--limit N] [--json] [--db URL]")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 || *limit < 1 || *limit > 500 {
		fs.Usage()
		return 2
	}
	if *domain != "" {
		n, err := db.NormalizeDomain(*domain)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt audit: %v\n", err)
			return 2
		}
		*domain = n
	}
	d, closeFn, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt audit: %v\n", err)
		return 1
	}
	defer closeFn()
	es, err := d.AuditLog(ctx, *domain, *limit)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt audit: %v\n", err)
		return 1
	}
	if *asJSON {
		type entry struct {
			ID     int64           `json:"id"`
			At     time.Time       `json:"at"`
			Actor  string          `json:"actor"`
			Action string          `json:"action"`
			Domain string          `json:"domain,omitempty"`
			Detail json.RawMessage `json:"detail"`
		}
		out := struct {
			Entries []entry `json:"entries"`
		}{Entries: []entry{}}
		for _, e := range es {
			detail, _ := e.Detail.(json.RawMessage)
			out.Entries = append(out.Entries, entry{e.ID, e.At.UTC(), e.Actor, e.Action, e.Domain, detail})
		}
		b, _ := json.Marshal(out)
		fmt.Fprintln(env.Stdout, string(b))
		return 0
	}
	for _, e := range es {
		detail, _ := e.Detail.(json.RawMessage)
		dom := e.Domain
		if dom == "" {
			dom = "-"
		}
		fmt.Fprintf(env.Stdout, "%s  %-12s %-24s %-24s %s\n", e.At.UTC().Format(time.RFC3339), e.Actor, e.Action, dom,
			strings.Join(strings.Fields(string(detail)), " "))
	}
	if len(es) == 0 {
		fmt.Fprintln(env.Stderr, "no audit entries")
	}
	return 0
}
