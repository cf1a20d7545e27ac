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
)

// Limits bounds what reading a report or a message may consume. A zero
// field means the default.
type Limits struct {
	MaxMessageBytes int64 // a whole RFC 5322 message, as read
	MaxReportBytes  int64 // one report's JSON, decompressed
	MaxParts        int   // MIME parts per message, all levels
	MaxDepth        int   // MIME nesting
	MaxJSONDepth    int   // JSON object/array nesting
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
	return l
}
