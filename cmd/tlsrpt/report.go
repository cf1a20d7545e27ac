package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
)

func init() {
	register(command{name: "report", summary: "exclude a stored report from every count, include it again, or delete it", run: runReport})
}

// maxReportReason bounds --reason, as the dashboard does: it is stored
// with the report and in the audit log.
const maxReportReason = 500

// runReport is "tlsrpt report exclude|include|delete ID" (docs/reporters.md: an admin can take a stored report back). Exit codes: 0
// done, 1 failure, 2 usage, 3 refused (no such report, or already in that
// state).
func runReport(ctx context.Context, env *Env, args []string) int {
	verb, fs, dbURL, usage, code, ok := verbCommand(env, "report", []string{
		"usage: tlsrpt report exclude ID --reason TEXT [--db URL]",
		"       tlsrpt report include ID [--db URL]",
		"       tlsrpt report delete ID --yes [--reason TEXT] [--db URL]",
		"ID is the number in the report page's address (/reports/ID).",
		"exit code: 0 done, 1 failure, 2 usage error, 3 refused (no such report, or already in that state)",
	}, args)
	if !ok {
		return code
	}
	reason := fs.String("reason", "", "why (exclude: required; delete: optional); kept in the audit log")
	yes := fs.Bool("yes", false, "delete: yes, delete the report for good")
	pos, code, ok := parseInterspersed(fs, args[1:])
	if !ok {
		return code
	}
	switch verb {
	case "exclude", "include", "delete":
	default:
		fmt.Fprintf(env.Stderr, "tlsrpt report: unknown action %q\n", verb)
		usage()
		return exitUsage
	}
	if len(pos) != 1 {
		usage()
		return exitUsage
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		fmt.Fprintf(env.Stderr, "tlsrpt report %s: %q is not a report id (the number in /reports/ID)\n", verb, pos[0])
		return exitUsage
	}
	*reason = strings.TrimSpace(*reason)
	switch {
	case len(*reason) > maxReportReason:
		fmt.Fprintf(env.Stderr, "tlsrpt report %s: --reason is longer than %d bytes\n", verb, maxReportReason)
		return exitUsage
	case verb == "exclude" && *reason == "":
		fmt.Fprintln(env.Stderr, "tlsrpt report exclude: --reason is required: it is shown on the report and kept in the audit log")
		return exitUsage
	case verb == "include" && *reason != "":
		fmt.Fprintln(env.Stderr, "tlsrpt report include: takes no --reason")
		return exitUsage
	case verb == "delete" && !*yes:
		fmt.Fprintf(env.Stderr, "tlsrpt report delete: add --yes to delete report %d for good (exclude keeps it stored)\n", id)
		return exitUsage
	case verb != "delete" && *yes:
		fmt.Fprintf(env.Stderr, "tlsrpt report %s: --yes is for delete\n", verb)
		return exitUsage
	}
	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt report: %v\n", err)
		return exitFailed
	}
	defer closeDB()
	r, err := d.Report(ctx, id)
	if err == nil {
		switch verb {
		case "exclude":
			err = d.ExcludeReport(ctx, id, "cli", *reason, time.Now())
		case "include":
			*reason = r.ExcludedReason
			err = d.IncludeReport(ctx, id)
		case "delete":
			err = d.DeleteReport(ctx, id)
		}
	}
	switch {
	case errors.Is(err, db.ErrNotFound):
		fmt.Fprintf(env.Stderr, "tlsrpt report %s: there is no report %d\n", verb, id)
		return exitRefused
	case errors.Is(err, db.ErrExcluded) && verb == "exclude":
		fmt.Fprintf(env.Stderr, "tlsrpt report exclude: report %d is excluded already\n", id)
		return exitRefused
	case errors.Is(err, db.ErrExcluded):
		fmt.Fprintf(env.Stderr, "tlsrpt report include: report %d is not excluded: it counts already\n", id)
		return exitRefused
	case err != nil:
		fmt.Fprintf(env.Stderr, "tlsrpt report %s: %v\n", verb, err)
		return exitFailed
	}
	detail := map[string]any{"id": id, "report_id": r.Report.ReportID, "organization": r.Report.OrganizationName, "reporter": r.Reporter}
	if *reason != "" {
		detail["reason"] = *reason
	}
	if _, err := d.AddAudit(ctx, db.AuditEntry{Actor: "cli", Action: "report." + verb, Detail: detail}); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt report %s: %v\n", verb, err)
		return exitFailed
	}
	what := map[string]string{"exclude": "excluded (its sessions no longer count)", "include": "included again (its sessions count)",
		"delete": "deleted"}[verb]
	// The report's own words are quoted: they come from its sender.
	fmt.Fprintf(env.Stdout, "report %d (%q from %q) %s\n", id, r.Report.ReportID, r.Report.OrganizationName, what)
	return 0
}
