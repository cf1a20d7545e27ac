package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
)

func init() {
	register(command{name: "rollout", summary: "readiness verdict: can the domain's MTA-STS policy move to enforce", run: runRollout})
}

// Exit codes of "tlsrpt rollout" (docs/verdict.md).
const (
	rolloutReady   = 0 // ready; or in enforce without regression
	rolloutBlocked = 1 // blocked; or in enforce with a regression or no recent reports
	rolloutUsage   = 2 // bad flags or arguments
	rolloutFailed  = 3 // the verdict could not be computed (database, files)
)

// runRollout is "tlsrpt rollout DOMAIN [--json] [--at TIME] [--offline]
// [--db URL] [--resolver HOST:PORT] [--ca-file FILE] [--allow-private]
// [threshold flags]" (a contract: docs/cli.md, docs/verdict.md): the
// verdict from the stored reports as seen at --at, with the live check
// unless --offline.
func runRollout(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print the verdict as one JSON object {domain, mode, ready, blockers, warnings, evidence, proposal}")
	atFlag := fs.String("at", "", "compute the verdict as seen at this RFC 3339 time (default: now)")
	offline := fs.Bool("offline", false, "leave out the live DNS/HTTPS check; take the policy from the newest policy-string in the reports")
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	// The same settings as serve's, from the same variables: one source
	// for what DNS and which roots tlsrpt trusts.
	envPrivate, envErr := envBool(env, "TLSRPT_ALLOW_PRIVATE")
	resolver := fs.String("resolver", env.Getenv("TLSRPT_RESOLVER"), "($TLSRPT_RESOLVER) DNS server HOST:PORT for the live check (default: the first nameserver of /etc/resolv.conf)")
	caFile := fs.String("ca-file", env.Getenv("TLSRPT_CA_FILE"), "($TLSRPT_CA_FILE) PEM file of extra trusted root certificates for the policy host (added to the system roots)")
	allowPrivate := fs.Bool("allow-private", envPrivate, "($TLSRPT_ALLOW_PRIVATE=1) allow the policy fetch to private, loopback and link-local addresses")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each DNS query and of the policy fetch")
	smtpPort := fs.Int("smtp-port", 25, "port of the live check's STARTTLS probe of each MX address (senders use 25; another port is for tests)")
	save := fs.Bool("save-thresholds", false, "store the thresholds given by flags as the domain's settings")
	reset := fs.Bool("reset-thresholds", false, "remove the domain's stored thresholds (back to the defaults) before evaluating")
	th := rollout.DefaultThresholds()
	fs.IntVar(&th.MinDays, "min-days", th.MinDays, "days the domain must have been seen in testing (also the evaluation window)")
	fs.IntVar(&th.MinReportDays, "min-report-days", th.MinReportDays, "days of the evaluation window with trusted reports")
	fs.IntVar(&th.MinReporters, "min-reporters", th.MinReporters, "distinct reporting organisations in the evaluation window")
	fs.Int64Var(&th.MinSessions, "min-sessions", th.MinSessions, "sessions in the evaluation window")
	fs.Float64Var(&th.MaxFailureRate, "max-failure-rate", th.MaxFailureRate, "failure rate of the recent window must stay below this fraction (0.001 = 0.1%)")
	fs.IntVar(&th.RecentDays, "recent-days", th.RecentDays, "days of the recent window (failure rate, TLS and policy host failures)")
	fs.IntVar(&th.RisingDays, "rising-days", th.RisingDays, "last days compared by the trend and the post-enforce watch")
	fs.IntVar(&th.RisingBaseDays, "rising-base-days", th.RisingBaseDays, "days before them the trend compares with")
	fs.Float64Var(&th.RisingFactor, "rising-factor", th.RisingFactor, "how many times the earlier failure rate counts as rising")
	fs.Int64Var(&th.MinRisingFailures, "min-rising-failures", th.MinRisingFailures, "failures the last days need before a rise counts")
	fs.IntVar(&th.RegressionBaseDays, "regression-base-days", th.RegressionBaseDays, "days before them the post-enforce watch compares with")
	fs.Int64Var(&th.EnforceMaxAge, "enforce-max-age", th.EnforceMaxAge, "max_age of the proposed enforce policy, in seconds")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: tlsrpt rollout DOMAIN [--json] [--at RFC3339-TIME] [--offline] [--db URL] [--resolver HOST:PORT] [--ca-file FILE] [--allow-private] [threshold flags]")
		fmt.Fprintln(env.Stderr, "exit code: 0 ready (enforce: no regression), 1 blocked (enforce: regression, or no recent reports), 2 usage error, 3 failure")
		printFlags(env, fs, "rollout")
	}
	// Flags may come before or after the domain.
	names, code, ok := parseInterspersed(fs, args)
	if !ok {
		return code // rolloutUsage is 2 as well
	}
	if envErr != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", envErr)
		return 2
	}
	if len(names) != 1 {
		fs.Usage()
		return rolloutUsage
	}
	if *smtpPort < 1 || *smtpPort > 65535 {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: --smtp-port %d is not a port\n", *smtpPort)
		return rolloutUsage
	}
	domain, err := rollout.NormalizeDomain(names[0])
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
		return rolloutUsage
	}
	at := time.Now().UTC()
	if *atFlag != "" {
		if at, err = time.Parse(time.RFC3339, *atFlag); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt rollout: --at %q is not an RFC 3339 time (like 2026-11-30T12:00:00Z)\n", *atFlag)
			return rolloutUsage
		}
	}
	if err := th.Validate(); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
		return rolloutUsage
	}
	if *save && *reset {
		fmt.Fprintln(env.Stderr, "tlsrpt rollout: --save-thresholds and --reset-thresholds exclude each other")
		return rolloutUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var roots *x509.CertPool
	if *caFile != "" {
		if roots, err = loadCheckRoots(*caFile); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
			return rolloutUsage
		}
	}

	d, closeDB, err := openDatabase(ctx, env, *dbURL)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
		return rolloutFailed
	}
	defer closeDB()
	if *reset {
		if err := d.ResetDomainThresholds(ctx, domain); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
			return rolloutFailed
		}
	}
	stored, err := d.DomainThresholds(ctx, domain)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
		return rolloutFailed
	}
	th = overrideThresholds(stored, th, set)
	if err := th.Validate(); err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
		return rolloutUsage
	}
	if *save {
		if err := d.SetDomainThresholds(ctx, domain, th); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
			return rolloutFailed
		}
	}
	facts, err := d.Facts(ctx, domain, at, th.SpanDays())
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
		return rolloutFailed
	}
	// The mode comes from tlsrpt's own versions first (the newest made by
	// --at), as the promote gate and the pages read it; the live check
	// below still wins over it.
	versions, err := d.PolicyVersions(ctx, domain, 0)
	if err != nil {
		fmt.Fprintf(env.Stderr, "tlsrpt rollout: %v\n", err)
		return rolloutFailed
	}
	for _, pv := range versions {
		if !pv.CreatedAt.After(at) {
			facts.ApplyVersion(pv.Policy, pv.ID)
			break
		}
	}
	var notes []string
	if !*offline {
		in := &rollout.Inspector{Resolver: *resolver, RootCAs: roots, AllowPrivate: *allowPrivate, Timeout: *timeout, SMTPPort: *smtpPort}
		if s, ok := any(d).(rollout.SeenStore); ok {
			in.Seen = s
		}
		notes = facts.ApplyCheck(in.Check(ctx, domain))
	}
	v := rollout.Evaluate(facts, th)
	if *asJSON {
		enc := json.NewEncoder(env.Stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			fmt.Fprintf(env.Stderr, "tlsrpt rollout: writing the verdict: %v\n", err)
			return rolloutFailed
		}
	} else {
		printVerdict(env.Stdout, v, notes)
	}
	if v.Ready || v.Mode == rollout.ModeEnforce && !hasCode(v.Warnings, rollout.WarningRegression) && !hasCode(v.Warnings, rollout.WarningNoRecentReports) {
		return rolloutReady
	}
	return rolloutBlocked
}

