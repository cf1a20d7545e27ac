package reports

import (
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
)

// detailList decodes failure-details straight into the model, token by
// token: large reports are almost entirely failure details, and reflection
// plus a second copy cost more than a third of the parse time. It applies
// the same tolerances as the wire types: additional-info-uri and
// failure-error-code as fallbacks, a numeric reason code kept as its
// digits, absent optional fields. It does not fail on a bad detail; it
// keeps the first problem for toReport, which knows the policy's index.
type detailList struct {
	items   []FailureDetail
	problem string // "failure-details[j].field reason", first one only
}

func (l *detailList) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	tok, err := dec.ReadToken()
	if err != nil {
		return err
	}
	switch tok.Kind() {
	case 'n':
		return nil
	case '[':
	default:
		return fmt.Errorf("want a list of failure details, got %v", tok.Kind())
	}
	l.items = []FailureDetail{}
	for j := 0; dec.PeekKind() != ']'; j++ {
		if k := dec.PeekKind(); k != '{' {
			return fmt.Errorf("want a failure detail object, got %v", k)
		}
		d, problem, err := readDetail(dec)
		if err != nil {
			return err
		}
		if problem != "" && l.problem == "" {
			l.problem = fmt.Sprintf("failure-details[%d].%s", j, problem)
		}
		l.items = append(l.items, d)
	}
	_, err = dec.ReadToken() // ']'
	return err
}

// readDetail reads one failure detail object. Names are compared as raw
// JSON (quotes included), which matches every sender seen; a name written
// with escapes is skipped like an unknown one.
func readDetail(dec *jsontext.Decoder) (d FailureDetail, problem string, err error) {
	if _, err := dec.ReadToken(); err != nil { // '{'
		return d, "", err
	}
	var haveType, haveCount bool
	var infoURI, errorCode string
	for dec.PeekKind() != '}' {
		name, err := dec.ReadValue()
		if err != nil {
			return d, "", err
		}
		var dst *string
		switch string(name) {
		case `"result-type"`:
			dst = &d.ResultType
			haveType = true
		case `"sending-mta-ip"`:
			dst = &d.SendingMTAIP
		case `"receiving-mx-hostname"`:
			dst = &d.ReceivingMXHostname
		case `"receiving-mx-helo"`:
			dst = &d.ReceivingMXHelo
		case `"receiving-ip"`:
			dst = &d.ReceivingIP
		case `"additional-information"`:
			dst = &d.AdditionalInformation
		case `"additional-info-uri"`:
			// What some senders write instead of additional-information
			// (a Microsoft-shaped report, tls-rpt-monitor sample); the
			// RFC name wins when both are present.
			dst = &infoURI
		case `"failure-reason-code"`:
			dst = &d.FailureReasonCode
		case `"failure-error-code"`:
			// An alternative name for failure-reason-code written by some
			// implementations; kept when the RFC name is absent.
			dst = &errorCode
		case `"failed-session-count"`:
			v, err := dec.ReadValue()
			if err != nil {
				return d, "", err
			}
			var c sessionCount
			c.set = v.Kind() != 'n'
			if c.set {
				c.n, c.bad = parseCount(v)
			}
			d.FailedSessionCount = c.n
			if _, err := count(c); err != nil && problem == "" {
				problem = "failed-session-count " + err.Error()
			}
			haveCount = c.set
			continue
		default:
			if err := dec.SkipValue(); err != nil {
				return d, "", err
			}
			continue
		}
		tok, err := dec.ReadToken()
		if err != nil {
			return d, "", err
		}
		switch tok.Kind() {
		case '"', '0':
			// failure-reason-code is free text in RFC 8460 (Mail.ru puts
			// Go error strings in it); a sender writing a bare number gets
			// it kept as its digits.
			*dst = tok.String()
		case 'n':
		default:
			if problem == "" {
				problem = fmt.Sprintf("%s want a string, got %v", name[1:len(name)-1], tok.Kind())
			}
		}
	}
	if _, err := dec.ReadToken(); err != nil { // '}'
		return d, "", err
	}
	if d.AdditionalInformation == "" {
		d.AdditionalInformation = infoURI
	}
	if d.FailureReasonCode == "" {
		d.FailureReasonCode = errorCode
	}
	switch {
	case problem != "":
	case !haveType || d.ResultType == "":
		problem = "result-type missing"
	case !haveCount:
		problem = "failed-session-count missing"
	}
	return d, problem, nil
}
