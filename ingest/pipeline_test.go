package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

var testNow = time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC)

func reportJSON(org, id string) string {
	return fmt.Sprintf(`{"organization-name":%q,"date-range":{"start-datetime":"2026-03-01T00:00:00Z","end-datetime":"2026-03-01T23:59:59Z"},
"contact-info":"smtp-tls-reporting@%s","report-id":%q,"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mx.example.com","max_age: 86400"],
"policy-domain":"example.com","mx-host":["mx.example.com"]},"summary":{"total-successful-session-count":10,"total-failure-session-count":1},
"failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"198.51.100.7","receiving-mx-hostname":"mx.example.com","failed-session-count":1}]}]}`, org, org, id)
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

// mail builds a report mail with one attachment per body (gzip).
func mail(from string, date time.Time, bodies ...[]byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: tlsrpt@example.com\r\nSubject: Report Domain: example.com\r\nDate: %s\r\nMessage-ID: <m1@example.net>\r\nTLS-Report-Domain: example.com\r\nTLS-Report-Submitter: example.net\r\n", from, date.Format(time.RFC1123Z))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"BOUND\"\r\n\r\n")
	b.WriteString("--BOUND\r\nContent-Type: text/plain\r\n\r\nThis is a TLS report.\r\n")
	for i, body := range bodies {
		fmt.Fprintf(&b, "--BOUND\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Disposition: attachment; filename=\"r%d.json.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", i)
		enc := base64.StdEncoding.EncodeToString(body)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--BOUND--\r\n")
	return []byte(b.String())
}

func newPipeline(t *testing.T) (*ingest.Pipeline, *db.DB) {
	t.Helper()
	d := dbtest.New(t)
	return &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits(), Now: func() time.Time { return testNow }}, d
}

