package reports

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
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
	Policy         *wirePolicy         `json:"policy"`
	Summary        *wireSummary        `json:"summary"`
	FailureDetails []wireFailureDetail `json:"failure-details"`
}

type wirePolicy struct {
	Type    *string    `json:"policy-type"`
	Strings stringList `json:"policy-string"`
	Domain  *string    `json:"policy-domain"`
	MXHosts stringList `json:"mx-host"`
}

type wireSummary struct {
	Successful *json.Number `json:"total-successful-session-count"`
	Failed     *json.Number `json:"total-failure-session-count"`
}

type wireFailureDetail struct {
	ResultType          *string      `json:"result-type"`
	SendingMTAIP        string       `json:"sending-mta-ip"`
	ReceivingMXHostname string       `json:"receiving-mx-hostname"`
	ReceivingMXHelo     string       `json:"receiving-mx-helo"`
	ReceivingIP         string       `json:"receiving-ip"`
	FailedSessionCount  *json.Number `json:"failed-session-count"`
	// AdditionalInformation is the RFC 8460 name; AdditionalInfoURI is
	// what some senders write instead (seen in a Microsoft-shaped report,
	// tls-rpt-monitor corpus sample). The RFC name wins when both are set.
	AdditionalInformation string     `json:"additional-information"`
	AdditionalInfoURI     string     `json:"additional-info-uri"`
	FailureReasonCode     reasonCode `json:"failure-reason-code"`
	// FailureErrorCode is an alternative name for failure-reason-code
	// written by some implementations; kept when the RFC name is absent.
	FailureErrorCode reasonCode `json:"failure-error-code"`
}

// nullableString is contact-info: optional in RFC 8460, and sent as JSON
// null by Stalwart mail server (dmarc-report-viewer issue #71, parsedmarc
// issue #575). Absent and null both read as "".
type nullableString string

func (s *nullableString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = ""
		return nil
	}
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want a string or null, got %s", abbrev(b))
	}
	*s = nullableString(v)
	return nil
}

// stringList is mx-host and policy-string. RFC 8460 §4.5 printed mx-host
// as a single string (fixed by errata 6241; copied as is by parsedmarc,
// mta-sts-exporter and others), so a string is read as a one-element list;
// null and absent read as an empty list. Microsoft sends a TLSA
// policy-string as a list holding one string of JSON; that string is kept
// as it is.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*l = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = stringList{s}
		return nil
	}
	var v []string
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", abbrev(b))
	}
	*l = v
	return nil
}

// reasonCode is failure-reason-code: free text in RFC 8460; Mail.ru puts Go
// error strings in it and some senders a bare number, which is kept as its
// digits.
type reasonCode string

func (c *reasonCode) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*c = ""
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*c = reasonCode(s)
		return nil
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		*c = reasonCode(b)
		return nil
	}
	return fmt.Errorf("want a string, got %s", abbrev(b))
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
func count(n *json.Number) (int64, error) {
	if n == nil {
		return 0, errors.New("missing")
	}
	v, err := n.Int64()
	if err != nil {
		return 0, fmt.Errorf("is not an integer: %s", abbrev([]byte(n.String())))
	}
	if v < 0 {
		return 0, fmt.Errorf("is negative: %d", v)
	}
	return v, nil
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
func (w *wireReport) toReport() (*Report, error) {
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
	r.Policies = make([]PolicyResult, len(*w.Policies))
	for i := range *w.Policies {
		if err := (*w.Policies)[i].convert(&r.Policies[i], i); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (w *wirePolicyResult) convert(p *PolicyResult, i int) error {
	// Field paths are formatted only on the error path: a large report has
	// hundreds of thousands of details.
	at := func(field string) string { return fmt.Sprintf("policies[%d].%s", i, field) }
	if w.Policy == nil {
		return fmt.Errorf("%w: %s missing", ErrMalformed, at("policy"))
	}
	if w.Policy.Type == nil || *w.Policy.Type == "" {
		return fmt.Errorf("%w: %s missing", ErrMalformed, at("policy.policy-type"))
	}
	if w.Policy.Domain == nil || strings.TrimSpace(*w.Policy.Domain) == "" {
		return fmt.Errorf("%w: %s missing", ErrMalformed, at("policy.policy-domain"))
	}
	p.Policy = Policy{
		Type:    *w.Policy.Type, // unknown types are kept as they are
		Strings: nonNil(w.Policy.Strings),
		Domain:  *w.Policy.Domain,
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
	p.FailureDetails = make([]FailureDetail, len(w.FailureDetails))
	for j := range w.FailureDetails {
		wd := &w.FailureDetails[j]
		d := &p.FailureDetails[j]
		if wd.ResultType == nil || *wd.ResultType == "" {
			return fmt.Errorf("%w: %s missing", ErrMalformed, at(fmt.Sprintf("failure-details[%d].result-type", j)))
		}
		d.ResultType = *wd.ResultType // unknown result types are kept
		if d.FailedSessionCount, err = count(wd.FailedSessionCount); err != nil {
			return fmt.Errorf("%w: %s %v", ErrMalformed, at(fmt.Sprintf("failure-details[%d].failed-session-count", j)), err)
		}
		d.SendingMTAIP = wd.SendingMTAIP
		d.ReceivingMXHostname = wd.ReceivingMXHostname
		d.ReceivingMXHelo = wd.ReceivingMXHelo
		d.ReceivingIP = wd.ReceivingIP
		d.AdditionalInformation = wd.AdditionalInformation
		if d.AdditionalInformation == "" {
			d.AdditionalInformation = wd.AdditionalInfoURI
		}
		d.FailureReasonCode = string(wd.FailureReasonCode)
		if d.FailureReasonCode == "" {
			d.FailureReasonCode = string(wd.FailureErrorCode)
		}
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
