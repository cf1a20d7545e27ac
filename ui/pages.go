package ui

// Page view structs: one per template, filled by api/ from the store.
// Every string here may come from a report and so from an attacker; the
// templates print them through html/template, which escapes by context.

// Layout is what every page shares: the title, who is logged in and the
// CSRF token the forms carry.
type Layout struct {
	Title string
	// Nav is the active section: overview, reports, quarantine, settings.
	Nav  string
	User string
	Role string
	// CanEdit is true for admins: viewers see no forms that change state.
	CanEdit bool
	CSRF    string
	Flash   string
	// Notices are shown above the content, e.g. "DKIM verification is
	// off".
	Notices []string
}

// Badge is a verdict badge: Kind picks the colour (ready, blocked,
// enforcing, regression, unknown), Reason is the first blocker.
type Badge struct {
	Kind   string
	Label  string
	Reason string
	// Updating says the badge is being recomputed (its inputs changed):
	// the overview shows the last value with "updating…".
	Updating bool
	// ComputedAt is when a stored badge was computed (RFC 3339), "" for
	// a badge computed for this page.
	ComputedAt string
}

// LoginPage is the login form.
type LoginPage struct {
	Layout
	Error string
	Next  string
}

// ErrorPage shows an error a person understands.
type ErrorPage struct {
	Layout
	Status  int
	Message string
	// AddDomain, when set, offers admins to add that domain (a page of
	// a domain nobody listed and no report names).
	AddDomain string
}

// OverviewPage lists every allow-listed domain and, apart, the domains
// that send reports but are not listed.
type OverviewPage struct {
	Layout
	// Domains is one page of the allow-list (Page of Pages), Total the
	// domains that match Filter.
	Domains []DomainRow
	Total   int64
	Page    int
	Pages   int
	Filter  OverviewFilter
	Kinds   []string // the badge kinds the filter offers
	// Modes, Stages and AutopilotStates are the other filters' choices.
	Modes           []string
	Stages          []string
	AutopilotStates []string
	PrevURL         string
	NextURL         string
	Unlisted        []UnlistedRow
	// UnlistedCount is how many unlisted domains reported in the window,
	// counted up to a bound; UnlistedMore says there are more than that.
	UnlistedCount int64
	UnlistedMore  bool
}

// OverviewFilter is the overview's filter and sort form.
type OverviewFilter struct {
	Name    string
	Kind    string
	Sort    string // name or severity
	PerPage int
	// Mode, Stage and Autopilot filter the fleet: a mode, a ramp stage
	// (testing, 1, 2, 3, final) and an autopilot state (on, dry-run, off).
	Mode      string
	Stage     string
	Autopilot string
}

// DomainRow is one line of the overview.
type DomainRow struct {
	Name       string
	Mode       string
	Sessions7  int64
	Failures7  int64
	Sessions30 int64
	Failures30 int64
	Trend      Sparkline
	Badge      Badge
	// Stage is the ramp stage ("testing", "1".., "final"); Autopilot its
	// state (on, dry-run, off).
	Stage     string
	Autopilot string
}

// Rate7 is the failure rate of the last 7 days, formatted.
func (r DomainRow) Rate7() string { return rate(r.Failures7, r.Sessions7) }

// Rate30 is the failure rate of the last 30 days, formatted.
func (r DomainRow) Rate30() string { return rate(r.Failures30, r.Sessions30) }

func rate(failures, sessions int64) string {
	if sessions <= 0 {
		return "–"
	}
	return Percent(fraction(failures, sessions))
}

// UnlistedRow is a domain that reports arrive for but nobody added.
type UnlistedRow struct {
	Name     string
	Reports  int64
	Sessions int64
	LastDay  string
}

