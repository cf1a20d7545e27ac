package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
)

func init() {
	register(command{name: "reporter-rule", summary: "list, add or delete the rules that verify reports POSTed over HTTPS", run: runReporterRule})
}

// runReporterRule is "tlsrpt reporter-rule list|add|delete" (docs/reporters.md): a host rule lets a reporter post from hosts
// whose verified reverse names lie under another domain than its
// contact-info; a network rule makes every post from a network a report
// of that reporter (an internal relay). The rules live in the database.
func runReporterRule(ctx context.Context, env *Env, args []string) int {
	verb, fs, dbURL, usage, code, ok := verbCommand(env, "reporter-rule", []string{
		"usage: tlsrpt reporter-rule list [--db URL]",
		"       tlsrpt reporter-rule add --reporter DOMAIN --host-domain DOMAIN [--note TEXT] [--db URL]",
		"       tlsrpt reporter-rule add --reporter DOMAIN --network CIDR [--note TEXT] [--db URL]",
		"       tlsrpt reporter-rule delete ID [--db URL]",
		"exit code: 0 done, 1 failure, 2 usage error (or an invalid rule), 3 no such rule",
	}, args)
	if !ok {
		return code
	}
	reporter := fs.String("reporter", "", "the reporter's domain, as in its reports' contact-info")
	hostDomain := fs.String("host-domain", "", "host rule: it posts from hosts whose verified reverse name is under this domain")
	network := fs.String("network", "", "network rule: posts from this prefix (e.g. 192.0.2.0/24) are its reports")
	note := fs.String("note", "", "why the rule is there")
	pos, code, ok := parseInterspersed(fs, args[1:])
	if !ok {
		return code
	}
	var rule db.ReporterRule
	var id int64
	switch verb {
	case "list":
		if len(pos) != 0 || *reporter != "" || *hostDomain != "" || *network != "" || *note != "" {
			usage()
			return exitUsage
		}
	case "add":
		if len(pos) != 0 || *reporter == "" || (*hostDomain == "") == (*network == "") {
			fmt.Fprintln(env.Stderr, "tlsrpt reporter-rule add: give --reporter and one of --host-domain or --network")
			usage()
			return exitUsage
		}
		if len(*reporter) > 253 || len(*hostDomain) > 253 || len(*note) > 500 {
			fmt.Fprintln(env.Stderr, "tlsrpt reporter-rule add: a domain is longer than 253 bytes or --note longer than 500")
			return exitUsage
		}
		rule = db.ReporterRule{Kind: "host", Reporter: *reporter, HostDomain: *hostDomain, Note: *note, CreatedBy: "cli"}
		if *network != "" {
			p, err := netip.ParsePrefix(*network)
			if err != nil {
				fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule add: --network %q is not a prefix such as 192.0.2.0/24\n", *network)
				return exitUsage
			}
			rule.Kind, rule.Network = "network", p
		}
	case "delete":
		if len(pos) != 1 {
			usage()
			return exitUsage
		}
		var err error
		if id, err = strconv.ParseInt(pos[0], 10, 64); err != nil || id <= 0 {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule delete: %q is not a rule id (see tlsrpt reporter-rule list)\n", pos[0])
			return exitUsage
		}
	default:
		fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule: unknown action %q\n", verb)
		usage()
		return exitUsage
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule: %v\n", err)
		return exitFailed
	}
	defer closeDB()
	switch verb {
	case "list":
		for _, r := range reports.ShippedHostRules {
			fmt.Fprintf(env.Stdout, "shipped\thost\t%s\thosts under %s\n", r.Reporter, r.HostDomain)
		}
		rules, err := d.ReporterRules(ctx)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule list: %v\n", err)
			return exitFailed
		}
		for _, r := range rules {
			fmt.Fprintf(env.Stdout, "%d\t%s\t%s\t%s\t%q\tadded %s by %s\n", r.ID, r.Kind, r.Reporter, ruleFrom(r), r.Note,
				r.CreatedAt.UTC().Format(time.RFC3339), r.CreatedBy)
		}
	case "add":
		r, err := d.AddReporterRule(ctx, rule)
		if errors.Is(err, db.ErrBadRule) {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule add: %v\n", err)
			return exitUsage
		}
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule add: %v\n", err)
			return exitFailed
		}
		if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "reporter_rule.add", Detail: r.AuditDetail()}); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule add: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(env.Stdout, "added rule %d: %s posts from %s (reports stored from now on)\n", r.ID, r.Reporter, ruleFrom(r))
	case "delete":
		old, ok, err := d.DeleteReporterRule(ctx, id)
		if err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule delete: %v\n", err)
			return exitFailed
		}
		if !ok {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule delete: there is no rule %d\n", id)
			return exitRefused
		}
		if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "reporter_rule.delete", Detail: old.AuditDetail()}); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt reporter-rule delete: %v\n", err)
			return exitFailed
		}
		fmt.Fprintf(env.Stdout, "deleted rule %d\n", id)
	}
	return 0
}

// ruleFrom is where a rule lets its reporter post from, in words.
func ruleFrom(r db.ReporterRule) string {
	if r.Kind == "network" {
		return "network " + r.Network.String()
	}
	return "hosts under " + r.HostDomain
}
