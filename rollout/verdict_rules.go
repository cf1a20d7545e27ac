package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// mode blocks every mode but testing (enforce is handled as the watch).
func (e *evaluation) mode() []Finding {
	p := e.f.Policy
	switch {
	case p.Mode == ModeTesting:
		return nil
	case p.Mode == ModeEnforce:
		return []Finding{{Code: BlockerNotInTesting, Source: e.policySource(),
			Message: "the policy is in mode enforce already: nothing to promote; the watch compares the days since"}}
	case p.Source == PolicySourceNone || p.Mode == "":
		return []Finding{{Code: BlockerNotInTesting, Source: e.policySource(),
			Message: "no MTA-STS policy found (neither the live check nor the reports show one): publish one in mode testing first"}}
	default:
		return []Finding{{Code: BlockerNotInTesting, Source: e.policySource(),
			Message: fmt.Sprintf("the policy is in mode %s: publish it in mode testing and observe first", p.Mode)}}
	}
}

// noRecentReports is the warning that no trusted report arrived in the
// recent window, with the day of the newest one in the span, if any.
func (e *evaluation) noRecentReports() *Finding {
	recent := e.ev.Windows.Recent
	var newest time.Time
	for _, d := range e.f.Days {
		if d.Reports > 0 && recent.Contains(d.Day) {
			return nil
		}
		if d.Reports > 0 && d.Day.After(newest) {
			newest = d.Day
		}
	}
	msg := fmt.Sprintf("no trusted report in the recent window (%s): nothing recent to judge; check that reports still arrive (the rua mailbox, the _smtp._tls record)", recent)
	if !newest.IsZero() {
		msg += "; the newest is of " + newest.Format(time.DateOnly)
	}
	return &Finding{Code: WarningNoRecentReports, Source: SourceReports, Message: msg}
}

func (e *evaluation) policySource() string {
	if e.f.Policy.Source == PolicySourceLive {
		return SourceCheck
	}
	return SourceReports
}

// checkFindings turns the live check's problems into blockers (unsafe
// ones, when blockers is true) or warnings (the rest, but testing-mode).
func (e *evaluation) checkFindings(blockers bool) []Finding {
	var out []Finding
	for _, p := range e.f.CheckProblems {
		unsafe := slices.Contains(UnsafeCheckCodes, p.Code) ||
			slices.Contains(checkCodeBySeverity, p.Code) && p.Severity == SeverityError
		if p.Code == checkCodeTestingMode || unsafe != blockers {
			continue
		}
		f := Finding{Code: p.Code, Message: p.Message, Source: SourceCheck, Severity: p.Severity, Probe: p.Probe}
		if p.MX != "" {
			f.MX = []string{p.MX}
		}
		out = append(out, f)
	}
	return out
}

// observation: in testing for MinDays days, with reports on MinReportDays
// days of the evaluation window that lie in the testing period.
func (e *evaluation) observation() *Finding {
	ev := &e.ev
	if ev.ObservedDays >= e.t.MinDays && ev.ReportDays >= e.t.MinReportDays {
		return nil
	}
	b := &Finding{Code: BlockerObservationTooShort, Source: SourceReports, Window: ptr(ev.Windows.Evaluation),
		Since: ev.TestingSince, ObservedDays: ptr(ev.ObservedDays), MinDays: ptr(e.t.MinDays),
		ReportDays: ptr(ev.ReportDays), MinReportDays: ptr(e.t.MinReportDays)}
	switch {
	case ev.TestingSince == nil:
		b.Message = "no trusted report shows the policy in testing yet"
	case ev.ObservedDays < e.t.MinDays:
		b.Message = fmt.Sprintf("in testing for %d days since %s; needs %d",
			ev.ObservedDays, ev.TestingSince.Format(time.DateOnly), e.t.MinDays)
	default:
		b.Message = fmt.Sprintf("reports on %d of the %d days %s; needs %d",
			ev.ReportDays, ev.Windows.Evaluation.Days, ev.Windows.Evaluation, e.t.MinReportDays)
	}
	return b
}

func (e *evaluation) reporters() *Finding {
	ev := &e.ev
	if ev.Reporters >= e.t.MinReporters {
		return nil
	}
	return &Finding{Code: BlockerTooFewReporters, Source: SourceReports, Window: ptr(ev.Windows.Evaluation),
		Message: fmt.Sprintf("%d reporting organisation(s) in %s; needs %d: one sender's view is not enough",
			ev.Reporters, ev.Windows.Evaluation, e.t.MinReporters),
		Reporters: ptr(ev.Reporters), MinReporters: ptr(e.t.MinReporters), Organizations: e.organizations(ev.Windows.Evaluation)}
}

func (e *evaluation) sessions() *Finding {
	ev := &e.ev
	if ev.Sessions >= e.t.MinSessions {
		return nil
	}
	return &Finding{Code: BlockerTooFewSessions, Source: SourceReports, Window: ptr(ev.Windows.Evaluation),
		Message:  fmt.Sprintf("%d sessions in %s; needs %d", ev.Sessions, ev.Windows.Evaluation, e.t.MinSessions),
		Sessions: ptr(ev.Sessions), Failures: ptr(ev.Failures), MinSessions: ptr(e.t.MinSessions)}
}

