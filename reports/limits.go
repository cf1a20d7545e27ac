package reports

// Default limits. Every input tlsrpt reads comes from strangers (anyone can
// mail the rua address), so every size is bounded; the defaults are far
// above what real senders send and far below what hurts a small server.
const (
	// DefaultMaxMessageBytes bounds a whole mail message. The largest real
	// report mails (Google, Microsoft for big receivers) are a few hundred
	// KiB; 32 MiB is also a common MTA message size limit.
	DefaultMaxMessageBytes = 32 << 20
	// DefaultMaxReportBytes bounds one report's JSON after decompression.
	// Reports compress about 20:1, so a 64 MiB report is a ~3 MiB
	// attachment; it stops a gzip bomb long before memory runs out.
	DefaultMaxReportBytes = 64 << 20
	// DefaultMaxParts bounds the MIME parts of one message. A report mail has
	// two or three; 100 leaves room for digests of forwarded reports.
	DefaultMaxParts = 100
	// DefaultMaxDepth bounds MIME nesting. multipart/report inside a
	// forwarded message/rfc822 inside multipart/mixed is depth 3-4; 10 is
	// ample and stops recursion bombs.
	DefaultMaxDepth = 10
	// DefaultMaxJSONDepth bounds JSON nesting. A report nests five levels
	// (report, policies, policy result, failure-details, detail); 32 tolerates
	// extensions and refuses "[[[[...".
	DefaultMaxJSONDepth = 32

	// The bounds below are on what one report claims rather than on its
	// bytes (docs/reporters.md, "Plausible numbers only"): anyone can post a report,
	// and a claim of 10^18 sessions or 20,000 policy domains is either an
	// attack or a broken sender. Each is far above the largest real figure
	// known (docs/parse.md, "Limits"); the largest in the corpus
	// (testdata/corpus, /work/shared/corpus/tlsrpt) is given with each.

	// DefaultMaxSessions bounds each session count: a policy's
	// total-successful-session-count and total-failure-session-count, and
	// a detail's failed-session-count. The largest providers send a few
	// million sessions per domain per day; the corpus' largest is 5,326
	// (the RFC 8460 example), its largest real one 343 (Google). 10^12 a
	// day is 11.6 million sessions a second to one domain, and a report
	// at the limits sums to at most 2×10^15, so no single report comes near
	// int64 (9.2×10^18).
	DefaultMaxSessions = 1_000_000_000_000
	// DefaultMaxPolicies bounds the policies of one report. A report is
	// for one policy domain (RFC 8460 §4) and lists one entry per policy
	// applied: Microsoft sends two (sts and tlsa), the corpus has at most 2.
	DefaultMaxPolicies = 1000
	// DefaultMaxFailureDetails bounds the failure details of one report,
	// all policies together (so of each policy too). Senders group
	// details by result type, sending IP and receiving MX: a large
	// receiver gets hundreds to a few thousand a day; the corpus has at
	// most 3. The synthetic 20 MiB benchmark report has about 100,000.
	DefaultMaxFailureDetails = 500_000
	// DefaultMaxPolicyDomains bounds the distinct policy domains of one
	// report. RFC 8460 §4 reports on one policy domain: every report in
	// the corpus names exactly 1.
	DefaultMaxPolicyDomains = 100
	// DefaultMaxMXHosts bounds the mx-host entries of one policy: the MX
	// patterns of an MTA-STS policy. Google Workspace has 5 MX hosts, the
	// corpus at most 2.
	DefaultMaxMXHosts = 1000
	// DefaultMaxPolicyStrings bounds the policy-string lines of one
	// policy: an MTA-STS policy is version, mode, max_age and one line per
	// MX pattern (5 in the corpus), a TLSA policy one line per record.
	DefaultMaxPolicyStrings = 1000
)

// Limits bounds what reading a report or a message may consume. A zero
// field means the default.
type Limits struct {
	MaxMessageBytes int64 // a whole RFC 5322 message, as read
	MaxReportBytes  int64 // one report's JSON, decompressed
	MaxParts        int   // MIME parts per message, all levels
	MaxDepth        int   // MIME nesting
	MaxJSONDepth    int   // JSON object/array nesting

	MaxSessions       int64 // each session count of a policy or a detail
	MaxPolicies       int   // policies per report
	MaxFailureDetails int   // failure details per report, all policies
	MaxPolicyDomains  int   // distinct policy domains per report
	MaxMXHosts        int   // mx-host entries per policy
	MaxPolicyStrings  int   // policy-string lines per policy
}

// DefaultLimits returns the limits used by Parse and by the commands unless
// an operator configures others.
func DefaultLimits() Limits {
	return Limits{
		MaxMessageBytes: DefaultMaxMessageBytes,
		MaxReportBytes:  DefaultMaxReportBytes,
		MaxParts:        DefaultMaxParts,
		MaxDepth:        DefaultMaxDepth,
		MaxJSONDepth:    DefaultMaxJSONDepth,

		MaxSessions:       DefaultMaxSessions,
		MaxPolicies:       DefaultMaxPolicies,
		MaxFailureDetails: DefaultMaxFailureDetails,
		MaxPolicyDomains:  DefaultMaxPolicyDomains,
		MaxMXHosts:        DefaultMaxMXHosts,
		MaxPolicyStrings:  DefaultMaxPolicyStrings,
	}
}

// withDefaults fills the zero fields of l with the defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	if l.MaxReportBytes <= 0 {
		l.MaxReportBytes = d.MaxReportBytes
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxJSONDepth <= 0 {
		l.MaxJSONDepth = d.MaxJSONDepth
	}
	if l.MaxSessions <= 0 {
		l.MaxSessions = d.MaxSessions
	}
	if l.MaxPolicies <= 0 {
		l.MaxPolicies = d.MaxPolicies
	}
	if l.MaxFailureDetails <= 0 {
		l.MaxFailureDetails = d.MaxFailureDetails
	}
	if l.MaxPolicyDomains <= 0 {
		l.MaxPolicyDomains = d.MaxPolicyDomains
	}
	if l.MaxMXHosts <= 0 {
		l.MaxMXHosts = d.MaxMXHosts
	}
	if l.MaxPolicyStrings <= 0 {
		l.MaxPolicyStrings = d.MaxPolicyStrings
	}
	return l
}
