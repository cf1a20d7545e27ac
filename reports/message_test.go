package reports

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"
)

const testHeader = "From: \"TLS reports\" <noreply-smtp-tls-reporting@sender.example>\r\n" +
	"To: tlsrpt@example.com\r\n" +
	"Date: Thu, 02 May 2024 06:12:00 +0200\r\n" +
	"Message-ID: <abc.123@sender.example>\r\n" +
	"Subject: =?UTF-8?Q?Report_Domain:_example.com_Submitter:_sender.example?=\r\n" +
	"TLS-Report-Domain: example.com\r\n" +
	"TLS-Report-Submitter: sender.example\r\n" +
	"MIME-Version: 1.0\r\n"

// part is one MIME part of a test message.
type part struct {
	ctype, name, cte string
	body             []byte
}

func (p part) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Content-Type: %s\r\n", p.ctype)
	if p.name != "" {
		fmt.Fprintf(&b, "Content-Disposition: attachment; filename=\"%s\"\r\n", p.name)
	}
	body := p.body
	switch p.cte {
	case "base64":
		b.WriteString("Content-Transfer-Encoding: base64\r\n")
		enc := base64.StdEncoding.EncodeToString(body)
		var lines []string
		for len(enc) > 76 {
			lines = append(lines, enc[:76])
			enc = enc[76:]
		}
		body = []byte(strings.Join(append(lines, enc), "\r\n"))
	case "quoted-printable":
		b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n")
		var q bytes.Buffer
		w := quotedprintable.NewWriter(&q)
		w.Write(body)
		w.Close()
		body = q.Bytes()
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.String()
}

// multipart builds a multipart body (without the outer header lines but
// with its Content-Type line) from parts.
func multipart(subtype, boundary string, parts ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Content-Type: multipart/%s; report-type=\"tlsrpt\"; boundary=\"%s\"\r\n\r\n", subtype, boundary)
	b.WriteString("This is a multipart message in MIME format.\r\n")
	for _, p := range parts {
		fmt.Fprintf(&b, "\r\n--%s\r\n%s", boundary, p)
	}
	fmt.Fprintf(&b, "\r\n--%s--\r\n", boundary)
	return b.String()
}

var textPart = part{ctype: "text/plain; charset=us-ascii", body: []byte("This is an aggregate TLS report.")}.String()

func TestReadMessage(t *testing.T) {
	report := []byte(validReport)
	zipped := gz(t, validReport)
	tests := []struct {
		name    string
		msg     string
		reports int
	}{
		{"multipart/report gzip base64", multipart("report", "b1", textPart,
			part{"application/tlsrpt+gzip", "s!example.com!1!2.json.gz", "base64", zipped}.String()), 1},
		{"gzip type holding plain JSON", multipart("report", "b1", textPart,
			part{"application/tlsrpt+gzip", "r.json.gz", "base64", report}.String()), 1},
		{"json type holding gzip", multipart("report", "b1",
			part{"application/tlsrpt+json", "r.json", "base64", zipped}.String()), 1},
		{"tlsrpt+json quoted-printable", multipart("report", "b1", textPart,
			part{"application/tlsrpt+json", "r.json", "quoted-printable", report}.String()), 1},
		{"bare application/tlsrpt", multipart("report", "b1", part{"application/tlsrpt", "", "", report}.String()), 1},
		{"application/gzip", multipart("mixed", "b1", part{"application/gzip", "", "base64", zipped}.String()), 1},
		{"application/x-gzip", multipart("mixed", "b1", part{"application/x-gzip", "", "base64", zipped}.String()), 1},
		{"application/json", multipart("mixed", "b1", part{"application/json", "", "", report}.String()), 1},
		{"octet-stream .json.gz", multipart("mixed", "b1", textPart,
			part{"application/octet-stream", "report.JSON.GZ", "base64", zipped}.String()), 1},
		{"octet-stream .json", multipart("mixed", "b1",
			part{"application/octet-stream", "report.json", "base64", report}.String()), 1},
		{"non-multipart body", part{"application/tlsrpt+gzip", "r.json.gz", "base64", zipped}.String(), 1},
		{"forwarded message/rfc822", multipart("mixed", "outer", textPart,
			"Content-Type: message/rfc822\r\n\r\n"+testHeader+multipart("report", "inner", textPart,
				part{"application/tlsrpt+gzip", "r.json.gz", "base64", zipped}.String())), 1},
		{"two reports", multipart("mixed", "b1",
			part{"application/tlsrpt+gzip", "a.json.gz", "base64", zipped}.String(),
			part{"application/tlsrpt+json", "b.json", "", report}.String()), 2},
		{"unpadded base64, no closing boundary", "Content-Type: multipart/report; boundary=\"b1\"\r\n\r\n--b1\r\n" +
			"Content-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			strings.TrimRight(base64.StdEncoding.EncodeToString(append(report, '\n')), "=") + "\r\n", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ReadMessage(strings.NewReader(testHeader+tt.msg), DefaultLimits())
			if err != nil {
				t.Fatalf("ReadMessage() error %v", err)
			}
			if got := len(m.Reports()); got != tt.reports || len(m.Attachments) != tt.reports {
				t.Fatalf("ReadMessage() = %d reports in %d attachments, want %d: %+v", got, len(m.Attachments), tt.reports, m.Attachments)
			}
			for _, a := range m.Attachments {
				// Quoted-printable turns line breaks into CRLF; the rest must be
				// the report as sent.
				js := strings.TrimSpace(strings.ReplaceAll(string(a.JSON), "\r\n", "\n"))
				if a.Report.ReportID != "r-1" || js != validReport {
					t.Errorf("ReadMessage() attachment %q = %+v, json %q", a.Name, a.Report, a.JSON)
				}
			}
			want := Message{
				MessageID: "abc.123@sender.example", From: "noreply-smtp-tls-reporting@sender.example",
				Subject:      "Report Domain: example.com Submitter: sender.example",
				ReportDomain: "example.com", Submitter: "sender.example",
				Date: time.Date(2024, 5, 2, 4, 12, 0, 0, time.UTC),
			}
			if m.MessageID != want.MessageID || m.From != want.From || m.Subject != want.Subject ||
				m.ReportDomain != want.ReportDomain || m.Submitter != want.Submitter || !m.Date.Equal(want.Date) {
				t.Errorf("ReadMessage() headers = %+v, want %+v", m, want)
			}
		})
	}
}

