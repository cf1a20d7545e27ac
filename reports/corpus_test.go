package reports

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// want is what a person reading a sample expects from it: the reports it
// holds (organisation, report-id, sum of the successful and failed
// session totals over its policies, number of policies), or the sentinel
// and reason it is refused with.
type want struct {
	reports []wantReport
	err     error
	reason  string
}

type wantReport struct {
	org, id         string
	ok, failed      int64
	policies, fdSum int // fdSum: sum of failed-session-count of all details
}

// corpus is every sample copied to testdata/corpus (licences allow it).
// Each line was checked against the sample by reading it; docs/parse.md
// lists the refused ones with the reason.
var corpus = map[string]want{
	"dmarc-report-viewer/testdata/smtp-tls-reports/google.json":       {reports: []wantReport{{"Google Inc.", "2025-05-22T00:00:00Z_foo-bar.io", 1, 0, 1, 0}}},
	"dmarc-report-viewer/testdata/smtp-tls-reports/microsoft.json":    {reports: []wantReport{{"Microsoft Corporation", "133925885310113267+random.net", 4, 0, 2, 0}}},
	"dmarc-report-viewer/testdata/smtp-tls-reports/no-contact.json":   {reports: []wantReport{{"server.com", "123_456", 1, 0, 1, 0}}},
	"dmarc-report-viewer/testdata/smtp-tls-reports/no-policy.json":    {reports: []wantReport{{"Google Inc.", "2025-03-27T00:00:00Z_foo-bar.io", 1, 0, 1, 0}}},
	"dmarc-report-viewer/testdata/smtp-tls-reports/no_ip_and_mx.json": {reports: []wantReport{{"Microsoft Corporation", "1234567890+", 0, 3, 1, 3}}},
	"dmarc-report-viewer/testdata/smtp-tls-reports/rfc-example.json":  {reports: []wantReport{rfcExample}},
	"mox/testdata/tlsreports/example.eml":                             {reports: []wantReport{{"Google Inc.", "2022-09-15T00:00:00Z_test.xmox.nl", 3, 0, 1, 0}}},
	"mox/testdata/tlsreports/microsoft.eml":                           {reports: []wantReport{{"Microsoft Corporation", "133198585438131172+test.xmox.nl", 2, 0, 1, 0}}},
	"mta-sts-exporter/examples/google.json":                           {reports: []wantReport{{"Google Inc.", "2024-02-17T00:00:00Z_example.com", 53, 0, 1, 0}}},
	"mta-sts-exporter/examples/microsoft-2.json":                      {reports: []wantReport{{"Microsoft Corporation", "133561180919336230+example.com", 7, 0, 1, 0}}},
	"mta-sts-exporter/examples/microsoft.json":                        {reports: []wantReport{{"Microsoft Corporation", "133526718584528772+example.com", 18, 0, 1, 0}}},
	"mta-sts-exporter/examples/rfc-errata-6241.json":                  {reports: []wantReport{rfcExample}},
	"mta-sts-exporter/examples/rfc.json":                              {reports: []wantReport{rfcExample}},
	"parsedmarc/samples/smtp_tls/google.com_smtp_tls_report.eml":      {reports: []wantReport{{"Google Inc.", "2024-09-03T00:00:00Z_cardinalhealth.ca", 48, 0, 1, 0}}},
	// Mail.ru: two details adding up to 2 under a failure total of 1.
	"parsedmarc/samples/smtp_tls/mail.ru.json":            {reports: []wantReport{{"Mail.ru", "b28254de-7b2e-be36-bb5c-4c3b92da8b25@mail.ru", 0, 1, 1, 2}}},
	"parsedmarc/samples/smtp_tls/rfc8460.json":            {reports: []wantReport{rfcExample}},
	"parsedmarc/samples/smtp_tls/smtp_tls.json":           {reports: []wantReport{{"Example Inc.", "2024-01-09T00:00:00Z_example.com", 0, 3, 1, 3}}},
	"stalwart-mail-auth/resources/tlsrpt/rpt01.eml":       {reports: []wantReport{rfcExample}},
	"stalwart-mail-auth/resources/tlsrpt/rpt01.json":      {reports: []wantReport{rfcExample}},
	"stalwart-mail-auth/resources/tlsrpt/rpt02.eml":       {reports: []wantReport{{"Google Inc.", "2020-01-01T00:00:00Z_example.com", 23, 1, 1, 1}}},
	"stalwart-mail-auth/resources/tlsrpt/rpt02.json":      {reports: []wantReport{{"Google Inc.", "2020-01-01T00:00:00Z_example.com", 23, 1, 1, 1}}},
	"stalwart-mail-auth/resources/tlsrpt/rpt03.json":      {err: ErrMalformed, reason: "policies[0].policy.policy-domain missing"},
	"tlsrpt-be/app/cmd/mail/test.eml":                     {reports: []wantReport{rfcExample}},
	"tlsrpt-be/app/cmd/mail/testing.json":                 {reports: []wantReport{{"Company-X", "report-id-of-report-over-email-1234", 5326, 303, 1, 303}}},
	"tlsrpt-be/report-2.json":                             {reports: []wantReport{{"Example LLC.", "2025-08-04T00:00:00Z_example.org", 13, 0, 1, 0}}},
	"tlsrpt-be/report.json":                               {reports: []wantReport{{"Example Inc.", "report-id-from-report.json", 99, 102, 1, 0}}},
	"tlsrpt-digest/testdata/tlsrpt_failure.eml":           {reports: []wantReport{{"Google Inc.", "2026-02-08T00:00:00Z_example.com", 4523, 2, 1, 2}}},
	"tlsrpt-digest/testdata/tlsrpt_success_google_1.eml":  {reports: []wantReport{{"Google Inc.", "2026-05-11T00:00:00Z_example.com", 1, 0, 1, 0}}},
	"tlsrpt-digest/testdata/tlsrpt_success_google_2.eml":  {reports: []wantReport{{"Google Inc.", "2026-05-12T00:00:00Z_example.com", 4, 0, 1, 0}}},
	"tlsrpt-digest/testdata/tlsrpt_success_microsoft.eml": {reports: []wantReport{{"Microsoft Corporation", "134232617934286362+example.com", 2, 0, 1, 0}}},
}

