package reports

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// The wire types below mirror RFC 8460 §4.4 as senders actually write it.
// They decode loosely (pointers to tell absent from empty, raw values where
// senders disagree on the type) and toReport checks and normalises them
// into a Report, naming the field at fault.

type wireReport struct {
	OrganizationName *string             `json:"organization-name"`
	DateRange        *wireDateRange      `json:"date-range"`
	ContactInfo      nullableString      `json:"contact-info"`
	ReportID         *string             `json:"report-id"`
	Policies         *[]wirePolicyResult `json:"policies"`
}

type wireDateRange struct {
	Start *datetime `json:"start-datetime"`
	End   *datetime `json:"end-datetime"`
}

type wirePolicyResult struct {
	Policy         *wirePolicy  `json:"policy"`
	Summary        *wireSummary `json:"summary"`
	FailureDetails detailList   `json:"failure-details"`
}

type wirePolicy struct {
	Type    *string    `json:"policy-type"`
	Strings stringList `json:"policy-string"`
	Domain  *string    `json:"policy-domain"`
	MXHosts stringList `json:"mx-host"`
}

type wireSummary struct {
	Successful sessionCount `json:"total-successful-session-count"`
	Failed     sessionCount `json:"total-failure-session-count"`
}

// nullableString is contact-info: optional in RFC 8460, and sent as JSON
// null by Stalwart mail server
// (https://github.com/cry-inc/dmarc-report-viewer/issues/71,
// https://github.com/domainaware/parsedmarc/issues/575). Absent and null
// both read as "".
type nullableString string

func (s *nullableString) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	switch tok.Kind() {
	case 'n':
		*s = ""
	case '"':
		*s = nullableString(tok.String())
	default:
		return fmt.Errorf("want a string or null, got %v", tok.Kind())
	}
	return nil
}

// stringList is mx-host and policy-string. RFC 8460 §4.5 printed mx-host
// as a single string (fixed by errata 6241; copied as is by parsedmarc,
// mta-sts-exporter and others), so a string is read as a one-element list;
// null and absent read as an empty list. Microsoft sends a TLSA
// policy-string as a list holding one string of JSON; that string is kept
// as it is.
type stringList []string

func (l *stringList) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	switch tok.Kind() {
	case 'n':
		*l = nil
		return nil
	case '"':
		*l = stringList{tok.String()}
		return nil
	case '[':
	default:
		return fmt.Errorf("want a string or a list of strings, got %v", tok.Kind())
	}
	list := stringList{}
	for dec.PeekKind() != ']' {
		tok, err := dec.ReadToken()
		if err != nil {
			return err
		}
		if tok.Kind() != '"' {
			return fmt.Errorf("want a string or a list of strings, got a list holding %v", tok.Kind())
		}
		list = append(list, tok.String())
	}
	if _, err := dec.ReadToken(); err != nil { // ']'
		return err
	}
	*l = list
	return nil
}

// sessionCount is a session count as sent: whether it was present, and
// its value when it is a non-negative integer. The checks are made by
// toReport, which knows the field's path; decoding never fails on them.
type sessionCount struct {
	n   int64
	set bool
	bad string // the literal when not a non-negative integer
}

func (c *sessionCount) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	if v.Kind() == 'n' {
		*c = sessionCount{}
		return nil
	}
	c.set = true
	c.n, c.bad = parseCount(v)
	return nil
}

// parseCount reads a JSON number that should be a non-negative integer;
// otherwise it returns the literal, shortened, as bad. An integer of more
// than 18 digits reads as math.MaxInt64: it is an integer, just over any
// limit (Limits.MaxSessions refuses it, naming the limit).
func parseCount(v []byte) (n int64, bad string) {
	if len(v) == 0 {
		return 0, "empty"
	}
	for i, b := range v {
		if b < '0' || b > '9' {
			return 0, abbrev(v)
		}
		if i > 17 { // 18 digits cannot overflow int64
			n = math.MaxInt64
			continue
		}
		n = n*10 + int64(b-'0')
	}
	return n, ""
}

// datetime is a date-range bound. RFC 8460 asks for RFC 3339 (Z or an
// offset, optional fractional seconds: both seen). Microsoft sent
// timestamps without any zone ("2023-01-10T00:00:00", 2023 and 2024
// reports, mox and mta-sts-exporter samples); they are read as UTC, which
// is what Microsoft meant.
type datetime string

