package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Blocker codes of the verdict (issue 4, a contract). The live check's
// problem codes that make enforce unsafe (UnsafeCheckCodes) are blockers
// under their own code.
const (
	BlockerNotInTesting        = "not-in-testing"
	BlockerObservationTooShort = "observation-too-short"
	BlockerTooFewReporters     = "too-few-reporters"
	BlockerTooFewSessions      = "too-few-sessions"
	BlockerFailureRate         = "failure-rate"
	BlockerTLSFailures         = "tls-failures"
	BlockerPolicyHostFailures  = "policy-host-failures"
	BlockerMXNotInPolicy       = "mx-not-in-policy"
	BlockerFailureRateRising   = "failure-rate-rising"
)

// Warning codes of the verdict.
const (
	// WarningSenderSide: failures from one sending range of one reporter
	// while everyone else succeeds; listed, not blocking, and left out of
	// the rate rules.
	WarningSenderSide = "sender-side"
	// WarningRegression: for a domain in enforce, failures rose against
	// the days before; the proposal is the rollback.
	WarningRegression = "regression"
)

// UnsafeCheckCodes are the problem codes of the live check (tlsrpt check)
// that make enforce unsafe: with any of them, senders that enforce would
// fail to find or apply the policy, or would refuse an MX. The other codes
// (testing-mode is expected; policy-mx-unused, max-age-low, tlsrpt-missing,
// tlsrpt-invalid) become warnings.
var UnsafeCheckCodes = []string{
	"record-missing", "record-multiple", "record-invalid",
	"policy-unreachable", "policy-certificate-invalid", "policy-redirect",
	"policy-content-type", "policy-too-large", "policy-invalid",
	"mx-not-in-policy", "id-not-changed",
}

// checkCodeTestingMode is the check's note that the policy is in testing:
// exactly what a domain asking for the verdict is expected to be.
const checkCodeTestingMode = "testing-mode"

// TLSFailureTypes are the result types (RFC 8460 §4.3) that enforce turns
// into undelivered mail at an MX of the domain (DESIGN "Readiness
// verdict").
var TLSFailureTypes = []string{
	"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
	"certificate-not-trusted", "validation-failure", "sts-webpki-invalid",
}

// PolicyHostFailureTypes are the result types that say the policy host is
// shaky: senders failed to fetch or to parse the policy.
var PolicyHostFailureTypes = []string{"sts-policy-fetch-error", "sts-policy-invalid"}

// Verdict is the readiness verdict for one domain. Its JSON form is the
// contract of "tlsrpt rollout --json": {domain, mode, ready, blockers,
// warnings, evidence, proposal}.
type Verdict struct {
	Domain string `json:"domain"`
	// Mode is the current mode (CurrentPolicy.Mode), empty when unknown.
	Mode Mode `json:"mode"`
	// Ready is true only for a domain in testing with no blocker. A domain
	// in enforce is watched instead: Ready is false, Blockers empty, and a
	// regression is a warning.
	Ready    bool      `json:"ready"`
	Blockers []Finding `json:"blockers"`
	Warnings []Finding `json:"warnings"`
	Evidence Evidence  `json:"evidence"`
	// Proposal is, for testing, the enforce policy to publish (mode
	// enforce, the same mx list, max_age EnforceMaxAge, a new id); for
	// enforce with a regression, the rollback (testing with a new id).
	// Nil when no mx list is known or there is nothing to propose.
	Proposal *Generated `json:"proposal"`
}

// Finding is one blocker or warning: its code, a sentence, and the
// evidence fields that apply to it (the others are left out of the JSON).
// Numbers are pointers so that a zero that matters is shown.
type Finding struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Source is where the finding comes from: "reports" or "check".
	Source   string  `json:"source"`
	Severity string  `json:"severity,omitempty"`
	Window   *Window `json:"window,omitempty"`

	Since         *time.Time `json:"since,omitempty"`
	ObservedDays  *int       `json:"observed_days,omitempty"`
	MinDays       *int       `json:"min_days,omitempty"`
	ReportDays    *int       `json:"report_days,omitempty"`
	MinReportDays *int       `json:"min_report_days,omitempty"`

	Reporters     *int     `json:"reporters,omitempty"`
	MinReporters  *int     `json:"min_reporters,omitempty"`
	Organizations []string `json:"organizations,omitempty"`

	Sessions       *int64   `json:"sessions,omitempty"`
	Failures       *int64   `json:"failures,omitempty"`
	Rate           *float64 `json:"rate,omitempty"`
	MinSessions    *int64   `json:"min_sessions,omitempty"`
	MaxFailureRate *float64 `json:"max_failure_rate,omitempty"`

	BaseWindow   *Window  `json:"base_window,omitempty"`
	BaseSessions *int64   `json:"base_sessions,omitempty"`
	BaseFailures *int64   `json:"base_failures,omitempty"`
	BaseRate     *float64 `json:"base_rate,omitempty"`
	RisingFactor *float64 `json:"rising_factor,omitempty"`

	// Counts lists the failures per result type and MX behind the finding.
	Counts   []FailureTally `json:"counts,omitempty"`
	MX       []string       `json:"mx,omitempty"`
	PolicyMX []string       `json:"policy_mx,omitempty"`

	// Sender-side: the reporter and its sending range.
	Organization string `json:"organization,omitempty"`
	Range        string `json:"range,omitempty"`
	RangeBits    *int   `json:"range_bits,omitempty"`

	Example *FailureExample `json:"example,omitempty"`
}

