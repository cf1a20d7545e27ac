// Package reportgen writes realistic TLS reports and report mails in the
// shapes of the real senders (Google, Microsoft, Yahoo, Mail.ru), quirks
// included, for the demo mailbox, benchmarks and tests. Everything it makes
// is deterministic for the same input, but for the signing time in DKIM
// signatures.
package reportgen

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime/quotedprintable"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"
)

// Shape selects the quirks of one real sender.
type Shape int

// Shapes of the senders seen in the corpus (../shared/corpus/tlsrpt).
const (
	// ShapeGoogle: compact single-line JSON, RFC 3339 "Z" timestamps ending
	// 23:59:59Z, mx-host list, gzip attachment.
	ShapeGoogle Shape = iota
	// ShapeMicrosoft: indented JSON, timestamps without a zone, no mx-host,
	// text/html human part.
	ShapeMicrosoft
	// ShapeYahoo: RFC-shaped JSON as the RFC 8460 example prints it.
	ShapeYahoo
	// ShapeMailRu: no policy-string, the range ends at the next day's
	// 00:00:00Z, Go error strings as failure-reason-code.
	ShapeMailRu
)

// Reporter is a sending organisation that mails reports.
type Reporter struct {
	Org       string // organization-name
	Domain    string // the reporting domain: DKIM d= and TLS-Report-Submitter
	From      string
	Contact   string
	Shape     Shape
	IPPrefix  string // first three octets of its sending MTAs, e.g. "209.85.220"
	DKIMSel   string
	humanHTML bool
}

// Reporters are the four senders the demo and the benchmarks use.
var Reporters = []Reporter{
	{Org: "Google Inc.", Domain: "google.com", From: "noreply-smtp-tls-reporting@google.com", Contact: "smtp-tls-reporting@google.com", Shape: ShapeGoogle, IPPrefix: "209.85.220", DKIMSel: "20230601"},
	{Org: "Microsoft Corporation", Domain: "microsoft.com", From: "tlsrpt-noreply@microsoft.com", Contact: "tlsrpt-noreply@microsoft.com", Shape: ShapeMicrosoft, IPPrefix: "40.107.22", DKIMSel: "selector2", humanHTML: true},
	{Org: "Yahoo", Domain: "yahoo.com", From: "tlsrpt-noreply@yahoo.com", Contact: "postmaster@yahooinc.com", Shape: ShapeYahoo, IPPrefix: "98.137.64", DKIMSel: "s2048"},
	{Org: "Mail.ru", Domain: "mail.ru", From: "noreply-smtp-tls-reporting@corp.mail.ru", Contact: "tls_support@corp.mail.ru", Shape: ShapeMailRu, IPPrefix: "94.100.180", DKIMSel: "mail4"},
}

// Policy is the MTA-STS policy a sender applied.
type Policy struct {
	Type    string // sts, tlsa, no-policy-found
	Mode    string
	MX      []string
	MaxAge  int64
	Domain  string
	MXHosts []string // the domain's MX hosts the sender saw
}

// Failure is one failure detail.
type Failure struct {
	ResultType   string
	SendingIP    string
	ReceivingMX  string
	ReceivingIP  string
	Count        int64
	ReasonCode   string
	AdditionalIn string
}

// Report is what one reporter saw for one policy domain on one UTC day.
type Report struct {
	Reporter   Reporter
	Day        time.Time
	Policy     Policy
	Successful int64
	Failures   []Failure
	// Seq makes the report id unique when one reporter sends several
	// reports for the same day.
	Seq int
}

