package rollout

import (
	"time"
)

// Blocker codes of the verdict (a contract: docs/verdict.md). The live check's
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
	// WarningNoRecentReports: no trusted report in the recent window, so
	// the verdict has nothing recent to judge: never a clean bill (for a
	// domain in enforce, "no regression" would be a guess).
	WarningNoRecentReports = "no-recent-reports"
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
	"mx-starttls-missing", "mx-certificate-invalid", "mx-missing",
}

// checkCodeBySeverity are check codes that block only with severity
// error: a certificate that expires within the enforce max_age plus a
// week blocks, one that expires within 30 days is a warning.
var checkCodeBySeverity = []string{"mx-certificate-expiring"}

// checkCodeTestingMode is the check's note that the policy is in testing:
// exactly what a domain asking for the verdict is expected to be.
const checkCodeTestingMode = "testing-mode"

// TLSFailureTypes are the result types (RFC 8460 §4.3) that enforce turns
// into undelivered mail at an MX of the domain (docs/verdict.md).
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
	// in enforce is watched instead: Ready is false, its one blocker is
	// not-in-testing (there is nothing to promote), and a regression is a
	// warning.
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
	Counts []FailureTally `json:"counts,omitempty"`
	MX     []string       `json:"mx,omitempty"`
	// Probe is, for a finding of the STARTTLS probe, what it found at the
	// address: reachability, STARTTLS, TLS version, the certificate.
	Probe    *SMTPProbe `json:"probe,omitempty"`
	PolicyMX []string   `json:"policy_mx,omitempty"`

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
	if w := e.noRecentReports(); w != nil {
		v.Warnings = append(v.Warnings, *w)
	}
	if f.Policy.Mode == ModeEnforce {
		v.Blockers = append(v.Blockers, e.mode()...)
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
