// Package synth generates realistic SMTP TLS reports (RFC 8460) for
// benchmarks and for the gencorpus command: the shapes of the real senders
// of the corpus (Google, Microsoft, Mail.ru, Stalwart) grown to a target
// size with failure details.
package synth

import (
	"bytes"
	"fmt"
	"math/rand/v2"
)

// Sender is the shape of one real sender's reports.
type Sender int

// Senders whose shapes are generated.
const (
	Google    Sender = iota // compact one-line JSON, sts, mx-host list
	Microsoft               // indented, sts + tlsa, zone-less timestamps, no mx-host
	MailRu                  // sts without policy-string, Go error strings as reason codes
	Stalwart                // contact-info null, empty arrays
)

// Senders lists every shape.
var Senders = [...]Sender{Google, Microsoft, MailRu, Stalwart}

func (s Sender) String() string {
	return [...]string{"google", "microsoft", "mailru", "stalwart"}[s]
}

var resultTypes = [...]string{
	"certificate-expired", "certificate-not-trusted", "certificate-host-mismatch",
	"starttls-not-supported", "validation-failure", "sts-policy-fetch-error", "sts-webpki-invalid",
}

// Report returns one report of sender s of about size bytes (at least the
// size of a report without failure details), deterministic for rng.
func Report(rng *rand.Rand, s Sender, size int) []byte {
	var b bytes.Buffer
	b.Grow(size + 1024)
	day := 1 + rng.IntN(28)
	domain := fmt.Sprintf("d%04d.example", rng.IntN(10000))
	start := fmt.Sprintf("2025-03-%02dT00:00:00Z", day)
	end := fmt.Sprintf("2025-03-%02dT23:59:59Z", day)
	nl, ind := "", ""
	switch s {
	case Microsoft:
		nl, ind = "\n", "    "
		start, end = start[:19], end[:19] // Microsoft's zone-less timestamps
	case MailRu, Stalwart:
		end = fmt.Sprintf("2025-03-%02dT00:00:00Z", day+1)
	}
	org, contact, id := "Google Inc.", `"smtp-tls-reporting@google.com"`, start+"_"+domain
	switch s {
	case Microsoft:
		org, contact, id = "Microsoft Corporation", `"tlsrpt-noreply@microsoft.com"`, fmt.Sprintf("%d+%s", 133900000000000000+rng.Int64N(1e14), domain)
	case MailRu:
		org, contact, id = "Mail.ru", `"tls_support@corp.mail.ru"`, fmt.Sprintf("%08x-7b2e-be36-bb5c-4c3b92da8b25@mail.ru", rng.Uint32())
	case Stalwart:
		org, contact, id = "mx.stalwart.example", "null", fmt.Sprintf("%d_%d", 1740787200+day*86400, rng.Uint64())
	}
	fmt.Fprintf(&b, `{%s%s"organization-name": %q,%s%s"date-range": {"start-datetime": %q, "end-datetime": %q},%s%s"contact-info": %s,%s%s"report-id": %q,%s%s"policies": [`,
		nl, ind, org, nl, ind, start, end, nl, ind, contact, nl, ind, id, nl, ind)
	// The failure details of the sts policy are grown until the size is
	// reached; the rest is fixed.
	fmt.Fprintf(&b, `{"policy": {"policy-type": "sts", `)
	if s != MailRu {
		fmt.Fprintf(&b, `"policy-string": ["version: STSv1", "mode: testing", "mx: mx1.%s", "mx: mx2.%s", "max_age: 86400"], `, domain, domain)
	}
	fmt.Fprintf(&b, `"policy-domain": %q`, domain)
	switch s {
	case Google:
		fmt.Fprintf(&b, `, "mx-host": ["mx1.%s", "mx2.%s"]`, domain, domain)
	case Stalwart:
		b.WriteString(`, "mx-host": []`)
	}
	fmt.Fprintf(&b, `},%s%s"summary": {"total-successful-session-count": %d, "total-failure-session-count": %d},%s%s"failure-details": [`,
		nl, ind, rng.IntN(1e6), rng.IntN(1e4), nl, ind)
	tail := 5 // "]}]}" and a newline
	if s == Microsoft {
		tail += 260 // the tlsa policy
	}
	for i := 0; b.Len()+tail < size-100; i++ { // a detail is 150-300 bytes
		if i > 0 {
			b.WriteString(",")
		}
		rt := resultTypes[rng.IntN(len(resultTypes))]
		fmt.Fprintf(&b, `%s%s%s{"result-type": %q, "sending-mta-ip": "209.85.%d.%d", "receiving-mx-hostname": "mx%d.%s", "receiving-ip": "192.0.2.%d", "failed-session-count": %d`,
			nl, ind, ind, rt, rng.IntN(256), rng.IntN(256), 1+rng.IntN(2), domain, rng.IntN(256), 1+rng.IntN(50))
		if s == MailRu {
			fmt.Fprintf(&b, `, "failure-reason-code": "Get \"https://mta-sts.%s/.well-known/mta-sts.txt\": dial tcp: i/o timeout"`, domain)
		} else if rt == "validation-failure" {
			b.WriteString(`, "failure-reason-code": "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY"`)
		}
		b.WriteString("}")
	}
	b.WriteString("]}")
	if s == Microsoft {
		fmt.Fprintf(&b, `,%s%s{"policy": {"policy-type": "tlsa", "policy-string": ["[\"3 1 1 6007EEE553E85D8DF007A845D19EC343283D4E416E9A33F9EF3040C8B7C285BC\"]"], "policy-domain": %q}, "summary": {"total-successful-session-count": %d, "total-failure-session-count": 0}}`,
			nl, ind, domain, rng.IntN(1000))
	}
	fmt.Fprintf(&b, "]%s}", nl)
	return b.Bytes()
}