// ReportID is the report-id in the reporter's style.
func (r *Report) ReportID() string {
	switch r.Reporter.Shape {
	case ShapeGoogle:
		return fmt.Sprintf("%sZ_%s", r.Day.UTC().Format("2006-01-02T15:04:05"), r.Policy.Domain) + seqSuffix(r.Seq)
	case ShapeMicrosoft:
		return fmt.Sprintf("%d+%s", 133000000000000000+r.Day.Unix()*10000000+int64(r.Seq), r.Policy.Domain)
	case ShapeMailRu:
		h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%d", r.Policy.Domain, r.Day.Unix(), r.Seq)))
		return fmt.Sprintf("%x-%x-%x-%x-%x@mail.ru", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
	default:
		return fmt.Sprintf("%d.%s.%s", r.Day.Unix(), r.Policy.Domain, r.Reporter.Domain) + seqSuffix(r.Seq)
	}
}

func seqSuffix(seq int) string {
	if seq == 0 {
		return ""
	}
	return fmt.Sprintf(".%d", seq)
}

func (r *Report) failed() int64 {
	var n int64
	for _, f := range r.Failures {
		n += f.Count
	}
	return n
}

// policyLines is the policy-string a sender prints: the lines of the
// policy file.
func (p Policy) policyLines() []string {
	if p.Type != "sts" {
		return nil
	}
	lines := []string{"version: STSv1", "mode: " + p.Mode}
	for _, mx := range p.MX {
		lines = append(lines, "mx: "+mx)
	}
	return append(lines, fmt.Sprintf("max_age: %d", p.MaxAge))
}

// JSON encodes the report in the reporter's shape.
func (r *Report) JSON() []byte {
	start := r.Day.UTC()
	end := start.Add(24*time.Hour - time.Second)
	startS, endS := start.Format(time.RFC3339), end.Format(time.RFC3339)
	switch r.Reporter.Shape {
	case ShapeMicrosoft:
		// Microsoft's zone-less timestamps (mox testdata/tlsreports/microsoft.eml).
		startS, endS = start.Format("2006-01-02T15:04:05"), end.Format("2006-01-02T15:04:05")
	case ShapeMailRu:
		endS = start.Add(24 * time.Hour).Format(time.RFC3339)
	}
	pol := map[string]any{"policy-type": r.Policy.Type, "policy-domain": r.Policy.Domain}
	if lines := r.Policy.policyLines(); lines != nil && r.Reporter.Shape != ShapeMailRu {
		pol["policy-string"] = lines
	}
	switch r.Reporter.Shape {
	case ShapeGoogle:
		pol["mx-host"] = r.Policy.MX
	case ShapeYahoo:
		if len(r.Policy.MX) > 0 {
			pol["mx-host"] = r.Policy.MX
		}
	}
	entry := map[string]any{
		"policy": pol,
		"summary": map[string]any{
			"total-successful-session-count": r.Successful,
			"total-failure-session-count":    r.failed(),
		},
	}
	if len(r.Failures) > 0 {
		var details []map[string]any
		for _, f := range r.Failures {
			d := map[string]any{"result-type": f.ResultType, "failed-session-count": f.Count}
			set := func(k, v string) {
				if v != "" {
					d[k] = v
				}
			}
			set("sending-mta-ip", f.SendingIP)
			set("receiving-mx-hostname", f.ReceivingMX)
			set("receiving-ip", f.ReceivingIP)
			set("failure-reason-code", f.ReasonCode)
			set("additional-information", f.AdditionalIn)
			details = append(details, d)
		}
		entry["failure-details"] = details
	}
	doc := map[string]any{
		"organization-name": r.Reporter.Org,
		"date-range":        map[string]any{"start-datetime": startS, "end-datetime": endS},
		"contact-info":      r.Reporter.Contact,
		"report-id":         r.ReportID(),
		"policies":          []any{entry},
	}
	var out []byte
	var err error
	if r.Reporter.Shape == ShapeGoogle {
		out, err = json.Marshal(doc)
	} else {
		out, err = json.MarshalIndent(doc, "", "  ")
	}
	if err != nil {
		panic("reportgen: encoding a report: " + err.Error()) // only plain values above
	}
	return out
}

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Mail builds the RFC 8460 §5.3 report mail for r, DKIM-signed with the
// reporter's key (see Keys), addressed to rcpt.
func (r *Report) Mail(rcpt string) []byte {
	rep := r.Reporter
	id := r.ReportID()
	start, end := r.Day.UTC().Unix(), r.Day.UTC().Add(24*time.Hour).Unix()-1
	name := fmt.Sprintf("%s!%s!%d!%d!001.json.gz", rep.Domain, r.Policy.Domain, start, end)
	boundary := fmt.Sprintf("tlsrpt-%x", sha256.Sum256([]byte(id)))[:32]
	sent := r.Day.Add(24*time.Hour + 3*time.Hour + time.Duration(len(id))*time.Minute)

	var b strings.Builder
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", rep.From)
	hdr("To", rcpt)
	hdr("Subject", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", r.Policy.Domain, rep.Domain, id))
	hdr("Date", sent.Format(time.RFC1123Z))
	hdr("Message-ID", fmt.Sprintf("<%s@%s>", strings.ReplaceAll(id, "@", "."), rep.Domain))
	hdr("TLS-Report-Domain", r.Policy.Domain)
	hdr("TLS-Report-Submitter", rep.Domain)
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", fmt.Sprintf("multipart/report; report-type=\"tlsrpt\"; boundary=\"%s\"", boundary))
	b.WriteString("\r\n")
	b.WriteString("--" + boundary + "\r\n")
	human := fmt.Sprintf("This is an aggregate TLS report from %s for %s.", rep.Domain, r.Policy.Domain)
	if rep.humanHTML {
		b.WriteString("Content-Type: text/html; charset=\"us-ascii\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
		var qp bytes.Buffer
		w := quotedprintable.NewWriter(&qp)
		w.Write([]byte("<html><body><p>" + human + "</p></body></html>"))
		w.Close()
		b.WriteString(strings.ReplaceAll(qp.String(), "\n", "\r\n") + "\r\n")
	} else {
		b.WriteString("Content-Type: text/plain; charset=\"UTF-8\"\r\n\r\n" + human + "\r\n")
	}
	b.WriteString("--" + boundary + "\r\n")
	b.WriteString(fmt.Sprintf("Content-Type: application/tlsrpt+gzip; name=\"%s\"\r\n", name))
	b.WriteString("Content-Transfer-Encoding: base64\r\n")
	b.WriteString(fmt.Sprintf("Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", name))
	b.WriteString(b64lines(Gzip(r.JSON())))
	b.WriteString("--" + boundary + "--\r\n")
	return Sign(rep, []byte(b.String()))
}

// key derives the reporter's DKIM key from its domain: deterministic, and
// of course worthless outside the demo and tests.
func key(domain string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("tlsrpt demo dkim key " + domain))
	return ed25519.NewKeyFromSeed(seed[:])
}

// Sign prepends a DKIM-Signature of the reporter's domain to msg.
func Sign(rep Reporter, msg []byte) []byte {
	var out bytes.Buffer
	err := dkim.Sign(&out, bytes.NewReader(msg), &dkim.SignOptions{
		Domain:                 rep.Domain,
		Selector:               rep.DKIMSel,
		Signer:                 key(rep.Domain),
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             []string{"From", "To", "Subject", "Date", "Message-ID", "TLS-Report-Domain", "TLS-Report-Submitter", "Content-Type", "MIME-Version"},
	})
	if err != nil {
		panic("reportgen: signing: " + err.Error()) // ed25519 signing of an in-memory message cannot fail
	}
	return out.Bytes()
}

// LookupTXT answers the DKIM key queries for the reporters' selectors
// (`<selector>._domainkey.<domain>`), for a DKIM verifier that must not
// use the network (tests, the demo). Other names are not found.
func LookupTXT(name string) ([]string, error) {
	for _, rep := range Reporters {
		if strings.EqualFold(strings.TrimSuffix(name, "."), rep.DKIMSel+"._domainkey."+rep.Domain) {
			pub := key(rep.Domain).Public().(ed25519.PublicKey)
			return []string{"v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)}, nil
		}
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}
