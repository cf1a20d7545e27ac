// Package reports is the RFC 8460 (SMTP TLS Reporting) model: the report
// structure, parsing of a report from JSON or gzip, and extraction of every
// report from an RFC 5322 message. It touches neither the network nor a
// database; everything it reads is bounded (see limits.go).
package reports

import "time"

// Report is one SMTP TLS report, RFC 8460 §4. The JSON tags are the RFC
// field names, so encoding a Report gives the normalised RFC form: datetimes
// in RFC 3339 UTC and mx-host always a list.
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

// DateRange is the half-open period a report covers. Senders end it at
// 23:59:59Z or at the next day's 00:00:00Z; a report counts for the UTC day
// its range starts in.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// Day is the UTC day the report counts for: the day its range starts in.
func (d DateRange) Day() time.Time {
	s := d.Start.UTC()
	return time.Date(s.Year(), s.Month(), s.Day(), 0, 0, 0, 0, time.UTC)
}

// PolicyResult is one entry of a report's policies list: the policy that
// was applied, the session totals and the failure details.
type PolicyResult struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details"`
}

// Policy types registered by RFC 8460 §4.4. Other values are kept as they
// are: the IANA registry can grow.
const (
	PolicySTS           = "sts"
	PolicyTLSA          = "tlsa"
	PolicyNoPolicyFound = "no-policy-found"
)

// Policy describes the policy a sender applied, RFC 8460 §4.4.
type Policy struct {
	Type string `json:"policy-type"`
	// Strings holds the policy as lines. Microsoft sends a TLSA policy as one
	// string holding a JSON array; it is kept as that one string.
	Strings []string `json:"policy-string"`
	Domain  string   `json:"policy-domain"`
	// MXHosts is always a list here, whatever form the sender used.
	MXHosts []string `json:"mx-host"`
}

// Summary holds the session totals of one policy. Totals are never derived
// from the failure details: real senders send details that do not add up.
type Summary struct {
	TotalSuccessfulSessionCount int64 `json:"total-successful-session-count"`
	TotalFailureSessionCount    int64 `json:"total-failure-session-count"`
}

// Result types registered by RFC 8460 §4.3. Unknown types are kept as they
// are.
const (
	ResultSTARTTLSNotSupported    = "starttls-not-supported"
	ResultCertificateHostMismatch = "certificate-host-mismatch"
	ResultCertificateExpired      = "certificate-expired"
	ResultCertificateNotTrusted   = "certificate-not-trusted"
	ResultValidationFailure       = "validation-failure"
	ResultTLSAInvalid             = "tlsa-invalid"
	ResultDNSSECInvalid           = "dnssec-invalid"
	ResultDANERequired            = "dane-required"
	ResultSTSPolicyFetchError     = "sts-policy-fetch-error"
	ResultSTSPolicyInvalid        = "sts-policy-invalid"
	ResultSTSWebPKIInvalid        = "sts-webpki-invalid"
)

// FailureDetail is one entry of failure-details, RFC 8460 §4.4. Every field
// but the result type and the count may be absent.
type FailureDetail struct {
	ResultType            string `json:"result-type"`
	SendingMTAIP          string `json:"sending-mta-ip,omitempty"`
	ReceivingMXHostname   string `json:"receiving-mx-hostname,omitempty"`
	ReceivingMXHelo       string `json:"receiving-mx-helo,omitempty"`
	ReceivingIP           string `json:"receiving-ip,omitempty"`
	FailedSessionCount    int64  `json:"failed-session-count"`
	AdditionalInformation string `json:"additional-information,omitempty"`
	FailureReasonCode     string `json:"failure-reason-code,omitempty"`
}
