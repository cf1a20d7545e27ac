package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
)

func init() {
	register(command{name: "rollout", summary: "readiness verdict: can the domain's MTA-STS policy move to enforce", run: runRollout})
}

// Exit codes of "tlsrpt rollout" (docs/verdict.md).
const (
	rolloutReady   = 0 // ready; or in enforce without regression
	rolloutBlocked = 1 // blocked; or in enforce with a regression
	rolloutUsage   = 2 // bad flags or arguments
	rolloutFailed  = 3 // the verdict could not be computed (database, files)
)

// runRollout is "tlsrpt rollout DOMAIN [--json] [--at TIME] [--offline]
// [--db URL] [--resolver HOST:PORT] [--ca-file FILE] [--allow-private]
// [threshold flags]" (issue 4 §3, a contract): the verdict from the stored
// reports as seen at --at, with the live check unless --offline.
func runRollout(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("rollout", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	asJSON := fs.Bool("json", false, "print the verdict as one JSON object {domain, mode, ready, blockers, warnings, evidence, proposal}")
	atFlag := fs.String("at", "", "compute the verdict as seen at this RFC 3339 time (default: now)")
	offline := fs.Bool("offline", false, "leave out the live DNS/HTTPS check; take the policy from the newest policy-string in the reports")
	dbURL := fs.String("db", "", "PostgreSQL URL (default: $DATABASE_URL, else the embedded database under $TLSRPT_DATA_DIR)")
	resolver := fs.String("resolver", "", "DNS server HOST:PORT for the live check (default: the first nameserver of /etc/resolv.conf)")
	caFile := fs.String("ca-file", "", "PEM file of extra trusted root certificates for the policy host (added to the system roots)")
	allowPrivate := fs.Bool("allow-private", false, "allow the policy fetch to private, loopback and link-local addresses")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each DNS query and of the policy fetch")
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
		fmt.Fprintln(env.Stderr, "exit code: 0 ready (enforce: no regression), 1 blocked (enforce: regression), 2 usage error, 3 failure")
		fs.PrintDefaults()
	}
	// Flags may come before or after the domain.
	var names []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return rolloutUsage
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(names) != 1 {
		fs.Usage()
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
	var notes []string
	if !*offline {
		in := &rollout.Inspector{Resolver: *resolver, RootCAs: roots, AllowPrivate: *allowPrivate, Timeout: *timeout}
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
	if v.Ready || v.Mode == rollout.ModeEnforce && !hasCode(v.Warnings, rollout.WarningRegression) {
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

// printVerdict writes the human form: the first line is "ready",
// "blocked: CODE: reason", or for a domain in enforce "enforce: no
// regression" / "enforce: regression: reason"; then the findings with
// their evidence, the evidence itself and the proposal.
func printVerdict(w io.Writer, v rollout.Verdict, notes []string) {
	ev := v.Evidence
	switch {
	case v.Mode == rollout.ModeEnforce && hasCode(v.Warnings, rollout.WarningRegression):
		for _, f := range v.Warnings {
			if f.Code == rollout.WarningRegression {
				fmt.Fprintf(w, "enforce: regression: %s\n", f.Message)
			}
		}
	case v.Mode == rollout.ModeEnforce:
		fmt.Fprintln(w, "enforce: no regression")
	case v.Ready:
		fmt.Fprintln(w, "ready")
	default:
		fmt.Fprintf(w, "blocked: %s: %s\n", v.Blockers[0].Code, v.Blockers[0].Message)
	}
	mode := string(v.Mode)
	if mode == "" {
		mode = "unknown"
	}
	fmt.Fprintf(w, "\ndomain %s, mode %s (policy from %s), at %s\n", v.Domain, mode, ev.Policy.Source, ev.At.Format(time.RFC3339))
	for _, n := range notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	printFindings(w, "blockers", v.Blockers)
	printFindings(w, "warnings", v.Warnings)

	win := ev.Windows
	fmt.Fprintf(w, "\nevidence (trusted sts reports; a report counts for the UTC day its range starts in)\n")
	since := "never"
	if ev.TestingSince != nil {
		since = ev.TestingSince.Format(time.DateOnly) + " (from " + ev.SinceFrom + ")"
	}
	fmt.Fprintf(w, "  thresholds: %s\n", thresholdsText(ev.Thresholds))
	fmt.Fprintf(w, "  in testing since %s: %d days; reports on %d days of %s\n", since, ev.ObservedDays, ev.ReportDays, win.Evaluation)
	fmt.Fprintf(w, "  %s: %d sessions, %d failed, %d reports from %d reporters\n", win.Evaluation, ev.Sessions, ev.Failures, ev.Reports, ev.Reporters)
	fmt.Fprintf(w, "  recent %s: %d sessions, %d failed (%.3g%%), %d sender-side left out\n",
		win.Recent, ev.Recent.Sessions, ev.Recent.Failures, ev.Recent.Rate*100, ev.SenderSideFailures)
	fmt.Fprintf(w, "  per day (%s):\n", win.Span)
	for _, d := range ev.PerDay {
		fmt.Fprintf(w, "    %s  %4d reports  %3d reporters  %9d sessions  %7d failed  %.3g%%\n",
			d.Day.Format(time.DateOnly), d.Reports, d.Reporters, d.Sessions, d.Failures, d.Rate*100)
	}
	if len(ev.PerReporter) > 0 {
		fmt.Fprintf(w, "  per reporter (%s):\n", win.Evaluation)
		for _, r := range ev.PerReporter {
			fmt.Fprintf(w, "    %-30s %4d reports on %2d days  %9d sessions  %7d failed\n", r.Organization, r.Reports, r.Days, r.Sessions, r.Failures)
		}
	}
	if len(ev.PerResultType) > 0 {
		fmt.Fprintf(w, "  failures per result type (%s; recent %s):\n", win.Evaluation, win.Recent)
		for _, r := range ev.PerResultType {
			fmt.Fprintf(w, "    %-28s %7d  recent %7d\n", r.ResultType, r.Failures, r.RecentFailures)
		}
	}
	if len(ev.PerMX) > 0 {
		fmt.Fprintf(w, "  failures per receiving mx (%s):\n", win.Evaluation)
		for _, m := range ev.PerMX {
			in := "in policy"
			if !m.InPolicy {
				in = "NOT in policy"
			}
			fmt.Fprintf(w, "    %-40s %7d  recent %7d  %s\n", m.MX, m.Failures, m.RecentFailures, in)
		}
	}
	if len(ev.Examples) > 0 {
		fmt.Fprintln(w, "  example failures:")
		for _, x := range ev.Examples {
			fmt.Fprintf(w, "    %s\n", exampleLine(x))
		}
	}
	if len(ev.Excluded) > 0 {
		fmt.Fprintf(w, "  excluded, not counted (%s): %d reports\n", win.Span, ev.ExcludedReports)
		for _, x := range ev.Excluded {
			fmt.Fprintf(w, "    %-30s %4d reports  %9d sessions  %7d failed  %s\n", x.Organization, x.Reports, x.Sessions, x.Failures, x.Reason)
		}
	}
	if v.Proposal != nil {
		p := v.Proposal
		fmt.Fprintf(w, "\nproposal: serve at %s\n", p.PolicyURL)
		for _, l := range strings.Split(strings.TrimRight(p.Policy, "\r\n"), "\r\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
		fmt.Fprintf(w, "then publish: %s IN TXT \"%s\"\n", p.RecordName, p.RecordValue)
	} else if ev.ProposalError != "" {
		fmt.Fprintf(w, "\nno proposal: %s\n", ev.ProposalError)
	}
}

func printFindings(w io.Writer, title string, fs []rollout.Finding) {
	if len(fs) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, f := range fs {
		fmt.Fprintf(w, "  %s: %s\n", f.Code, f.Message)
		if ev := findingEvidence(f); ev != "" {
			fmt.Fprintf(w, "    %s\n", ev)
		}
		if f.Example != nil {
			fmt.Fprintf(w, "    example: %s\n", exampleLine(*f.Example))
		}
	}
}

// findingEvidence lists the evidence fields of a finding as key=value,
// from its JSON form so that every field shows.
func findingEvidence(f rollout.Finding) string {
	f.Example = nil
	b, err := json.Marshal(f)
	if err != nil {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return ""
	}
	var parts []string
	for k, val := range m {
		switch k {
		case "code", "message", "source", "severity":
			continue
		}
		var s string
		switch x := val.(type) {
		case map[string]any:
			s = windowText(x)
			if s == "" {
				j, _ := json.Marshal(x)
				s = string(j)
			}
		case []any:
			j, _ := json.Marshal(x)
			s = string(j)
		case float64:
			s = fmt.Sprint(x)
			if strings.HasSuffix(k, "rate") {
				s = fmt.Sprintf("%.3g%%", x*100)
			}
		default:
			s = fmt.Sprint(x)
		}
		parts = append(parts, k+"="+s)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// thresholdsText lists the thresholds applied as name=value, in the
// names of the settings (the flags with "-" for "_").
func thresholdsText(t rollout.Thresholds) string {
	b, err := json.Marshal(t)
	if err != nil {
		return ""
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return ""
	}
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// windowText gives a window object of the JSON form as its days, both
// ends counted ("2026-11-16..2026-11-29"), or "" for another object.
func windowText(m map[string]any) string {
	from, ok1 := m["from"].(string)
	to, ok2 := m["to"].(string)
	days, ok3 := m["days"].(float64)
	if !ok1 || !ok2 || !ok3 {
		return ""
	}
	f, err1 := time.Parse(time.RFC3339, from)
	t, err2 := time.Parse(time.RFC3339, to)
	if err1 != nil || err2 != nil {
		return ""
	}
	return rollout.Window{From: f, To: t, Days: int(days)}.String()
}

func exampleLine(x rollout.FailureExample) string {
	s := fmt.Sprintf("%s %s report %q: %s, %d sessions", x.Day.Format(time.DateOnly), x.Organization, x.ReportID, x.ResultType, x.FailedSessionCount)
	if x.ReceivingMXHostname != "" {
		s += ", mx " + x.ReceivingMXHostname
	}
	if x.SendingMTAIP != "" {
		s += ", from " + x.SendingMTAIP
	}
	if x.ReceivingIP != "" {
		s += ", to " + x.ReceivingIP
	}
	if x.FailureReasonCode != "" {
		s += ", reason " + x.FailureReasonCode
	}
	if x.AdditionalInformation != "" {
		s += ", see " + x.AdditionalInformation
	}
	return s
}