func TestReadMessageRefused(t *testing.T) {
	zipped := gz(t, validReport)
	corrupt := append([]byte(nil), zipped...)
	corrupt[len(corrupt)-6] ^= 0xff
	small := DefaultLimits()
	small.MaxMessageBytes = 1000
	deep := part{"application/tlsrpt+gzip", "r.json.gz", "base64", zipped}.String()
	for i := 0; i < 12; i++ {
		deep = multipart("mixed", fmt.Sprintf("d%d", i), deep)
	}
	var many []string
	for i := 0; i < 120; i++ {
		many = append(many, textPart)
	}
	tests := []struct {
		name   string
		msg    string
		lim    Limits
		want   error
		reason string
	}{
		{"no report", multipart("mixed", "b1", textPart, part{"text/html", "", "", []byte("<p>hi</p>")}.String()), Limits{}, ErrNoReport, "no report"},
		{"octet-stream without report name", multipart("mixed", "b1", part{"application/octet-stream", "photo.jpg", "base64", zipped}.String()), Limits{}, ErrNoReport, "no report"},
		{"plain text body", "Content-Type: text/plain\r\n\r\nhello\r\n", Limits{}, ErrNoReport, "no report"},
		{"message too large", multipart("report", "b1", textPart, part{"application/tlsrpt+gzip", "r.json.gz", "base64", zipped}.String()), small, ErrTooLarge, "over 1000 bytes"},
		{"mime too deep", deep, Limits{}, ErrTooLarge, "mime nesting deeper than 10"},
		{"too many parts", multipart("mixed", "b1", many...), Limits{}, ErrTooLarge, "more than 100 mime parts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := ReadMessage(strings.NewReader(testHeader+tt.msg), tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ReadMessage() = %+v, %v; want %v", m, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("ReadMessage() error %q does not say %q", err, tt.reason)
			}
		})
	}

	t.Run("not a mail message", func(t *testing.T) {
		_, err := ReadMessage(strings.NewReader("H4sIAAAAAAAAAHVQy2rEMAz8leJztJikPTSn3krvPW1\n"), Limits{})
		if !errors.Is(err, ErrNoReport) {
			t.Fatalf("ReadMessage() error %v, want ErrNoReport", err)
		}
	})

	t.Run("broken and good parts", func(t *testing.T) {
		msg := testHeader + multipart("mixed", "b1",
			part{"application/tlsrpt+gzip", "bad.json.gz", "base64", corrupt}.String(),
			part{"application/tlsrpt+json", "notreport.json", "", []byte(`{"hello": "world"}`)}.String(),
			part{"application/tlsrpt+gzip", "good.json.gz", "base64", zipped}.String())
		m, err := ReadMessage(strings.NewReader(msg), Limits{})
		if err != nil {
			t.Fatalf("ReadMessage() error %v", err)
		}
		if len(m.Attachments) != 3 || len(m.Reports()) != 1 {
			t.Fatalf("ReadMessage() attachments = %+v, want 3 with 1 report", m.Attachments)
		}
		for i, reason := range []string{"bad.json.gz", "notreport.json"} {
			a := m.Attachments[i]
			if !errors.Is(a.Err, ErrMalformed) || !strings.Contains(a.Err.Error(), reason) || a.Report != nil {
				t.Errorf("attachment %d = %+v, want ErrMalformed naming %q", i, a, reason)
			}
		}
	})

	t.Run("all parts broken", func(t *testing.T) {
		msg := testHeader + multipart("report", "b1", textPart,
			part{"application/tlsrpt+gzip", "bad.json.gz", "base64", zipped[:len(zipped)/2]}.String())
		m, err := ReadMessage(strings.NewReader(msg), Limits{})
		if err != nil {
			t.Fatalf("ReadMessage() error %v, want the message with Attachment.Err", err)
		}
		if len(m.Attachments) != 1 || !errors.Is(m.Attachments[0].Err, ErrMalformed) {
			t.Fatalf("ReadMessage() attachments = %+v, want one ErrMalformed", m.Attachments)
		}
	})

	t.Run("report part over the report limit", func(t *testing.T) {
		lim := DefaultLimits()
		lim.MaxReportBytes = 100
		msg := testHeader + multipart("report", "b1", part{"application/tlsrpt+gzip", "r.json.gz", "base64", zipped}.String())
		m, err := ReadMessage(strings.NewReader(msg), lim)
		if err != nil {
			t.Fatalf("ReadMessage() error %v", err)
		}
		if len(m.Attachments) != 1 || !errors.Is(m.Attachments[0].Err, ErrTooLarge) {
			t.Fatalf("ReadMessage() attachments = %+v, want one ErrTooLarge", m.Attachments)
		}
	})
}

