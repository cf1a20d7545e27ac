package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

const rolloutAt = "2026-11-30T08:00:00Z"

// storeRolloutReports writes, for each organisation, one report a day for
// the days days before 2026-11-30, in the given mode, each with ok
// successful sessions and the details given for the day one before.
func storeRolloutReports(t *testing.T, d *db.DB, mode string, days int, orgs []string, ok int64, last ...reports.FailureDetail) {
	t.Helper()
	day := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	for i := days; i >= 1; i-- {
		start := day.AddDate(0, 0, -i)
		for _, o := range orgs {
			pr := reports.PolicyResult{
				Policy: reports.Policy{Type: "sts", Domain: "example.com", MXHosts: []string{"mx1.example.com"},
					Strings: []string{"version: STSv1", "mode: " + mode, "mx: mx1.example.com", "max_age: 86400"}},
				Summary: reports.Summary{TotalSuccessfulSessionCount: ok},
			}
			if i == 1 {
				pr.FailureDetails = last
				for _, f := range last {
					pr.Summary.TotalFailureSessionCount += f.FailedSessionCount
				}
			}
			r := &reports.Report{OrganizationName: o, ReportID: fmt.Sprintf("%s-%d", o, i),
				DateRange: reports.DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
				Policies:  []reports.PolicyResult{pr}}
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := d.StoreReport(context.Background(), reports.Received{Report: r, JSON: raw,
				Source: reports.SourceFile, ReceivedAt: start.Add(30 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func runRolloutCmd(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
		if k == "DATABASE_URL" {
			return url
		}
		return ""
	}}
	code := Main(context.Background(), append([]string{"rollout"}, args...), env)
	return code, out.String(), errOut.String()
}

func TestRolloutCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	storeRolloutReports(t, d, "testing", 21, []string{"google.com", "microsoft.com"}, 500)

	code, out, errOut := runRolloutCmd(t, url, "example.com", "--offline", "--at", rolloutAt)
	if code != 0 || !strings.HasPrefix(out, "ready\n") {
		t.Fatalf("rollout = %d, stdout:\n%s\nstderr: %s", code, out, errOut)
	}
	for _, want := range []string{"14000 sessions, 0 failed", "google.com", "mode: enforce", "max_age: 604800", "_mta-sts.example.com. IN TXT \"v=STSv1; id=20261130T080000Z\""} {
		if !strings.Contains(out, want) {
			t.Errorf("human output lacks %q:\n%s", want, out)
		}
	}

	code, out, _ = runRolloutCmd(t, url, "--json", "example.com", "--offline", "--at", rolloutAt, "--min-reporters", "3")
	var v struct {
		Domain   string
		Mode     string
		Ready    bool
		Blockers []map[string]any
		Warnings []map[string]any
		Evidence map[string]any
		Proposal map[string]string
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if code != 1 || v.Ready || v.Domain != "example.com" || v.Mode != "testing" || len(v.Blockers) != 1 ||
		v.Blockers[0]["code"] != rollout.BlockerTooFewReporters || v.Blockers[0]["reporters"] != 2.0 || v.Blockers[0]["min_reporters"] != 3.0 {
		t.Errorf("--min-reporters 3: exit %d, verdict %+v", code, v)
	}
	if v.Proposal["record_value"] != "v=STSv1; id=20261130T080000Z" || v.Proposal["policy_url"] != "https://mta-sts.example.com/.well-known/mta-sts.txt" {
		t.Errorf("proposal = %v", v.Proposal)
	}

	// Stored thresholds apply until reset; flags win over them.
	if code, _, errOut := runRolloutCmd(t, url, "example.com", "--offline", "--at", rolloutAt, "--min-sessions", "20000", "--save-thresholds"); code != 1 {
		t.Errorf("--save-thresholds run = %d (%s), want 1", code, errOut)
	}
	code, out, _ = runRolloutCmd(t, url, "example.com", "--offline", "--at", rolloutAt)
	if code != 1 || !strings.HasPrefix(out, "blocked: too-few-sessions: 14000 sessions") || !strings.Contains(out, "min_sessions=20000") {
		t.Errorf("stored min_sessions not applied: %d\n%s", code, out)
	}
	if code, _, _ := runRolloutCmd(t, url, "example.com", "--offline", "--at", rolloutAt, "--min-sessions", "100"); code != 0 {
		t.Errorf("flag over stored threshold: exit %d, want 0", code)
	}
	if code, _, _ := runRolloutCmd(t, url, "example.com", "--offline", "--at", rolloutAt, "--reset-thresholds"); code != 0 {
		t.Errorf("--reset-thresholds: exit %d, want 0", code)
	}

	// As seen two weeks earlier the domain was too new.
	code, out, _ = runRolloutCmd(t, url, "example.com", "--offline", "--at", "2026-11-16T00:00:00Z")
	if code != 1 || !strings.HasPrefix(out, "blocked: observation-too-short") {
		t.Errorf("--at two weeks back: %d\n%s", code, out)
	}
}

func TestRolloutCommandEnforce(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	storeRolloutReports(t, d, "enforce", 20, []string{"google.com", "microsoft.com"}, 500,
		reports.FailureDetail{ResultType: "certificate-expired", ReceivingMXHostname: "mx1.example.com", SendingMTAIP: "209.85.220.41", FailedSessionCount: 40})
	code, out, errOut := runRolloutCmd(t, url, "example.com", "--offline", "--at", rolloutAt)
	if code != 1 || !strings.HasPrefix(out, "enforce: regression: ") || !strings.Contains(out, "mode: testing") {
		t.Errorf("regression run = %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runRolloutCmd(t, url, "example.com", "--offline", "--at", "2026-11-25T00:00:00Z")
	if code != 0 || !strings.HasPrefix(out, "enforce: no regression") {
		t.Errorf("quiet enforce run = %d\n%s", code, out)
	}
	// A year on, the same reports are old: nothing recent to judge is
	// not "no regression".
	code, out, _ = runRolloutCmd(t, url, "example.com", "--offline", "--at", "2027-11-30T00:00:00Z", "--json")
	if code != 1 || !strings.Contains(out, `"code": "no-recent-reports"`) || !strings.Contains(out, `"code": "not-in-testing"`) {
		t.Errorf("enforce run a year after the last report = %d\n%s; want 1 with no-recent-reports and not-in-testing", code, out)
	}
	code, out, _ = runRolloutCmd(t, url, "example.com", "--offline", "--at", "2027-11-30T00:00:00Z")
	if code != 1 || !strings.HasPrefix(out, "enforce: no-recent-reports") {
		t.Errorf("enforce run a year after the last report = %d\n%s", code, out)
	}
}

func TestRolloutCommandUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"a.example", "b.example"},
		{"not a domain"},
		{"example.com", "--at", "yesterday"},
		{"example.com", "--min-days", "0"},
		{"example.com", "--max-failure-rate", "5"},
		{"example.com", "--no-such-flag"},
		{"example.com", "--save-thresholds", "--reset-thresholds"},
		{"example.com", "--ca-file", "/nonexistent/ca.pem"},
	} {
		// The URL is never used: usage errors come before the database.
		if code, _, errOut := runRolloutCmd(t, "postgres://127.0.0.1:1/none", args...); code != 2 || errOut == "" {
			t.Errorf("rollout %q = %d (stderr %q), want 2 with a message", args, code, errOut)
		}
	}
}
