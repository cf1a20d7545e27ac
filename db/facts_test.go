package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// factsAt is the moment the scenarios are evaluated at; its day is
// 2026-11-30, so "n days ago" is 2026-11-30 minus n.
var factsAt = time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)

const scenarioDomain = "example.com"

var scenarioMX = []string{"mx1.example.com", "mx2.example.com"}

// scenario writes reports into a fresh database through StoreReport.
type scenario struct {
	t    testing.TB
	d    *db.DB
	mode rollout.Mode
	mx   []string
	rs   []reports.Received
}

func newScenario(t *testing.T) *scenario {
	return &scenario{t: t, d: dbtest.New(t), mode: rollout.ModeTesting, mx: scenarioMX}
}

// report adds one report of org for the day daysAgo days before factsAt's
// day, with ok successful sessions and the failure details given (their
// counts are the failed total).
func (s *scenario) report(org string, daysAgo int, ok int64, details ...reports.FailureDetail) *reports.Received {
	start := rollout.UTCDay(factsAt).AddDate(0, 0, -daysAgo)
	var failed int64
	for _, d := range details {
		failed += d.FailedSessionCount
	}
	lines := []string{"version: STSv1", "mode: " + string(s.mode)}
	for _, m := range s.mx {
		lines = append(lines, "mx: "+m)
	}
	lines = append(lines, "max_age: 86400")
	rep := &reports.Report{
		OrganizationName: org,
		DateRange:        reports.DateRange{Start: start, End: start.Add(24*time.Hour - time.Second)},
		ContactInfo:      "tlsrpt@" + org,
		ReportID:         fmt.Sprintf("%s-%s-%d", org, start.Format("20060102"), len(s.rs)),
		Policies: []reports.PolicyResult{{
			Policy:         reports.Policy{Type: reports.PolicySTS, Strings: lines, Domain: scenarioDomain, MXHosts: s.mx},
			Summary:        reports.Summary{TotalSuccessfulSessionCount: ok, TotalFailureSessionCount: failed},
			FailureDetails: details,
		}},
	}
	raw, err := json.Marshal(rep)
	if err != nil {
		s.t.Fatal(err)
	}
	s.rs = append(s.rs, reports.Received{Report: rep, JSON: raw, Source: reports.SourceFile,
		SourceRef: "test", ReceivedAt: start.Add(30 * time.Hour)})
	return &s.rs[len(s.rs)-1]
}

// clean adds reports of each org on every day from daysAgo to 1.
func (s *scenario) clean(orgs []string, daysAgo int, ok int64) {
	for i := daysAgo; i >= 1; i-- {
		for _, o := range orgs {
			s.report(o, i, ok)
		}
	}
}

func detail(rt, mx, ip string, n int64) reports.FailureDetail {
	return reports.FailureDetail{ResultType: rt, ReceivingMXHostname: mx, SendingMTAIP: ip, FailedSessionCount: n,
		ReceivingIP: "192.0.2.25", FailureReasonCode: "X509_V_ERR_CERT_HAS_EXPIRED"}
}

// verdict stores the reports and evaluates the domain at factsAt.
func (s *scenario) verdict() (rollout.Facts, rollout.Verdict) {
	s.t.Helper()
	ctx := context.Background()
	for _, r := range s.rs {
		if _, _, err := s.d.StoreReport(ctx, r); err != nil {
			s.t.Fatalf("StoreReport(%s): %v", r.Report.ReportID, err)
		}
	}
	th, err := s.d.DomainThresholds(ctx, scenarioDomain)
	if err != nil {
		s.t.Fatal(err)
	}
	f, err := s.d.Facts(ctx, scenarioDomain, factsAt, th.SpanDays())
	if err != nil {
		s.t.Fatalf("Facts: %v", err)
	}
	return f, rollout.Evaluate(f, th)
}

var orgs = []string{"google.com", "microsoft.com", "mail.ru"}

func blockerCodes(v rollout.Verdict) []string {
	var out []string
	for _, b := range v.Blockers {
		out = append(out, b.Code)
	}
	return out
}

