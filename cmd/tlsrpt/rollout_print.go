package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// printVerdict writes the human form: the first line is "ready",
// "blocked: CODE: reason", or for a domain in enforce "enforce: no
// regression" / "enforce: regression: reason" / "enforce:
// no-recent-reports" (nothing recent to judge); then the findings with
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
	case v.Mode == rollout.ModeEnforce && hasCode(v.Warnings, rollout.WarningNoRecentReports):
		fmt.Fprintf(w, "enforce: %s\n", rollout.WarningNoRecentReports)
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