// DomainPage is one domain: chart, breakdowns, live check and verdict.
type DomainPage struct {
	Layout
	Domain   string
	Mode     string
	Window   int
	Windows  []int
	Chart    DailyChart
	Sessions int64
	Failures int64
	// PolicyTypes says what the sessions are, e.g. "380 sts, 20
	// no-policy-found" ("" when all are sts).
	PolicyTypes string
	// NoPolicy: senders found no MTA-STS policy (all sessions
	// no-policy-found), which is why the verdict counts none.
	NoPolicy bool
	// Unlisted: nobody added the domain; its reports are stored but left
	// out of the overview and alerts.
	Unlisted bool
	// Breakdowns: by result type, receiving MX, reporting organisation
	// and sending IP, in that order.
	Breakdowns []Breakdown
	Verdict    *VerdictView
	// VerdictError says why no verdict could be computed.
	VerdictError string
	Check        *CheckView
	CheckError   string
	// LastProbe is the newest stored probe, shown when no live check ran.
	LastProbe *ProbeHistory
	// Promote is the place of the promote panel (docs/publishing.md); nil
	// until that lands.
	Promote *PromoteView
	// Autopilot is the autopilot panel; nil when it could not be read.
	Autopilot *AutopilotView
}

// Rate is the failure rate of the window, formatted.
func (p DomainPage) Rate() string { return rate(p.Failures, p.Sessions) }

// Breakdown is one table of the domain page.
type Breakdown struct {
	Title string
	Label string // heading of the first column
	// WithSessions shows the sessions column (the per-organisation table
	// has totals; the failure-detail tables have only failures).
	WithSessions bool
	Rows         []BreakdownRow
}

// BreakdownRow is one row of a breakdown table; Link drills down to the
// reports behind it.
type BreakdownRow struct {
	Label    string
	Sessions int64 // 0 where the breakdown has only failures
	Failures int64
	Share    string
	Link     string
}

// VerdictView is the readiness verdict with its evidence.
type VerdictView struct {
	Badge    Badge
	Blockers []Finding
	Warnings []Finding
	Evidence []KV
	Proposal string
	// ProposalInPanel: the proposal is the promote panel's plan, shown
	// there only.
	ProposalInPanel bool
}

// Finding is one blocker or warning.
type Finding struct {
	Code     string
	Message  string
	Evidence []string
}

// KV is a labelled value.
type KV struct {
	Key   string
	Value string
}

// CheckView is the result of the live DNS/HTTPS check.
type CheckView struct {
	Problems []Problem
	Details  []KV
	// Probes are the STARTTLS probe's rows, one per MX address.
	Probes []ProbeRow
}

// ProbeHistory is a stored probe of the domain and the days left of its
// certificates over the recent probes.
type ProbeHistory struct {
	ProbedAt string
	Cause    string
	Alerts   []string
	Rows     []ProbeRow
	Chart    DaysChart
}

// ProbeRow is what the STARTTLS probe found at one MX address, with a
// bar of the certificate's days left.
type ProbeRow struct {
	MX      string
	Address string
	// State is "ok", "warning", "error" or "unknown" (not reachable).
	State       string
	TLS         string // "STARTTLS, TLS 1.3 ..." or what went wrong
	Certificate string // subject, names, issuer
	NotAfter    string
	DaysLeft    string
	Verify      string // the verification error
	// Bar is the width of the days-left bar (0..DaysBarWidth), 0 when
	// there is no certificate.
	Bar float64
}

// Days-left bars: DaysBarWidth units stand for DaysBarMax days; the mark
// is at DaysBarWarn days (where an expiring certificate is a warning).
const (
	DaysBarWidth = 180.0
	DaysBarMax   = 90
	DaysBarWarn  = 30
)

// DaysBar returns the bar width for days left.
func DaysBar(days int) float64 {
	d := min(max(days, 0), DaysBarMax)
	return float64(d) * DaysBarWidth / DaysBarMax
}

// DaysBarMark is the x of the 30-day mark.
func (ProbeRow) DaysBarMark() float64 { return DaysBar(DaysBarWarn) }

// DaysBarFull returns the full width, for the template.
func (ProbeRow) DaysBarFull() float64 { return DaysBarWidth }

// Problem is one finding of the live check with its fix.
type Problem struct {
	Code     string
	Severity string
	Message  string
	Fix      string
}

// PromoteView is in promote.go.

// ReportsPage is the reports list with its filters.
type ReportsPage struct {
	Layout
	Filter  ReportFilter
	Rows    []ReportRow
	NextURL string
	PrevURL string
}

