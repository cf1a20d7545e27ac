package rollout

import (
	"strings"
	"testing"
	"time"
)

func TestFactsApplyCheck(t *testing.T) {
	fromReports := Facts{Domain: "example.com", At: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC),
		Policy: CurrentPolicy{Mode: ModeTesting, MX: []string{"mx1.example.com"}, Source: PolicySourceReports}}

	f := fromReports
	res := &CheckResult{
		Record: RecordCheck{Valid: true, ID: "20261101T000000Z"},
		Policy: PolicyCheck{Valid: true, Mode: ModeTesting, MX: []string{"mx1.example.com", "mx2.example.com"}, MaxAge: 86400},
		Problems: []Problem{
			{Code: "testing-mode", Severity: "info", Message: "the policy is in testing"},
			{Code: "policy-certificate-invalid", Severity: "error", Message: "certificate expired", Fix: "renew the certificate of mta-sts.example.com"},
			{Code: "tlsrpt-missing", Severity: "warning", Message: "no TLS-RPT record"},
		},
	}
	if notes := f.ApplyCheck(res); len(notes) != 0 {
		t.Errorf("notes = %v, want none", notes)
	}
	if f.Policy.Source != PolicySourceLive || f.Policy.ID != "20261101T000000Z" || len(f.Policy.MX) != 2 {
		t.Errorf("policy = %+v, want the live one", f.Policy)
	}
	v := Evaluate(f, DefaultThresholds())
	if len(v.Blockers) == 0 || v.Blockers[0].Code != "policy-certificate-invalid" || v.Blockers[0].Source != SourceCheck ||
		!strings.Contains(v.Blockers[0].Message, "renew the certificate") {
		t.Errorf("first blocker = %+v, want policy-certificate-invalid from the check with its fix", v.Blockers)
	}
	if finding(v.Warnings, "tlsrpt-missing") == nil || finding(v.Warnings, "testing-mode") != nil || finding(v.Blockers, "testing-mode") != nil {
		t.Errorf("warnings = %+v", v.Warnings)
	}
	if v.Proposal == nil || v.Proposal.ID == "20261101T000000Z" || !strings.Contains(v.Proposal.Policy, "mx: mx2.example.com") {
		t.Errorf("proposal = %+v, want the live mx list and a new id", v.Proposal)
	}

	// Without a readable live policy the reports' policy stays.
	f = fromReports
	res = &CheckResult{Problems: []Problem{{Code: "policy-unreachable", Severity: "error", Message: "connection refused"}}}
	notes := f.ApplyCheck(res)
	if f.Policy.Source != PolicySourceReports || len(notes) != 1 {
		t.Errorf("policy %+v, notes %v; want the reports' policy and a note", f.Policy, notes)
	}
	if v := Evaluate(f, DefaultThresholds()); finding(v.Blockers, "policy-unreachable") == nil {
		t.Errorf("blockers = %+v, want policy-unreachable", v.Blockers)
	}

	// A check that did not run adds nothing but a note.
	f = fromReports
	if notes := f.ApplyCheck(&CheckResult{Error: "bad domain"}); len(notes) != 1 || f.CheckProblems != nil {
		t.Errorf("failed check: notes %v, problems %v", notes, f.CheckProblems)
	}
}