// overrideThresholds returns the stored thresholds with those given by
// flags (set names the flags given) put over them.
func overrideThresholds(stored, flags rollout.Thresholds, set map[string]bool) rollout.Thresholds {
	t := stored
	pick := func(name string, dst *int, v int) {
		if set[name] {
			*dst = v
		}
	}
	pick("min-days", &t.MinDays, flags.MinDays)
	pick("min-report-days", &t.MinReportDays, flags.MinReportDays)
	pick("min-reporters", &t.MinReporters, flags.MinReporters)
	pick("recent-days", &t.RecentDays, flags.RecentDays)
	pick("rising-days", &t.RisingDays, flags.RisingDays)
	pick("rising-base-days", &t.RisingBaseDays, flags.RisingBaseDays)
	pick("regression-base-days", &t.RegressionBaseDays, flags.RegressionBaseDays)
	if set["min-sessions"] {
		t.MinSessions = flags.MinSessions
	}
	if set["max-failure-rate"] {
		t.MaxFailureRate = flags.MaxFailureRate
	}
	if set["rising-factor"] {
		t.RisingFactor = flags.RisingFactor
	}
	if set["min-rising-failures"] {
		t.MinRisingFailures = flags.MinRisingFailures
	}
	if set["enforce-max-age"] {
		t.EnforceMaxAge = flags.EnforceMaxAge
	}
	return t
}

func hasCode(fs []rollout.Finding, code string) bool {
	for _, f := range fs {
		if f.Code == code {
			return true
		}
	}
	return false
}