func warningCodes(v rollout.Verdict) []string {
	var out []string
	for _, b := range v.Warnings {
		out = append(out, b.Code)
	}
	return out
}

func findFinding(fs []rollout.Finding, code string) *rollout.Finding {
	for i := range fs {
		if fs[i].Code == code {
			return &fs[i]
		}
	}
	return nil
}

func TestFactsScenarios(t *testing.T) {
	tests := []struct {
		name     string
		build    func(s *scenario)
		blockers []string
		warnings []string
		check    func(t *testing.T, f rollout.Facts, v rollout.Verdict)
	}{
		{name: "clean three weeks from several reporters", build: func(s *scenario) {
			s.clean(orgs, 21, 200)
		}, check: func(t *testing.T, f rollout.Facts, v rollout.Verdict) {
			ev := v.Evidence
			if ev.Sessions != 3*14*200 || ev.Reporters != 3 || ev.ReportDays != 14 || ev.ObservedDays != 21 {
				t.Errorf("evidence: sessions %d reporters %d report days %d observed %d; want 8400, 3, 14, 21",
					ev.Sessions, ev.Reporters, ev.ReportDays, ev.ObservedDays)
			}
			if f.Policy.Source != rollout.PolicySourceReports || f.Policy.Mode != rollout.ModeTesting ||
				!slices.Equal(f.Policy.MX, scenarioMX) || f.Policy.MaxAge != 86400 {
				t.Errorf("policy from the reports = %+v", f.Policy)
			}
			if v.Proposal == nil || v.Proposal.RecordName != "_mta-sts.example.com." {
				t.Errorf("proposal = %+v", v.Proposal)
			}
		}},
		{name: "too short", build: func(s *scenario) {
			s.clean(orgs, 8, 500)
		}, blockers: []string{rollout.BlockerObservationTooShort}},
		{name: "one reporter only", build: func(s *scenario) {
			s.clean(orgs[:1], 21, 1000)
		}, blockers: []string{rollout.BlockerTooFewReporters}},
		{name: "expired certificate on one mx in the last days", build: func(s *scenario) {
			s.clean(orgs, 21, 1000)
			s.report("google.com", 2, 900, detail("certificate-expired", "mx2.example.com", "209.85.220.41", 40))
			s.report("microsoft.com", 1, 900, detail("certificate-expired", "mx2.example.com", "40.107.1.2", 45))
		}, blockers: []string{rollout.BlockerFailureRate, rollout.BlockerTLSFailures, rollout.BlockerFailureRateRising},
			check: func(t *testing.T, f rollout.Facts, v rollout.Verdict) {
				b := findFinding(v.Blockers, rollout.BlockerTLSFailures)
				if *b.Failures != 85 || !slices.Equal(b.MX, []string{"mx2.example.com"}) {
					t.Errorf("tls-failures: %d failures at %v, want 85 at mx2.example.com", *b.Failures, b.MX)
				}
				if b.Example == nil || b.Example.ReceivingMXHostname != "mx2.example.com" || b.Example.ReportID == "" ||
					b.Example.FailureReasonCode != "X509_V_ERR_CERT_HAS_EXPIRED" {
					t.Errorf("tls-failures example = %+v", b.Example)
				}
			}},
		{name: "policy fetch errors", build: func(s *scenario) {
			s.clean(orgs, 21, 1000)
			s.report("mail.ru", 3, 0, detail("sts-policy-fetch-error", "", "94.100.1.1", 1))
			s.report("google.com", 3, 0, detail("sts-policy-fetch-error", "", "209.85.220.41", 1))
		}, blockers: []string{rollout.BlockerPolicyHostFailures}},
		{name: "an mx in the reports missing from the policy", build: func(s *scenario) {
			s.clean(orgs, 21, 1000)
			s.report("google.com", 10, 0, detail("validation-failure", "mx3.example.com", "209.85.220.41", 1))
			s.report("microsoft.com", 10, 0, detail("validation-failure", "mx3.example.com", "40.107.1.2", 1))
		}, blockers: []string{rollout.BlockerMXNotInPolicy}, check: func(t *testing.T, f rollout.Facts, v rollout.Verdict) {
			if b := findFinding(v.Blockers, rollout.BlockerMXNotInPolicy); !slices.Equal(b.MX, []string{"mx3.example.com"}) {
				t.Errorf("mx-not-in-policy names %v", b.MX)
			}
		}},
		{name: "a rising failure rate", build: func(s *scenario) {
			s.clean(orgs, 21, 5000)
			for i := 4; i <= 14; i++ {
				s.report(orgs[i%3], i, 0, detail("dnssec-invalid", "", "", 1))
			}
			for i := 1; i <= 3; i++ {
				s.report(orgs[i%3], i, 0, detail("dnssec-invalid", "", "", 5))
			}
		}, blockers: []string{rollout.BlockerFailureRateRising}},
		{name: "old failures that stopped two weeks ago", build: func(s *scenario) {
			s.clean(orgs, 30, 1000)
			for i := 15; i <= 29; i++ {
				s.report(orgs[i%3], i, 0, detail("certificate-expired", "mx1.example.com", "209.85.220.41", 500))
			}
		}},
		{name: "one misbehaving sender", build: func(s *scenario) {
			s.clean(orgs, 21, 1000)
			for i := 1; i <= 12; i++ {
				s.report("mail.ru", i, 0, detail("certificate-not-trusted", "mx1.example.com", fmt.Sprintf("94.100.180.%d", i), 30))
			}
		}, warnings: []string{rollout.WarningSenderSide}, check: func(t *testing.T, f rollout.Facts, v rollout.Verdict) {
			w := findFinding(v.Warnings, rollout.WarningSenderSide)
			if w.Range != "94.100.180.0/24" || w.Organization != "mail.ru" || *w.Failures != 360 || *w.RangeBits != 24 {
				t.Errorf("sender-side = %s %s %d", w.Range, w.Organization, *w.Failures)
			}
		}},
		{name: "untrusted reports excluded and listed", build: func(s *scenario) {
			s.clean(orgs[:1], 21, 1000)
			for i := 1; i <= 14; i++ {
				r := s.report("forged.example", i, 5000)
				r.Source, r.DKIM, r.DKIMDomain, r.From = reports.SourceIMAP, reports.DKIMFail, "forged.example", "tlsrpt@forged.example"
			}
			r := s.report("forged.example", 1, 0, detail("certificate-expired", "mx1.example.com", "198.51.100.1", 900))
			r.Source, r.DKIM = reports.SourceIMAP, reports.DKIMNone
		}, blockers: []string{rollout.BlockerTooFewReporters}, check: func(t *testing.T, f rollout.Facts, v rollout.Verdict) {
			ev := v.Evidence
			if ev.ExcludedReports != 15 || len(ev.Excluded) != 1 || ev.Excluded[0].Organization != "forged.example" ||
				ev.Excluded[0].Sessions != 14*5000+900 {
				t.Errorf("excluded = %+v (%d reports), want forged.example with 15 reports", ev.Excluded, ev.ExcludedReports)
			}
			if ev.Sessions != 14*1000 || ev.Failures != 0 || len(ev.PerMX) != 0 {
				t.Errorf("untrusted reports counted: sessions %d failures %d per mx %v", ev.Sessions, ev.Failures, ev.PerMX)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScenario(t)
			tt.build(s)
			f, v := s.verdict()
			if got := blockerCodes(v); !slices.Equal(got, tt.blockers) {
				t.Errorf("blockers = %v, want %v", got, tt.blockers)
				for _, b := range v.Blockers {
					t.Logf("  %s: %s", b.Code, b.Message)
				}
			}
			if got := warningCodes(v); !slices.Equal(got, tt.warnings) {
				t.Errorf("warnings = %v, want %v", got, tt.warnings)
			}
			if v.Ready != (len(tt.blockers) == 0) {
				t.Errorf("ready = %v", v.Ready)
			}
			if tt.check != nil {
				tt.check(t, f, v)
			}
		})
	}
}

func TestFactsEnforceRegression(t *testing.T) {
	s := newScenario(t)
	s.mode = rollout.ModeEnforce
	s.clean(orgs, 21, 1000)
	for i := 4; i <= 17; i++ {
		s.report(orgs[i%3], i, 0, detail("certificate-expired", "mx1.example.com", "", 1))
	}
	s.report("google.com", 2, 0, detail("certificate-expired", "mx1.example.com", "209.85.220.41", 70))
	s.report("microsoft.com", 1, 0, detail("certificate-expired", "mx1.example.com", "40.107.1.2", 70))
	f, v := s.verdict()
	// In enforce the one blocker is not-in-testing: nothing to promote.
	if f.Policy.Mode != rollout.ModeEnforce || v.Ready || strings.Join(blockerCodes(v), ",") != rollout.BlockerNotInTesting {
		t.Fatalf("enforce domain: mode %s ready %v blockers %v", f.Policy.Mode, v.Ready, blockerCodes(v))
	}
	r := findFinding(v.Warnings, rollout.WarningRegression)
	if r == nil || *r.Failures != 140 || *r.BaseFailures != 14 {
		t.Fatalf("regression = %+v; warnings %v", r, warningCodes(v))
	}
	if v.Proposal == nil {
		t.Fatal("no rollback proposal")
	}
	p, err := rollout.ParsePolicy(v.Proposal.Policy)
	if err != nil || p.Mode != rollout.ModeTesting || !slices.Equal(p.MX, scenarioMX) {
		t.Errorf("rollback proposal %+v, %v", p, err)
	}
}

func TestFactsModeHistory(t *testing.T) {
	s := newScenario(t)
	for i := 30; i >= 1; i-- {
		s.mode = rollout.ModeNone
		if i <= 10 {
			s.mode = rollout.ModeTesting
		}
		for _, o := range orgs {
			s.report(o, i, 100)
		}
	}
	// On day 11 one reporter already saw testing: the run starts after.
	s.mode = rollout.ModeTesting
	s.report("google.com", 11, 1)
	f, v := s.verdict()
	if !slices.Equal(blockerCodes(v), []string{rollout.BlockerObservationTooShort}) {
		t.Errorf("blockers = %v", blockerCodes(v))
	}
	if v.Evidence.TestingSince == nil || !v.Evidence.TestingSince.Equal(rollout.UTCDay(factsAt).AddDate(0, 0, -10)) {
		t.Errorf("testing since %v, want 10 days ago", v.Evidence.TestingSince)
	}
	if len(f.ModeHistory) != 30 {
		t.Errorf("mode history has %d days, want 30", len(f.ModeHistory))
	}
	if v.Evidence.ObservedDays != 10 {
		t.Errorf("observed days = %d, want 10", v.Evidence.ObservedDays)
	}
}

func TestDomainThresholds(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	got, err := d.DomainThresholds(ctx, "Example.COM.")
	if err != nil || got != rollout.DefaultThresholds() {
		t.Fatalf("DomainThresholds() = %+v, %v; want the defaults", got, err)
	}
	want := rollout.DefaultThresholds()
	want.MinDays, want.MinReporters, want.MaxFailureRate = 21, 3, 0.0005
	if err := d.SetDomainThresholds(ctx, "example.com", want); err != nil {
		t.Fatal(err)
	}
	if got, err := d.DomainThresholds(ctx, "EXAMPLE.com"); err != nil || got != want {
		t.Errorf("DomainThresholds() = %+v, %v; want %+v", got, err, want)
	}
	bad := want
	bad.MinDays = 0
	if err := d.SetDomainThresholds(ctx, "example.com", bad); err == nil {
		t.Errorf("SetDomainThresholds accepted min_days 0")
	}
	// A column left NULL takes the default.
	if _, err := d.Pool.Exec(ctx, `UPDATE domain_settings SET min_days = NULL`); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.DomainThresholds(ctx, "example.com"); got.MinDays != rollout.DefaultMinDays || got.MinReporters != 3 {
		t.Errorf("NULL min_days: got %+v", got)
	}
	if err := d.ResetDomainThresholds(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.DomainThresholds(ctx, "example.com"); got != rollout.DefaultThresholds() {
		t.Errorf("after reset: %+v", got)
	}
}
