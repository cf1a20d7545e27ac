package rollout

import (
	"math"
	"net/netip"
	"time"
)

// Facts is everything the verdict needs about one domain, read from the
// store (and the live check) as seen at At. The store fills it (db.Facts);
// Evaluate only computes. Every list is per UTC day or per group over the
// span the store was asked for, so its size follows the window, not the
// history.
//
// Counting rule: a report counts for the UTC day its date range starts in
// (reports.DateRange.Day). Only trusted reports (docs/reporters.md) are in Days, Reporters, Failures and Senders; the others are only
// counted in Excluded. Only policies of type sts for Domain are counted.
type Facts struct {
	Domain string
	// At is the moment the verdict is computed for; the day of At (UTC)
	// and later days are never counted: they are not over yet.
	At time.Time
	// SpanDays is how many days before day(At) the store read.
	SpanDays int

	// Policy is the current policy: from the live check, or with
	// --offline from the newest policy-string in the reports.
	Policy CurrentPolicy
	// CheckProblems are the problems of the live check; nil when offline.
	CheckProblems []CheckFinding

	// ModeHistory holds, oldest first, the days of the last
	// ModeHistoryDays before day(At) that had trusted sts reports, with
	// the modes their policy-strings show; TestingSince is derived from it.
	ModeHistory []ModeDay

	// Days holds one entry per UTC day of the span that had trusted
	// reports, oldest first.
	Days []DayFacts
	// Reporters holds per reporting organisation and day its sessions.
	Reporters []ReporterDay
	// Failures holds failed sessions per day, result type and receiving MX
	// as the failure details tell them (they need not add up to the
	// summary totals; the rates use the totals).
	Failures []FailureCount
	// Senders holds failed sessions per day, reporter and sending IP range
	// (SenderRange), largest first, at most MaxSenderGroups of them.
	Senders []SenderFailures
	// SendersTruncated says Senders was cut at MaxSenderGroups.
	SendersTruncated bool
	// Examples holds a few failure details to show, newest first.
	Examples []FailureExample
	// Excluded counts the reports of the span that did not count.
	Excluded []ExcludedCount
}

// ModeHistoryDays is how far back the store looks for the day the domain
// entered testing: a year, so that one read stays bounded.
const ModeHistoryDays = 366

// MaxSenderGroups bounds Facts.Senders. More groups than this means the
// failures are not those of one sender anyway.
const MaxSenderGroups = 200

// Policy sources of CurrentPolicy.
const (
	PolicySourceLive    = "live"    // the live check fetched it
	PolicySourceReports = "reports" // the newest policy-string in the reports
	PolicySourceNone    = "none"    // neither gave one
	// PolicySourcePublished: the newest version tlsrpt published itself;
	// it wins over the reports, which show a new policy only a day later.
	PolicySourcePublished = "published"
)

// ApplyVersion makes p, published by tlsrpt with id, the current policy,
// unless the live check has already read what is actually served.
func (f *Facts) ApplyVersion(p Policy, id string) {
	if f.Policy.Source == PolicySourceLive {
		return
	}
	f.Policy = CurrentPolicy{Mode: p.Mode, MX: p.MX, MaxAge: p.MaxAge, ID: id, Source: PolicySourcePublished}
}

// CurrentPolicy is the policy the domain publishes now, as far as the facts
// tell, and where that came from.
type CurrentPolicy struct {
	Mode   Mode     `json:"mode"`
	MX     []string `json:"mx"`
	MaxAge int64    `json:"max_age"`
	// ID is the id of the _mta-sts record when known (live check only:
	// reports do not carry it).
	ID     string `json:"id,omitempty"`
	Source string `json:"source"`
	// SeenDay is, for Source reports, the day of the report it came from.
	SeenDay time.Time `json:"seen_day,omitzero"`
}

// DayFacts is one UTC day of trusted sts reports for the domain.
type DayFacts struct {
	Day       time.Time
	Reports   int64
	Successes int64
	Failures  int64
}

// ModeDay is the set of policy modes the trusted sts reports of one UTC day
// show in their policy-string; Modes is empty when none carries one.
type ModeDay struct {
	Day   time.Time
	Modes []Mode
}

// CheckFinding is one problem of the live check (tlsrpt check) as the
// verdict takes it: the check's problem code, severity and message.
type CheckFinding struct {
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
	// MX and Probe are, for a problem of the STARTTLS probe, the MX host
	// and what the probe found at the address.
	MX    string     `json:"mx,omitempty"`
	Probe *SMTPProbe `json:"probe,omitempty"`
}

// Sessions is successes plus failures, at most math.MaxInt64.
func (d DayFacts) Sessions() int64 { return satAdd(d.Successes, d.Failures) }

// satAdd is a + b for session and report counts, saturating at
// math.MaxInt64: stored totals are bounded per report, not in number, so
// a window's sums can reach the top of int64 and must stay huge rather
// than wrap negative (which would read as a clean domain).
func satAdd(a, b int64) int64 {
	if a > 0 && b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

// ReporterDay is one reporting organisation's trusted sts totals on a day.
type ReporterDay struct {
	Day          time.Time
	Organization string
	Reports      int64
	Successes    int64
	Failures     int64
}

// FailureCount is failed sessions of one result type at one receiving MX
// on one day. MX is empty when the details name none (typical of
// sts-policy-fetch-error).
type FailureCount struct {
	Day        time.Time
	ResultType string
	MX         string
	Failures   int64
}

// SenderFailures is failed sessions reported by one organisation from one
// sending IP range on one day. Range is invalid when the details carry no
// sending-mta-ip.
type SenderFailures struct {
	Day          time.Time
	Organization string
	Range        netip.Prefix
	Failures     int64
}

// FailureExample is one failure detail as a person can look it up.
type FailureExample struct {
	Day          time.Time `json:"day"`
	Organization string    `json:"organization"`
	// Reporter is the verified domain of the report's reporter: the
	// failure is marked with who reported it (docs/reporters.md).
	Reporter              string `json:"reporter,omitempty"`
	ReportID              string `json:"report_id"`
	ResultType            string `json:"result_type"`
	SendingMTAIP          string `json:"sending_mta_ip,omitempty"`
	ReceivingMXHostname   string `json:"receiving_mx_hostname,omitempty"`
	ReceivingIP           string `json:"receiving_ip,omitempty"`
	FailedSessionCount    int64  `json:"failed_session_count"`
	AdditionalInformation string `json:"additional_information,omitempty"`
	FailureReasonCode     string `json:"failure_reason_code,omitempty"`
}

// ExcludedCount counts the reports of one organisation that did not count,
// for one reason (the DKIM result, or why else they were not trusted).
type ExcludedCount struct {
	Organization string `json:"organization"`
	Reason       string `json:"reason"`
	Reports      int64  `json:"reports"`
	Sessions     int64  `json:"sessions"`
	Failures     int64  `json:"failures"`
}

// Sending ranges that group failures for the sender-side rule: a /24 for
// IPv4 and a /64 for IPv6 (one IPv6 subnet: the unit a sending cluster
// sits in, and the one the live-check rate limits use).
const (
	SenderRangeIPv4Bits = 24
	SenderRangeIPv6Bits = 64
)

// SenderRange returns the sending range an address belongs to, invalid
// for an invalid address.
func SenderRange(ip netip.Addr) netip.Prefix {
	if !ip.IsValid() {
		return netip.Prefix{}
	}
	ip = ip.Unmap()
	bits := SenderRangeIPv6Bits
	if ip.Is4() {
		bits = SenderRangeIPv4Bits
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// UTCDay returns the UTC day t falls in, as midnight UTC.
func UTCDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}