// TestReadMessageNoPolicyDomain: a report whose policies leave out
// policy-domain (Postfix with tlsrpt-reporter 0.5.0) counts for the domain
// the mail names in TLS-Report-Domain, else in the RFC 8460 file name; a
// mail naming no valid domain still has it refused.
func TestReadMessageNoPolicyDomain(t *testing.T) {
	noDomain := strings.Replace(validReport, `"policy-domain": "example.com",`, "", 1)
	if noDomain == validReport {
		t.Fatal("the test report has no policy-domain to remove")
	}
	header := func(reportDomain string) string {
		return strings.Replace(testHeader, "TLS-Report-Domain: example.com\r\n", reportDomain, 1)
	}
	tests := []struct {
		name, header, filename, want string
	}{
		{"from the header", header("TLS-Report-Domain: Mail.Example.ORG.\r\n"), "r.json", "mail.example.org"},
		{"header wins over the file name", header("TLS-Report-Domain: example.net\r\n"), "s.example!other.example!1!2.json", "example.net"},
		{"from the file name", header(""), "sender.example!files.example!1714521600!1714607999!x.json", "files.example"},
		{"invalid header, file name", header("TLS-Report-Domain: <b>x</b>\r\n"), "s!files.example!1!2.json", "files.example"},
		{"no domain anywhere", header(""), "report.json", ""},
		{"invalid header only", header("TLS-Report-Domain: not a domain\r\n"), "report.json", ""},
		{"single label", header("TLS-Report-Domain: localhost\r\n"), "report.json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg := tt.header + multipart("report", "b1", textPart,
				part{"application/tlsrpt+json", tt.filename, "", []byte(noDomain)}.String())
			m, err := ReadMessage(strings.NewReader(msg), DefaultLimits())
			if err != nil {
				t.Fatalf("ReadMessage() error %v", err)
			}
			if len(m.Attachments) != 1 {
				t.Fatalf("ReadMessage() = %d attachments, want 1", len(m.Attachments))
			}
			a := m.Attachments[0]
			if tt.want == "" {
				if a.Err == nil || !errors.Is(a.Err, ErrMalformed) || !strings.Contains(a.Err.Error(), "policy-domain missing") {
					t.Fatalf("attachment error = %v, want ErrMalformed naming policy-domain", a.Err)
				}
				return
			}
			if a.Err != nil {
				t.Fatalf("attachment error = %v", a.Err)
			}
			for _, p := range a.Report.Policies {
				if p.Policy.Domain != tt.want {
					t.Errorf("policy domain = %q, want %q", p.Policy.Domain, tt.want)
				}
			}
			// The stored JSON is the report as sent, without the domain.
			if bytes.Contains(a.JSON, []byte("policy-domain")) {
				t.Errorf("the report's JSON was changed: %s", a.JSON)
			}
		})
	}
	// A report naming its policy domain keeps it whatever the mail says.
	msg := header("TLS-Report-Domain: other.example\r\n") + multipart("report", "b1",
		part{"application/tlsrpt+json", "r.json", "", []byte(validReport)}.String())
	m, err := ReadMessage(strings.NewReader(msg), DefaultLimits())
	if err != nil || m.Attachments[0].Report == nil {
		t.Fatalf("ReadMessage() = %v, %v", m, err)
	}
	if d := m.Attachments[0].Report.Policies[0].Policy.Domain; d != "example.com" {
		t.Errorf("policy domain = %q, want the report's own example.com", d)
	}
}