func count(t *testing.T, d *db.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := d.Pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestPipelineReport(t *testing.T) {
	p, d := newPipeline(t)
	ctx := context.Background()
	body := gz(reportJSON("google.com", "p1"))
	out, err := p.Report(ctx, body, reports.SourceHTTPS, "192.0.2.1")
	if err != nil || out != (ingest.Outcome{Reports: 1, New: 1}) {
		t.Fatalf("Report() = %+v, %v", out, err)
	}
	// The same report as plain JSON is the same report.
	out, err = p.Report(ctx, []byte(reportJSON("google.com", "p1")), reports.SourceFile, "p1.json")
	if err != nil || out != (ingest.Outcome{Reports: 1, Duplicates: 1}) {
		t.Fatalf("Report() again = %+v, %v", out, err)
	}
	for range 2 {
		out, err = p.Report(ctx, body[:len(body)/2], reports.SourceHTTPS, "192.0.2.2")
		if err != nil || !out.Quarantined || out.Refused != 1 || out.Reason == "" {
			t.Fatalf("Report(truncated) = %+v, %v", out, err)
		}
	}
	if n := count(t, d, `SELECT count(*) FROM quarantine WHERE source = 'https'`); n != 1 {
		t.Errorf("quarantine rows = %d, want 1 (same bytes twice)", n)
	}
	if n := count(t, d, `SELECT count(*) FROM reports`); n != 1 {
		t.Errorf("reports rows = %d, want 1", n)
	}
}

func TestPipelineMessage(t *testing.T) {
	p, d := newPipeline(t)
	ctx := context.Background()
	var dkimCalls int
	p.VerifyDKIM = func(ctx context.Context, raw []byte, from string) (reports.DKIMResult, string) {
		dkimCalls++
		return reports.DKIMPass, "google.com"
	}
	good := mail("noreply-smtp-tls-reporting@google.com", testNow, gz(reportJSON("google.com", "m1")), gz(reportJSON("google.com", "m2")))
	out, err := p.Message(ctx, good, reports.SourceIMAP, "INBOX/1")
	if err != nil || out != (ingest.Outcome{Reports: 2, New: 2}) {
		t.Fatalf("Message(good) = %+v, %v", out, err)
	}
	if n := count(t, d, `SELECT count(*) FROM reports WHERE trusted AND dkim = 'pass' AND dkim_domain = 'google.com' AND message_id = 'm1@example.net' AND submitter = 'example.net'`); n != 2 {
		t.Errorf("trusted reports with provenance = %d, want 2", n)
	}

	// One good part and one corrupt: the good one is stored, the message
	// quarantined with the broken part's reason.
	mixed := mail("noreply-smtp-tls-reporting@google.com", testNow, gz(reportJSON("google.com", "m3")), []byte("\x1f\x8bnot gzip"))
	out, err = p.Message(ctx, mixed, reports.SourceIMAP, "INBOX/2")
	if err != nil || out.New != 1 || out.Refused != 1 || !out.Quarantined || !strings.Contains(out.Reason, "r1.json.gz") {
		t.Fatalf("Message(mixed) = %+v, %v", out, err)
	}

	// No report at all.
	none := []byte("From: someone@example.org\r\nSubject: hello\r\n\r\nJust text.\r\n")
	out, err = p.Message(ctx, none, reports.SourceIMAP, "INBOX/3")
	if err != nil || out.Reports != 0 || !out.Quarantined {
		t.Fatalf("Message(none) = %+v, %v", out, err)
	}
	var reasons []string
	rows, _ := d.Pool.Query(ctx, `SELECT reason FROM quarantine ORDER BY id`)
	for rows.Next() {
		var r string
		rows.Scan(&r)
		reasons = append(reasons, r)
	}
	if len(reasons) != 2 || !strings.Contains(reasons[1], "no report") {
		t.Errorf("quarantine reasons = %q", reasons)
	}
	if dkimCalls != 2 {
		t.Errorf("VerifyDKIM called %d times, want 2 (not for a message without reports)", dkimCalls)
	}
}

func TestPipelineDKIMTempError(t *testing.T) {
	p, d := newPipeline(t)
	ctx := context.Background()
	p.VerifyDKIM = func(ctx context.Context, raw []byte, from string) (reports.DKIMResult, string) {
		return reports.DKIMTempError, "google.com"
	}
	recent := mail("x@google.com", testNow.Add(-time.Hour), gz(reportJSON("google.com", "t1")))
	if _, err := p.Message(ctx, recent, reports.SourceIMAP, "INBOX/1"); !errors.Is(err, ingest.ErrRetryLater) {
		t.Fatalf("Message(recent, temperror) = %v, want ErrRetryLater", err)
	}
	old := mail("x@google.com", testNow.Add(-48*time.Hour), gz(reportJSON("google.com", "t1")))
	out, err := p.Message(ctx, old, reports.SourceIMAP, "INBOX/1")
	if err != nil || out.New != 1 {
		t.Fatalf("Message(old, temperror) = %+v, %v", out, err)
	}
	if n := count(t, d, `SELECT count(*) FROM reports WHERE NOT trusted AND dkim = 'temperror'`); n != 1 {
		t.Errorf("untrusted temperror reports = %d, want 1", n)
	}
}

func TestPipelineStoreDown(t *testing.T) {
	p, d := newPipeline(t)
	d.Close()
	ctx := context.Background()
	if _, err := p.Report(ctx, []byte(reportJSON("google.com", "d1")), reports.SourceHTTPS, "x"); !errors.Is(err, ingest.ErrRetryLater) {
		t.Errorf("Report() with the store down = %v, want ErrRetryLater", err)
	}
	if _, err := p.Report(ctx, []byte("{}"), reports.SourceHTTPS, "x"); !errors.Is(err, ingest.ErrRetryLater) {
		t.Errorf("Report(broken) with the store down = %v, want ErrRetryLater (quarantine failed)", err)
	}
}

// TestPipelineImplausibleReport: a report claiming more than the limits
// allow is quarantined, the reason naming the field and the limit, both
// posted bare and mailed; nothing of it is stored.
func TestPipelineImplausibleReport(t *testing.T) {
	p, d := newPipeline(t)
	ctx := context.Background()
	over := strings.Replace(reportJSON("google.com", "p-over"), `"total-successful-session-count":10`,
		`"total-successful-session-count":999999999999999999`, 1)
	const want = "policies[0].summary.total-successful-session-count 999999999999999999 over the limit of 1000000000000"
	out, err := p.Report(ctx, []byte(over), reports.SourceHTTPS, "192.0.2.9")
	if err != nil || !out.Quarantined || out.Refused != 1 || !strings.Contains(out.Reason, want) {
		t.Fatalf("Report(over the limit) = %+v, %v; want quarantined naming %q", out, err, want)
	}
	out, err = p.Message(ctx, mail("noreply@example.net", testNow, gz(over)), reports.SourceIMAP, "INBOX/9")
	if err != nil || !out.Quarantined || !strings.Contains(out.Reason, "r0.json.gz") || !strings.Contains(out.Reason, want) {
		t.Fatalf("Message(over the limit) = %+v, %v; want quarantined naming the part and %q", out, err, want)
	}
	if n := count(t, d, `SELECT count(*) FROM quarantine WHERE reason LIKE '%over the limit of 1000000000000%'`); n != 2 {
		t.Errorf("quarantine rows naming the limit = %d, want 2", n)
	}
	if n := count(t, d, `SELECT count(*) FROM reports`); n != 0 {
		t.Errorf("reports rows = %d, want 0", n)
	}
}
