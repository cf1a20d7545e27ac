package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// runCmd runs tlsrpt with args and stdin, returning stdout, stderr and
// the exit code.
func runCmd(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
	code := Main(context.Background(), args, env)
	return out.String(), errb.String(), code
}

const corpusDir = "../../testdata/corpus"

func TestParseCommand(t *testing.T) {
	files := []string{
		filepath.Join(corpusDir, "mox/testdata/tlsreports/microsoft.eml"),          // zone-less datetimes
		filepath.Join(corpusDir, "mta-sts-exporter/examples/rfc.json"),             // mx-host as a string
		filepath.Join(corpusDir, "stalwart-mail-auth/resources/tlsrpt/rpt03.json"), // refused
		filepath.Join(corpusDir, "tlsrpt-digest/testdata/tlsrpt_failure.eml"),
		filepath.Join(t.TempDir(), "missing.json"),
	}
	stdout, stderr, code := runCmd(t, "", append([]string{"parse"}, files...)...)
	if code != 1 {
		t.Errorf("parse exit code = %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("parse stdout = %d lines, want 3:\n%s", len(lines), stdout)
	}
	type line struct {
		Org       string `json:"organization-name"`
		DateRange struct {
			Start string `json:"start-datetime"`
			End   string `json:"end-datetime"`
		} `json:"date-range"`
		ContactInfo *string `json:"contact-info"`
		ReportID    string  `json:"report-id"`
		Policies    []struct {
			Policy struct {
				Type    string   `json:"policy-type"`
				Strings []string `json:"policy-string"`
				Domain  string   `json:"policy-domain"`
				MXHost  []string `json:"mx-host"`
			} `json:"policy"`
			Summary struct {
				OK   *int64 `json:"total-successful-session-count"`
				Fail *int64 `json:"total-failure-session-count"`
			} `json:"summary"`
			FailureDetails []map[string]any `json:"failure-details"`
		} `json:"policies"`
	}
	var got []line
	for _, l := range lines {
		var v line
		dec := json.NewDecoder(strings.NewReader(l))
		dec.DisallowUnknownFields() // the contract: RFC 8460 names only
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("stdout line %q: %v", l, err)
		}
		for _, p := range v.Policies {
			if p.Policy.MXHost == nil || p.Summary.OK == nil || p.Summary.Fail == nil {
				t.Errorf("line %q: mx-host must be a list and both totals present", l)
			}
		}
		got = append(got, v)
	}
	if got[0].Org != "Microsoft Corporation" || got[0].DateRange.Start != "2023-01-10T00:00:00Z" || got[0].DateRange.End != "2023-01-10T23:59:59Z" {
		t.Errorf("microsoft.eml = %+v, want RFC 3339 UTC datetimes", got[0])
	}
	if h := got[1].Policies[0].Policy.MXHost; len(h) != 1 || h[0] != "*.mail.company-y.example" {
		t.Errorf("rfc.json mx-host = %q, want a list of the one string", h)
	}
	if fd := got[2].Policies[0].FailureDetails; len(fd) != 1 || fd[0]["result-type"] != "certificate-expired" {
		t.Errorf("tlsrpt_failure.eml failure-details = %v", fd)
	}
	errLines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if len(errLines) != 2 || !strings.HasPrefix(errLines[0], files[2]+": ") || !strings.Contains(errLines[0], "policy-domain missing") ||
		!strings.HasPrefix(errLines[1], files[4]+": ") {
		t.Errorf("parse stderr = %q, want one line for rpt03.json and one for missing.json", stderr)
	}
}

func TestParseCommandStdin(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(corpusDir, "parsedmarc/samples/smtp_tls/mail.ru.json"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCmd(t, string(data), "parse", "-")
	if code != 0 || stderr != "" || strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, `"organization-name":"Mail.ru"`) {
		t.Errorf("parse - = %d, %q, %q", code, stdout, stderr)
	}
	// A message that holds no report fails with its own reason.
	_, stderr, code = runCmd(t, "From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n", "parse", "-")
	if code != 1 || !strings.HasPrefix(stderr, "-: ") || !strings.Contains(stderr, "no report") {
		t.Errorf("parse - (no report) = %d, %q", code, stderr)
	}
	// A bare report is bounded by the report limit, not the message one.
	big, err := os.ReadFile(filepath.Join(corpusDir, "stalwart-mail-auth/resources/tlsrpt/rpt01.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCmd(t, string(big), "parse", "-max-message-bytes", "1000", "-max-report-bytes", "4000", "-"); code != 0 {
		t.Errorf("parse of a %d-byte report with a 1000-byte message limit = %d, %q", len(big), code, stderr)
	}
	if _, stderr, code := runCmd(t, string(big), "parse", "-max-report-bytes", "1000", "-max-message-bytes", "1000", "-"); code != 1 || !strings.Contains(stderr, "over 1000 bytes") {
		t.Errorf("parse of a %d-byte report over both limits = %d, %q", len(big), code, stderr)
	}
	if _, _, code := runCmd(t, "", "parse"); code != 2 {
		t.Errorf("parse without files exit code = %d, want 2", code)
	}
}

// TestParseCommandCorpus runs every copied sample through the command:
// each is printed or refused, never both, never neither.
func TestParseCommandCorpus(t *testing.T) {
	var files []string
	filepath.WalkDir(corpusDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() != "SOURCES.md" {
			files = append(files, path)
		}
		return nil
	})
	if len(files) < 30 {
		t.Fatalf("found %d samples in %s, want 30", len(files), corpusDir)
	}
	stdout, stderr, code := runCmd(t, "", append([]string{"parse"}, files...)...)
	// One sample is refused (rpt03.json); the others hold one report each.
	if code != 1 || strings.Count(stdout, "\n") != len(files)-1 || strings.Count(stderr, "\n") != 1 {
		t.Errorf("parse corpus = %d, %d lines out, stderr %q", code, strings.Count(stdout, "\n"), stderr)
	}
}