// ReportFilter is the filter form, as typed.
type ReportFilter struct {
	Domain string
	Org    string
	Result string
	MX     string
	IP     string
	From   string
	To     string
}

// ReportRow is one report in the list.
type ReportRow struct {
	ID         int64
	Org        string
	ReportID   string
	Day        string
	Domains    string
	Sessions   int64
	Failures   int64
	Source     string
	DKIM       string
	Unverified bool
	Reporter   ReporterView
	Excluded   bool
}

// ReporterView is who sent a report as far as proven: the verified
// reporter domain ("" when unverified), how it was verified in words, and
// why the organisation name does not belong to it ("" when it may).
type ReporterView struct {
	Domain   string
	Method   string
	Mismatch string
	// Unrecorded: a counted report stored before reporters were
	// verified (migration 085): not "unverified", just not known.
	Unrecorded bool
}

// ReportPage is one report.
type ReportPage struct {
	Layout
	ID         int64
	Org        string
	ReportID   string
	Contact    string
	Start, End string
	ReceivedAt string
	Source     string
	SourceRef  string
	Submitter  string
	From       string
	DKIM       string
	DKIMDomain string
	Unverified bool
	Reporter   ReporterView
	// RemoteAddr and RemoteName are the posting address of an HTTPS
	// report and its verified reverse name.
	RemoteAddr, RemoteName string
	// Excluded is set when an operator took the report back from every
	// count: ExcludedAt (RFC 3339), ExcludedBy and ExcludedReason say
	// when, who and why.
	Excluded                               bool
	ExcludedAt, ExcludedBy, ExcludedReason string
	// MaxReason bounds the reason field of the exclude form.
	MaxReason   int
	Policies    []PolicyView
	RawJSON     string
	RawJSONLink string
}

// PolicyView is one policy entry of a report.
type PolicyView struct {
	Type     string
	Domain   string
	Strings  []string
	MXHosts  []string
	Success  int64
	Failure  int64
	Failures []FailureView
}

// FailureView is one failure detail.
type FailureView struct {
	ResultType     string
	SendingIP      string
	ReceivingMX    string
	ReceivingHelo  string
	ReceivingIP    string
	Count          int64
	AdditionalInfo string
	ReasonCode     string
}

// QuarantinePage lists messages that could not be stored.
type QuarantinePage struct {
	Layout
	Rows []QuarantineRow
}

// QuarantineRow is one quarantined message.
type QuarantineRow struct {
	ID         int64
	ReceivedAt string
	Source     string
	SourceRef  string
	Reason     string
	Size       int64 // of the whole input
	Kept       int64 // bytes of it kept
	// Truncated says why not all of it was kept ("" when it was): such
	// an entry cannot be reprocessed.
	Truncated string
}

// SettingsPage is the settings index: a link per domain to its own
// settings page, the other settings pages, and the trusted reporters.
type SettingsPage struct {
	Layout
	Domains []DomainLink
	// Shipped are the reporter host rules tlsrpt ships, with why;
	// Rules are the operator's (section "Trusted reporters").
	Shipped []ReporterRuleView
	Rules   []ReporterRuleView
	// Publishing is the fleet default publishing setting.
	Publishing PublishingForm
}

// ReporterRuleView is one rule that verifies posted reports: reports of
// Reporter may come from hosts named under HostDomain, or from Network.
type ReporterRuleView struct {
	ID         int64
	Kind       string
	Reporter   string
	HostDomain string
	Network    string
	Note       string
	CreatedBy  string
	CreatedAt  string
}

// DomainSettings is the threshold form of one domain.
type DomainSettings struct {
	Domain string
	Fields []SettingField
}

// SettingField is one threshold.
type SettingField struct {
	Name  string
	Label string
	Value string
	Help  string
}

// AuditPage is the audit log: who did what to which domain, newest first.
type AuditPage struct {
	Layout
	// Domain filters the entries ("" for all).
	Domain string
	Rows   []AuditRow
}

// AuditRow is one audit entry; Detail is its JSON as stored.
type AuditRow struct {
	At     string
	Actor  string
	Action string
	Domain string
	Detail string
}