// Finding sources.
const (
	SourceReports = "reports"
	SourceCheck   = "check"
)

// Window is a run of whole UTC days [From, To); Days is their number.
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Days int       `json:"days"`
}

// Contains reports whether the UTC day d lies in the window.
func (w Window) Contains(d time.Time) bool {
	return !d.Before(w.From) && d.Before(w.To)
}

// String gives the window as "2026-11-16..2026-11-29" (both days counted).
func (w Window) String() string {
	if w.Days == 0 {
		return "no days"
	}
	return w.From.Format(time.DateOnly) + ".." + w.To.AddDate(0, 0, -1).Format(time.DateOnly)
}

// daysBefore returns the window from `from` days before day to `to` days
// before day.
func daysBefore(day time.Time, from, to int) Window {
	return Window{From: day.AddDate(0, 0, -from), To: day.AddDate(0, 0, -to), Days: from - to}
}

// Evaluate computes the verdict from the facts and the thresholds. It is
// pure: the same facts give the same verdict. The rules and windows are
// those of docs/verdict.md; the blockers come in the order given there, so
// the first is the first reason to show.
func Evaluate(f Facts, t Thresholds) Verdict {
	e := newEvaluation(f, t)
	v := Verdict{
		Domain:   f.Domain,
		Mode:     f.Policy.Mode,
		Blockers: []Finding{},
		Warnings: []Finding{},
	}
	v.Warnings = append(v.Warnings, e.senderWarning()...)
	if f.Policy.Mode == ModeEnforce {
		v.Warnings = append(v.Warnings, e.checkFindings(false)...)
		if r := e.regression(); r != nil {
			v.Warnings = append(v.Warnings, *r)
			v.Proposal, e.ev.ProposalError = propose(f, ModeTesting, DefaultMaxAgeTesting)
		}
		v.Evidence = e.evidence()
		return v
	}
	v.Blockers = append(v.Blockers, e.mode()...)
	v.Blockers = append(v.Blockers, e.checkFindings(true)...)
	v.Warnings = append(v.Warnings, e.checkFindings(false)...)
	for _, rule := range []func() *Finding{
		e.observation, e.reporters, e.sessions, e.failureRate,
		e.tlsFailures, e.policyHostFailures, e.mxNotInPolicy, e.rising,
	} {
		if b := rule(); b != nil {
			v.Blockers = append(v.Blockers, *b)
		}
	}
	v.Ready = len(v.Blockers) == 0
	v.Proposal, e.ev.ProposalError = propose(f, ModeEnforce, t.EnforceMaxAge)
	v.Evidence = e.evidence()
	return v
}

// mode blocks every mode but testing (enforce is handled as the watch).
func (e *evaluation) mode() []Finding {
	p := e.f.Policy
	switch {
	case p.Mode == ModeTesting:
		return nil
	case p.Source == PolicySourceNone || p.Mode == "":
		return []Finding{{Code: BlockerNotInTesting, Source: e.policySource(),
			Message: "no MTA-STS policy found (neither the live check nor the reports show one): publish one in mode testing first"}}
	default:
		return []Finding{{Code: BlockerNotInTesting, Source: e.policySource(),
			Message: fmt.Sprintf("the policy is in mode %s: publish it in mode testing and observe first", p.Mode)}}
	}
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
		unsafe := slices.Contains(UnsafeCheckCodes, p.Code)
		if p.Code == checkCodeTestingMode || unsafe != blockers {
			continue
		}
		out = append(out, Finding{Code: p.Code, Message: p.Message, Source: SourceCheck, Severity: p.Severity})
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
		n += c.Failures
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
