package reports

import "errors"

// Sentinel errors. Test for them with errors.Is; the returned errors wrap
// them with what was wrong (field, value, part).
var (
	// ErrNoReport means a message holds no report-like part at all: it is
	// not a TLS report mail (a bounce, spam, a human's reply). It is distinct
	// from ErrMalformed, which is a report that is broken.
	ErrNoReport = errors.New("reports: no report in message")
	// ErrTooLarge means an input went over one of the Limits.
	ErrTooLarge = errors.New("reports: input over limit")
	// ErrMalformed means a report is broken: corrupt gzip, JSON that is not a
	// report, a missing or invalid field.
	ErrMalformed = errors.New("reports: malformed report")
)