// sharedCorpus is the samples whose licences do not allow copying them
// here; they are read from the shared corpus when it is present.
var sharedCorpus = map[string]want{
	"tlsrpt-rs/tlsrpt/fixtures/empty.eml":      {err: ErrNoReport, reason: "no report in message"},
	"tlsrpt-rs/tlsrpt/fixtures/google1.eml":    {reports: []wantReport{{"Google Inc.", "2024-09-15T00:00:00Z_krvtz.net", 1, 0, 1, 0}}},
	"tlsrpt-rs/tlsrpt/fixtures/google2.eml":    {reports: []wantReport{{"Google Inc.", "2024-09-18T00:00:00Z_krvtz.net", 2, 0, 1, 0}}},
	"tlsrpt-rs/tlsrpt/fixtures/mail.ru.eml":    {reports: []wantReport{{"Mail.ru", "c96d67df-0440-57f7-6e96-c83824d0fdf2@mail.ru", 0, 1, 1, 1}}},
	"tlsrpt-rs/tlsrpt/fixtures/mail.ru.json":   {reports: []wantReport{{"Mail.ru", "c96d67df-0440-57f7-6e96-c83824d0fdf2@mail.ru", 0, 1, 1, 1}}},
	"tlsrpt-rs/tlsrpt/fixtures/microsoft1.eml": {reports: []wantReport{{"Microsoft Corporation", "133708152202987951+krvtz.net", 4, 0, 2, 0}}},
	"tlsrpt-rs/tlsrpt/fixtures/rfc8460.json":   {reports: []wantReport{rfcExample}},
	"mail-tls-rpt/t/data/email.eml":            {reports: []wantReport{{"Google Inc.", "2020-03-02T00:00:00Z_fastmaildmarc.com", 343, 0, 1, 0}}},
	"mail-tls-rpt/t/data/report.json":          {reports: []wantReport{{"Google Inc.", "2020-03-02T00:00:00Z_fastmaildmarc.com", 343, 0, 1, 0}}},
	// base64 text of a gzip file: neither a report nor a mail message.
	"mail-tls-rpt/t/data/report.json.gz.b64": {err: ErrNoReport, reason: "not a mail message"},
	// The doctored sample: an unknown result type "Testing", details (3)
	// over the failure total (2); the gzip sibling is a clean report.
	"tls-rpt-monitor/test/fixtures/microsoft-report.json":    {reports: []wantReport{{"Microsoft Corporation", "133988091029006454+josh.scot", 2, 2, 1, 3}}},
	"tls-rpt-monitor/test/fixtures/microsoft-report.json.gz": {reports: []wantReport{{"Microsoft Corporation", "133988091029006454+josh.scot", 2, 0, 1, 0}}},
}

