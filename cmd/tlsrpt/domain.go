package main

import (
	"context"
	"fmt"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "domain", summary: "add, list or remove the domains whose reports count", run: runDomain})
}

// runDomain is "tlsrpt domain add|list|remove [D] [--db URL]" (docs/cli.md):
// the allow-list of the operator's domains. Reports for other domains are
// stored but kept out of the overview, metrics and alerts.
func runDomain(ctx context.Context, env *Env, args []string) int {
	verb, fs, dbURL, usage, code, ok := verbCommand(env, "domain", []string{
		"usage: tlsrpt domain add DOMAIN [--db URL]",
		"       tlsrpt domain remove DOMAIN [--db URL]",
		"       tlsrpt domain list [--db URL]",
	}, args)
	if !ok {
		return code
	}
	// Flags may come before or after the domain.
	names, code, ok := parseInterspersed(fs, args[1:])
	if !ok {
		return code
	}
	wantNames := 1
	switch verb {
	case "add", "remove":
	case "list":
		wantNames = 0
	default:
		fmt.Fprintf(env.Stderr, "tlsrpt domain: unknown action %q\n", verb)
		usage()
		return 2
	}
	if len(names) != wantNames {
		usage()
		return 2
	}
	// Check the name before starting a database for it.
	if wantNames == 1 {
		if _, err := db.NormalizeDomain(names[0]); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt domain %s: %v\n", verb, err)
			return 2
		}
	}
	d, closeFn, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt domain: %v\n", err)
		return 1
	}
	defer closeFn()
	switch verb {
	case "add":
		n, added, err := d.AddDomain(ctx, names[0])
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt domain add: %v\n", err)
			return 1
		}
		if !added {
			fmt.Fprintf(env.Stdout, "%s is already in the list\n", n)
			return 0
		}
		if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "domain.add", Domain: n}); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt domain add: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "added %s\n", n)
	case "remove":
		n, removed, err := d.RemoveDomain(ctx, names[0])
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt domain remove: %v\n", err)
			return 1
		}
		if !removed {
			fmt.Fprintf(env.Stderr, "tlsrpt domain remove: %s is not in the list\n", n)
			return 1
		}
		if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "domain.remove", Domain: n}); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt domain remove: %v\n", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "removed %s (its reports are kept)\n", n)
	case "list":
		ds, err := d.Domains(ctx)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt domain list: %v\n", err)
			return 1
		}
		for _, dm := range ds {
			fmt.Fprintf(env.Stdout, "%s\tadded %s\n", dm.Name, dm.AddedAt.UTC().Format(time.RFC3339))
		}
	}
	return 0
}