// datetimeLayouts are tried in order; time.Parse accepts fractional
// seconds after the seconds field even when the layout has none.
var datetimeLayouts = [...]string{
	time.RFC3339,
	"2006-01-02T15:04:05",       // Microsoft: no zone
	"2006-01-02 15:04:05Z07:00", // space instead of T, allowed by RFC 3339 §5.6 note
	"2006-01-02 15:04:05",
}

func (d datetime) parse() (time.Time, error) {
	s := strings.ToUpper(strings.TrimSpace(string(d))) // RFC 3339 allows "t" and "z"
	for _, layout := range datetimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an RFC 3339 datetime: %q", abbrev([]byte(d)))
}

// count checks a session count: a non-negative integer. Counts are never
// derived from each other: real senders send details that do not add up
// to the totals (Mail.ru). The error completes "<field> ...".
func count(c sessionCount) (int64, error) {
	switch {
	case !c.set:
		return 0, errors.New("missing")
	case strings.HasPrefix(c.bad, "-"):
		return 0, fmt.Errorf("is negative: %s", c.bad)
	case c.bad != "":
		return 0, fmt.Errorf("is not an integer: %s", c.bad)
	}
	return c.n, nil
}

// abbrev shortens a value quoted in an error message, so that an error
// never carries megabytes of attacker input.
func abbrev(b []byte) string {
	const max = 64
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// toReport checks w and converts it into the normalised Report.
// policyDomain, when not empty, is the policy domain of policies that name
// none (see mailPolicyDomain); otherwise such a policy is refused. What
// the report claims is bounded by lim (filled with the defaults): a claim
// beyond a bound is refused with ErrTooLarge, naming the field and the
// limit.
func (w *wireReport) toReport(policyDomain string, lim Limits) (*Report, error) {
	r := &Report{ContactInfo: string(w.ContactInfo)}
	if w.OrganizationName == nil || strings.TrimSpace(*w.OrganizationName) == "" {
		return nil, fmt.Errorf("%w: organization-name missing", ErrMalformed)
	}
	r.OrganizationName = *w.OrganizationName
	if w.ReportID == nil || strings.TrimSpace(*w.ReportID) == "" {
		return nil, fmt.Errorf("%w: report-id missing", ErrMalformed)
	}
	r.ReportID = *w.ReportID
	if w.DateRange == nil {
		return nil, fmt.Errorf("%w: date-range missing", ErrMalformed)
	}
	if w.DateRange.Start == nil {
		return nil, fmt.Errorf("%w: date-range.start-datetime missing", ErrMalformed)
	}
	if w.DateRange.End == nil {
		return nil, fmt.Errorf("%w: date-range.end-datetime missing", ErrMalformed)
	}
	var err error
	if r.DateRange.Start, err = w.DateRange.Start.parse(); err != nil {
		return nil, fmt.Errorf("%w: date-range.start-datetime: %v", ErrMalformed, err)
	}
	if r.DateRange.End, err = w.DateRange.End.parse(); err != nil {
		return nil, fmt.Errorf("%w: date-range.end-datetime: %v", ErrMalformed, err)
	}
	if r.DateRange.End.Before(r.DateRange.Start) {
		return nil, fmt.Errorf("%w: date-range end %s before start %s", ErrMalformed,
			r.DateRange.End.Format(time.RFC3339), r.DateRange.Start.Format(time.RFC3339))
	}
	if w.Policies == nil {
		return nil, fmt.Errorf("%w: policies missing", ErrMalformed)
	}
	if n := len(*w.Policies); n > lim.MaxPolicies {
		return nil, fmt.Errorf("%w: policies: %d entries, over the limit of %d", ErrTooLarge, n, lim.MaxPolicies)
	}
	r.Policies = make([]PolicyResult, len(*w.Policies))
	details := 0
	domains := map[string]struct{}{}
	for i := range *w.Policies {
		p := &r.Policies[i]
		if err := (*w.Policies)[i].convert(p, i, policyDomain, lim); err != nil {
			return nil, err
		}
		// Checked per policy by convert too; here across the report.
		if details += len(p.FailureDetails); details > lim.MaxFailureDetails {
			return nil, fmt.Errorf("%w: failure-details: over %d in all policies, the limit", ErrTooLarge, lim.MaxFailureDetails)
		}
		// Distinct as the store counts them: case and a final dot do
		// not make another domain.
		domains[strings.ToLower(strings.TrimSuffix(strings.TrimSpace(p.Policy.Domain), "."))] = struct{}{}
		if len(domains) > lim.MaxPolicyDomains {
			return nil, fmt.Errorf("%w: policies[].policy.policy-domain: over %d distinct domains, the limit", ErrTooLarge, lim.MaxPolicyDomains)
		}
	}
	return r, nil
}

// overSessions is the error of a session count c over lim.MaxSessions at
// field, or nil.
func overSessions(field string, c int64, lim Limits) error {
	if c <= lim.MaxSessions {
		return nil
	}
	v := strconv.FormatInt(c, 10)
	if c == math.MaxInt64 {
		v = "of 19 or more digits" // parseCount's reading of any such count
	}
	return fmt.Errorf("%w: %s %s over the limit of %d", ErrTooLarge, field, v, lim.MaxSessions)
}

func (w *wirePolicyResult) convert(p *PolicyResult, i int, policyDomain string, lim Limits) error {
	// Field paths are formatted only on the error path: a large report has
	// hundreds of thousands of details.
	at := func(field string) string { return fmt.Sprintf("policies[%d].%s", i, field) }
	if w.Policy == nil {
		return fmt.Errorf("%w: %s missing", ErrMalformed, at("policy"))
	}
	if w.Policy.Type == nil || *w.Policy.Type == "" {
		return fmt.Errorf("%w: %s missing", ErrMalformed, at("policy.policy-type"))
	}
	domain := policyDomain
	if w.Policy.Domain != nil && strings.TrimSpace(*w.Policy.Domain) != "" {
		domain = *w.Policy.Domain
	} else if domain == "" {
		return fmt.Errorf("%w: %s missing", ErrMalformed, at("policy.policy-domain"))
	}
	if n := len(w.Policy.Strings); n > lim.MaxPolicyStrings {
		return fmt.Errorf("%w: %s: %d lines, over the limit of %d", ErrTooLarge, at("policy.policy-string"), n, lim.MaxPolicyStrings)
	}
	if n := len(w.Policy.MXHosts); n > lim.MaxMXHosts {
		return fmt.Errorf("%w: %s: %d entries, over the limit of %d", ErrTooLarge, at("policy.mx-host"), n, lim.MaxMXHosts)
	}
	p.Policy = Policy{
		Type:    *w.Policy.Type, // unknown types are kept as they are
		Strings: nonNil(w.Policy.Strings),
		Domain:  domain,
		MXHosts: nonNil(w.Policy.MXHosts),
	}
	if w.Summary == nil {
		return fmt.Errorf("%w: %s missing", ErrMalformed, at("summary"))
	}
	var err error
	if p.Summary.TotalSuccessfulSessionCount, err = count(w.Summary.Successful); err != nil {
		return fmt.Errorf("%w: %s %v", ErrMalformed, at("summary.total-successful-session-count"), err)
	}
	if p.Summary.TotalFailureSessionCount, err = count(w.Summary.Failed); err != nil {
		return fmt.Errorf("%w: %s %v", ErrMalformed, at("summary.total-failure-session-count"), err)
	}
	if err := overSessions(at("summary.total-successful-session-count"), p.Summary.TotalSuccessfulSessionCount, lim); err != nil {
		return err
	}
	if err := overSessions(at("summary.total-failure-session-count"), p.Summary.TotalFailureSessionCount, lim); err != nil {
		return err
	}
	if w.FailureDetails.problem != "" {
		return fmt.Errorf("%w: %s", ErrMalformed, at(w.FailureDetails.problem))
	}
	if n := len(w.FailureDetails.items); n > lim.MaxFailureDetails {
		return fmt.Errorf("%w: %s: %d entries, over the limit of %d", ErrTooLarge, at("failure-details"), n, lim.MaxFailureDetails)
	}
	for j := range w.FailureDetails.items {
		if c := w.FailureDetails.items[j].FailedSessionCount; c > lim.MaxSessions {
			return overSessions(at(fmt.Sprintf("failure-details[%d].failed-session-count", j)), c, lim)
		}
	}
	p.FailureDetails = w.FailureDetails.items
	if p.FailureDetails == nil {
		p.FailureDetails = []FailureDetail{}
	}
	return nil
}

// nonNil makes absent lists empty lists, so the normalised JSON always has
// a list where RFC 8460 has one.
func nonNil(l stringList) []string {
	if l == nil {
		return []string{}
	}
	return l
}