// rfcExample is the RFC 8460 §4.5 example, as printed or corrected.
var rfcExample = wantReport{"Company-X", "5065427c-23d3-47ca-b6e0-946ea0e8c4be", 5326, 303, 1, 303}

// parseSample reads a file the way "tlsrpt parse" does: sniffed, a bare
// report or a message.
func parseSample(data []byte) ([]*Report, error) {
	if IsReportData(data) {
		r, err := Parse(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return []*Report{r}, nil
	}
	m, err := ReadMessage(bytes.NewReader(data), DefaultLimits())
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range m.Attachments {
		errs = append(errs, a.Err)
	}
	if len(m.Reports()) == 0 {
		return nil, errors.Join(errs...)
	}
	return m.Reports(), nil
}

func checkCorpus(t *testing.T, dir string, table map[string]want) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "SOURCES.md" {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		rel = filepath.ToSlash(rel)
		w, ok := table[rel]
		if !ok {
			return nil // a sample of the other table
		}
		seen[rel] = true
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			reps, err := parseSample(data)
			if w.err != nil {
				if !errors.Is(err, w.err) || !strings.Contains(err.Error(), w.reason) {
					t.Fatalf("parse = %v, want %v saying %q", err, w.err, w.reason)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse error %v", err)
			}
			if len(reps) != len(w.reports) {
				t.Fatalf("parse = %d reports, want %d", len(reps), len(w.reports))
			}
			for i, r := range reps {
				got := wantReport{org: r.OrganizationName, id: r.ReportID, policies: len(r.Policies)}
				for _, p := range r.Policies {
					got.ok += p.Summary.TotalSuccessfulSessionCount
					got.failed += p.Summary.TotalFailureSessionCount
					for _, d := range p.FailureDetails {
						got.fdSum += int(d.FailedSessionCount)
					}
				}
				if got != w.reports[i] {
					t.Errorf("report %d = %+v, want %+v", i, got, w.reports[i])
				}
				if r.DateRange.Start.Location().String() != "UTC" || r.DateRange.End.Before(r.DateRange.Start) {
					t.Errorf("report %d date range %v", i, r.DateRange)
				}
			}
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for name := range table {
		if !seen[name] {
			t.Errorf("sample %s is in the table but not in %s", name, dir)
		}
	}
}

func TestCorpus(t *testing.T) {
	checkCorpus(t, filepath.Join("..", "testdata", "corpus"), corpus)
	// Every copied sample has an expectation.
	filepath.WalkDir(filepath.Join("..", "testdata", "corpus"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "SOURCES.md" {
			rel, _ := filepath.Rel(filepath.Join("..", "testdata", "corpus"), path)
			if _, ok := corpus[filepath.ToSlash(rel)]; !ok {
				t.Errorf("sample %s has no expectation in the corpus table", rel)
			}
		}
		return nil
	})
}

// sharedCorpusDir holds the full sample corpus outside the repository.
const sharedCorpusDir = "/work/shared/corpus/tlsrpt"

func TestSharedCorpus(t *testing.T) {
	if _, err := os.Stat(sharedCorpusDir); err != nil {
		t.Skipf("shared corpus %s not present (its samples cannot be copied here: licences)", sharedCorpusDir)
	}
	checkCorpus(t, sharedCorpusDir, sharedCorpus)
}