// failureRate: the failure rate of the recent window, sender-side failures
// left out, must stay below MaxFailureRate.
func (e *evaluation) failureRate() *Finding {
	r := e.ev.Recent
	if r.Sessions == 0 || r.Failures == 0 || r.Rate < e.t.MaxFailureRate {
		return nil
	}
	w := e.ev.Windows.Recent
	return &Finding{Code: BlockerFailureRate, Source: SourceReports, Window: &w,
		Message: fmt.Sprintf("%d of %d sessions failed in %s (%s); must stay below %s",
			r.Failures, r.Sessions, w, percent(r.Rate), percent(e.t.MaxFailureRate)),
		Sessions: ptr(r.Sessions), Failures: ptr(r.Failures), Rate: ptr(r.Rate), MaxFailureRate: ptr(e.t.MaxFailureRate),
		Counts: e.tallies(w, nil), Example: e.example(w, nil)}
}

// tlsFailures: no failure in the recent window that enforce would turn
// into undelivered mail.
func (e *evaluation) tlsFailures() *Finding {
	return e.typedFailures(BlockerTLSFailures, TLSFailureTypes,
		"failed sessions in %s that enforce would turn into undelivered mail")
}

// policyHostFailures: no policy fetch or parse failure in the recent window.
func (e *evaluation) policyHostFailures() *Finding {
	return e.typedFailures(BlockerPolicyHostFailures, PolicyHostFailureTypes,
		"failed sessions in %s where senders could not fetch or parse the policy: the policy host is shaky")
}

func (e *evaluation) typedFailures(code string, types []string, what string) *Finding {
	if e.sender != nil {
		return nil // every failure of the span is the sender's
	}
	w := e.ev.Windows.Recent
	counts := e.tallies(w, types)
	if len(counts) == 0 {
		return nil
	}
	var n int64
	var mx []string
	for _, c := range counts {
		n = satAdd(n, c.Failures)
		if c.MX != "" && !slices.Contains(mx, c.MX) {
			mx = append(mx, c.MX)
		}
	}
	msg := fmt.Sprintf("%d "+what, n, w)
	if len(mx) > 0 {
		msg += fmt.Sprintf(" (MX %s)", joinMax(mx, 5))
	}
	return &Finding{Code: code, Source: SourceReports, Window: &w, Message: msg,
		Failures: ptr(n), Counts: counts, MX: mx, Example: e.example(w, types)}
}

// mxNotInPolicy: every receiving-mx-hostname in the reports of the
// evaluation window matches the policy's mx list.
func (e *evaluation) mxNotInPolicy() *Finding {
	p := e.f.Policy
	if p.Source == PolicySourceNone {
		return nil
	}
	w := e.ev.Windows.Evaluation
	var missing []string
	pol := Policy{MX: p.MX}
	for _, c := range e.f.Failures {
		if c.MX == "" || !w.Contains(c.Day) || slices.Contains(missing, c.MX) {
			continue
		}
		if _, ok := pol.Matches(c.MX); !ok {
			missing = append(missing, c.MX)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return &Finding{Code: BlockerMXNotInPolicy, Source: SourceReports, Window: &w,
		Message: fmt.Sprintf("reports in %s name MX %s, which the policy's mx list does not match: add it (mx: %s) or fix the MX records",
			w, joinMax(missing, 5), missing[0]),
		MX: missing, PolicyMX: p.MX}
}

// rising: the failure rate of the last RisingDays days is not above
// RisingFactor times the rate of the RisingBaseDays before.
func (e *evaluation) rising() *Finding {
	return e.rise(BlockerFailureRateRising, e.ev.Windows.Trend, e.ev.Windows.TrendBase)
}

func (e *evaluation) rise(code string, w, base Window) *Finding {
	cur, old := e.totals(w), e.totals(base)
	if cur.Sessions == 0 || cur.Failures < e.t.MinRisingFailures || cur.Failures == 0 {
		return nil
	}
	if cur.Rate <= e.t.RisingFactor*old.Rate {
		return nil
	}
	msg := fmt.Sprintf("failure rate %s (%d of %d sessions) in %s against %s (%d of %d) in %s",
		percent(cur.Rate), cur.Failures, cur.Sessions, w, percent(old.Rate), old.Failures, old.Sessions, base)
	if code == WarningRegression {
		msg += ": failures rose after enforce; consider the rollback to testing (the proposal)"
	}
	return &Finding{Code: code, Source: SourceReports, Window: &w, Message: msg,
		Sessions: ptr(cur.Sessions), Failures: ptr(cur.Failures), Rate: ptr(cur.Rate),
		BaseWindow: &base, BaseSessions: ptr(old.Sessions), BaseFailures: ptr(old.Failures), BaseRate: ptr(old.Rate),
		RisingFactor: ptr(e.t.RisingFactor), Counts: e.tallies(w, nil), Example: e.example(w, nil)}
}

func ptr[T any](v T) *T { return &v }

// percent formats a fraction as a percentage with enough digits for 0.1%.
func percent(r float64) string {
	return fmt.Sprintf("%.3g%%", r*100)
}

// joinMax joins up to n names and says how many more there are.
func joinMax(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
