package rollout

import (
	"fmt"
	"sort"
)

// CertAlertDays is how close to expiry a watched certificate of an
// enforcing domain raises an alert (docs/policy-and-check.md, history and alerts).
const CertAlertDays = 14

// CertState is one certificate the daily probe watches: an MX address, or
// the policy host (Address empty).
type CertState struct {
	Host    string `json:"host"`
	Address string `json:"address,omitempty"`
	// Failing is set when senders that enforce would fail here: no
	// STARTTLS, no TLS, or a certificate that does not verify.
	Failing bool   `json:"failing"`
	Detail  string `json:"detail,omitempty"`
	// DaysLeft is the certificate's; HasCert tells whether one was seen.
	DaysLeft int  `json:"days_left"`
	HasCert  bool `json:"has_cert"`
}

func (s CertState) key() string { return s.Host + " " + s.Address }

func (s CertState) name() string {
	if s.Address == "" {
		return "the policy host " + s.Host
	}
	return "MX " + s.Host + " at " + s.Address
}

// CertStates returns the certificates a check saw: the policy host's, and
// each reachable MX address's. Unreachable addresses are left out: port
// 25 blocked here says nothing about the certificate.
func CertStates(res *CheckResult) []CertState {
	var out []CertState
	if res == nil {
		return out
	}
	host := "mta-sts." + res.Domain
	pol := CertState{Host: host}
	for _, p := range res.Problems {
		if p.Code == CodePolicyCertificateInvalid {
			pol.Failing, pol.Detail = true, p.Message
		}
	}
	if c := res.Policy.Certificate; c != nil {
		pol.HasCert, pol.DaysLeft = true, c.DaysLeft
	}
	if pol.HasCert || pol.Failing {
		out = append(out, pol)
	}
	for _, m := range res.MX {
		for _, p := range m.Addresses {
			if !p.Reachable {
				continue
			}
			s := CertState{Host: m.Host, Address: p.Address}
			switch {
			case !p.STARTTLS:
				s.Failing, s.Detail = true, "no STARTTLS"
			case p.Certificate == nil:
				s.Failing, s.Detail = true, "TLS does not start: "+p.Error
			case !p.Verified:
				s.Failing, s.Detail = true, p.VerifyError
			}
			if p.Certificate != nil {
				s.HasCert, s.DaysLeft = true, p.Certificate.DaysLeft
			}
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key() < out[j].key() })
	return out
}

// CertAlerts compares the certificates of two probes of an enforcing
// domain and returns one sentence per certificate that got worse: it
// started failing, or came within days of expiry. A certificate seen for
// the first time counts as worse when it fails or expires soon; one that
// was already failing or close to expiry is not repeated, so a daily
// probe alerts once per change.
func CertAlerts(prev, cur []CertState, days int) []string {
	before := map[string]CertState{}
	for _, s := range prev {
		before[s.key()] = s
	}
	var out []string
	for _, s := range cur {
		b, seen := before[s.key()]
		switch {
		case s.Failing && (!seen || !b.Failing):
			out = append(out, fmt.Sprintf("%s started failing: %s", s.name(), s.Detail))
		case !s.Failing && s.HasCert && s.DaysLeft < days && (!seen || b.Failing || !b.HasCert || b.DaysLeft >= days):
			out = append(out, fmt.Sprintf("the certificate of %s expires in %d days", s.name(), s.DaysLeft))
		}
	}
	return out
}
