package reportgen

import (
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// Demo domains: each tells one part of the story the demo shows.
const (
	// DemoReady is clean for 30 days from every reporter: ready to enforce.
	DemoReady = "example.com"
	// DemoExpired has an expired certificate on one MX in the last days.
	DemoExpired = "example.net"
	// DemoUnlistedMX receives mail on an MX its policy does not list.
	DemoUnlistedMX = "example.org"
	// DemoStranger sends reports but was never added by the operator.
	DemoStranger = "stranger.example"
)

// DemoDomains are the domains the demo adds to the allow-list.
var DemoDomains = []string{DemoReady, DemoExpired, DemoUnlistedMX}

// daily session volume per reporter, in the proportions seen for small
// business domains: Google and Microsoft dominate.
var demoVolume = map[Shape]int64{ShapeGoogle: 420, ShapeMicrosoft: 260, ShapeYahoo: 75, ShapeMailRu: 18}

// DemoReports is the 30-day history that ends with the UTC day before now.
func DemoReports(now time.Time) []*Report {
	today := time.Date(now.UTC().Year(), now.UTC().Month(), now.UTC().Day(), 0, 0, 0, 0, time.UTC)
	var out []*Report
	for back := 30; back >= 1; back-- {
		day := today.AddDate(0, 0, -back)
		for i, rep := range Reporters {
			// Vary the volume by day and reporter so the charts look alive.
			vol := demoVolume[rep.Shape] + int64((back*7+i*13)%23) - 11
			for _, d := range []string{DemoReady, DemoExpired, DemoUnlistedMX} {
				r := &Report{Reporter: rep, Day: day, Successful: vol}
				r.Policy = Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: d,
					MX: []string{"mx1." + d, "mx2." + d}}
				switch d {
				case DemoReady:
					// A misconfigured MX that was fixed four weeks ago: old
					// failures that no longer matter.
					if back >= 25 && back <= 27 && rep.Shape != ShapeMailRu {
						r.Failures = append(r.Failures, Failure{ResultType: "starttls-not-supported",
							SendingIP: fmt.Sprintf("%s.%d", rep.IPPrefix, 10+back), ReceivingMX: "mx2." + d,
							ReceivingIP: "192.0.2.20", Count: 12})
					}
				case DemoExpired:
					// mx2's certificate expired three days ago.
					if back <= 3 && rep.Shape != ShapeMailRu {
						n := vol / 2
						r.Successful -= n
						r.Failures = append(r.Failures, Failure{ResultType: "certificate-expired",
							SendingIP: fmt.Sprintf("%s.%d", rep.IPPrefix, 30+i), ReceivingMX: "mx2." + d,
							ReceivingIP: "198.51.100.25", Count: n})
					}
				case DemoUnlistedMX:
					// mx3 was added to DNS but not to the policy.
					if back <= 12 {
						n := vol / 5
						r.Successful -= n
						r.Failures = append(r.Failures, Failure{ResultType: "validation-failure",
							SendingIP: fmt.Sprintf("%s.%d", rep.IPPrefix, 50+i), ReceivingMX: "mx3." + d,
							ReceivingIP: "203.0.113.30", Count: n, ReasonCode: "mx not in policy"})
					}
				}
				out = append(out, r)
			}
		}
		// Someone else's domain whose rua points here.
		if back%3 == 0 {
			out = append(out, &Report{Reporter: Reporters[0], Day: day, Successful: 40,
				Policy: Policy{Type: "no-policy-found", Domain: DemoStranger}})
		}
	}
	return out
}

// DemoMailbox is the demo's rua mailbox: every report of DemoReports as a
// signed mail, plus what a real mailbox also holds: a forged report without
// a signature (stored, shown unverified, not counted) and mails that are not
// reports or are broken (quarantined).
func DemoMailbox(now time.Time, rcpt string) [][]byte {
	var msgs [][]byte
	for _, r := range DemoReports(now) {
		msgs = append(msgs, r.Mail(rcpt))
	}
	today := time.Date(now.UTC().Year(), now.UTC().Month(), now.UTC().Day(), 0, 0, 0, 0, time.UTC)
	forged := &Report{Reporter: Reporters[2], Day: today.AddDate(0, 0, -2), Successful: 100000, Seq: 7,
		Policy: Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: DemoExpired, MX: []string{"mx1." + DemoExpired, "mx2." + DemoExpired}}}
	signed := forged.Mail(rcpt)
	msgs = append(msgs, StripSignature(signed))
	msgs = append(msgs, BrokenMails(rcpt, today)...)
	return msgs
}

// StripSignature removes the DKIM-Signature header Sign put first: the
// mail as an unsigned sender would send it.
func StripSignature(msg []byte) []byte {
	for i := 0; i+2 < len(msg); i++ {
		// The signature header ends at the first CRLF not followed by
		// folding whitespace.
		if msg[i] == '\r' && msg[i+1] == '\n' && msg[i+2] != ' ' && msg[i+2] != '\t' {
			return msg[i+2:]
		}
	}
	return msg
}

// BrokenMails are mails a rua mailbox receives that hold no valid report:
// an auto-reply, a report whose gzip is cut off, and JSON that is not a
// report.
func BrokenMails(rcpt string, day time.Time) [][]byte {
	date := day.Add(-6 * time.Hour).Format(time.RFC1123Z)
	autoReply := "From: postmaster@mail.example.com\r\nTo: " + rcpt + "\r\nSubject: Out of office\r\nDate: " + date +
		"\r\nMessage-ID: <ooo-1@mail.example.com>\r\nContent-Type: text/plain\r\n\r\nI am away until Monday.\r\n"
	good := (&Report{Reporter: Reporters[0], Day: day.AddDate(0, 0, -1), Successful: 5, Seq: 9,
		Policy: Policy{Type: "sts", Mode: "testing", MaxAge: 86400, Domain: DemoReady, MX: []string{"mx1." + DemoReady}}}).JSON()
	gz := Gzip(good)
	truncated := gz[:len(gz)/2]
	return [][]byte{
		[]byte(autoReply),
		attachmentMail(rcpt, date, "<cut-1@reports.example>", "application/tlsrpt+gzip", "cut.json.gz", truncated),
		attachmentMail(rcpt, date, "<notreport-1@reports.example>", "application/tlsrpt+json", "x.json", []byte(`{"hello":"world"}`)),
	}
}

func attachmentMail(rcpt, date, msgID, ctype, name string, body []byte) []byte {
	return []byte("From: reports@reports.example\r\nTo: " + rcpt + "\r\nSubject: Report Domain: " + DemoReady +
		" Submitter: reports.example\r\nDate: " + date + "\r\nMessage-ID: " + msgID +
		"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nreport attached\r\n--b1\r\nContent-Type: " + ctype +
		"; name=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64lines(body) + "--b1--\r\n")
}

// b64lines is b in base64, in lines of 76 characters (RFC 2045 §6.8).
func b64lines(b []byte) string {
	var out strings.Builder
	s := base64.StdEncoding.EncodeToString(b)
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}
