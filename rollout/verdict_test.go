package rollout

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// at is the moment the table tests evaluate at: mid-day, so day(at) is
// 2026-11-30 and the evaluation window is 2026-11-16..2026-11-29.
var testAt = time.Date(2026, 11, 30, 9, 30, 0, 0, time.UTC)

var testMX = []string{"mx1.example.com", "*.mx.example.net"}

// cleanFacts builds facts of a domain in testing whose reports arrive on
// each of the n days before day(testAt) from the given organisations, each
// reporting perOrg successful sessions a day.
func cleanFacts(n int, orgs []string, perOrg int64) Facts {
	f := Facts{Domain: "example.com", At: testAt, SpanDays: DefaultThresholds().SpanDays(),
		Policy: CurrentPolicy{Mode: ModeTesting, MX: testMX, MaxAge: 86400, ID: "20261001T000000Z", Source: PolicySourceLive}}
	day := UTCDay(testAt)
	for i := n; i >= 1; i-- {
		d := day.AddDate(0, 0, -i)
		f.ModeHistory = append(f.ModeHistory, ModeDay{Day: d, Modes: []Mode{ModeTesting}})
		df := DayFacts{Day: d}
		for _, o := range orgs {
			f.Reporters = append(f.Reporters, ReporterDay{Day: d, Organization: o, Reports: 1, Successes: perOrg})
			df.Reports++
			df.Successes += perOrg
		}
		f.Days = append(f.Days, df)
	}
	return f
}

// fail records n failed sessions of result type rt at mx, reported by org
// from sending address ip on the day daysAgo days before day(testAt).
func fail(f *Facts, daysAgo int, org, rt, mx, ip string, n int64) {
	d := UTCDay(testAt).AddDate(0, 0, -daysAgo)
	found := false
	for i := range f.Days {
		if f.Days[i].Day.Equal(d) {
			f.Days[i].Failures += n
			found = true
		}
	}
	if !found {
		f.Days = append(f.Days, DayFacts{Day: d, Reports: 1, Failures: n})
	}
	found = false
	for i := range f.Reporters {
		if f.Reporters[i].Day.Equal(d) && f.Reporters[i].Organization == org {
			f.Reporters[i].Failures += n
			found = true
		}
	}
	if !found {
		f.Reporters = append(f.Reporters, ReporterDay{Day: d, Organization: org, Reports: 1, Failures: n})
	}
	f.Failures = append(f.Failures, FailureCount{Day: d, ResultType: rt, MX: mx, Failures: n})
	var rng netip.Prefix
	if ip != "" {
		rng = SenderRange(netip.MustParseAddr(ip))
	}
	f.Senders = append(f.Senders, SenderFailures{Day: d, Organization: org, Range: rng, Failures: n})
	f.Examples = append(f.Examples, FailureExample{Day: d, Organization: org, ReportID: "r-" + d.Format("0102"),
		ResultType: rt, SendingMTAIP: ip, ReceivingMXHostname: mx, FailedSessionCount: n})
}

var twoOrgs = []string{"Google Inc.", "Microsoft Corporation"}

func codes(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.Code)
	}
	return out
}

func finding(fs []Finding, code string) *Finding {
	for i := range fs {
		if fs[i].Code == code {
			return &fs[i]
		}
	}
	return nil
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name     string
		facts    func() Facts
		blockers []string
		warnings []string
	}{
		{"clean three weeks", func() Facts { return cleanFacts(21, twoOrgs, 100) }, nil, nil},
		{"too short", func() Facts { return cleanFacts(9, twoOrgs, 300) }, []string{BlockerObservationTooShort}, nil},
		{"reports on too few days", func() Facts {
			f := cleanFacts(21, twoOrgs, 200)
			// Drop the reports of 6 days in the evaluation window: 8 left.
			f.Days = slices.DeleteFunc(f.Days, func(d DayFacts) bool { return d.Day.Day()%2 == 0 && d.Day.Day() > 16 })
			return f
		}, []string{BlockerObservationTooShort}, nil},
		{"one reporter", func() Facts { return cleanFacts(21, twoOrgs[:1], 500) }, []string{BlockerTooFewReporters}, nil},
		{"too few sessions", func() Facts { return cleanFacts(21, twoOrgs, 10) }, []string{BlockerTooFewSessions}, nil},
		{"expired certificate on one mx", func() Facts {
			f := cleanFacts(21, twoOrgs, 1000)
			fail(&f, 2, "Google Inc.", "certificate-expired", "mx1.example.com", "209.85.1.1", 30)
			fail(&f, 1, "Microsoft Corporation", "certificate-expired", "mx1.example.com", "40.92.1.1", 40)
			return f
		}, []string{BlockerFailureRate, BlockerTLSFailures, BlockerFailureRateRising}, nil},
		{"one tls failure in the recent window", func() Facts {
			f := cleanFacts(21, twoOrgs, 1000)
			fail(&f, 5, "Google Inc.", "certificate-host-mismatch", "a.mx.example.net", "209.85.1.1", 1)
			fail(&f, 5, "Microsoft Corporation", "certificate-host-mismatch", "a.mx.example.net", "40.92.1.1", 1)
			return f
		}, []string{BlockerTLSFailures}, nil},
		{"policy fetch errors", func() Facts {
			f := cleanFacts(21, twoOrgs, 1000)
			fail(&f, 4, "Google Inc.", "sts-policy-fetch-error", "", "209.85.1.1", 1)
			fail(&f, 4, "Microsoft Corporation", "sts-policy-invalid", "", "40.92.1.1", 1)
			return f
		}, []string{BlockerPolicyHostFailures}, nil},
		{"mx not in policy", func() Facts {
			f := cleanFacts(21, twoOrgs, 1000)
			fail(&f, 12, "Google Inc.", "validation-failure", "mx3.example.org", "209.85.1.1", 1)
			fail(&f, 12, "Microsoft Corporation", "validation-failure", "mx3.example.org", "40.92.1.1", 1)
			return f
		}, []string{BlockerMXNotInPolicy}, nil},
		{"rising failure rate", func() Facts {
			f := cleanFacts(21, twoOrgs, 10000)
			// 0.01% before, 0.05% in the last three days: under the
			// rate limit, but rising.
			for i := 4; i <= 14; i++ {
				fail(&f, i, twoOrgs[i%2], "dnssec-invalid", "", "", 2)
			}
			for i := 1; i <= 3; i++ {
				fail(&f, i, twoOrgs[i%2], "dnssec-invalid", "", "", 10)
			}
			return f
		}, []string{BlockerFailureRateRising}, nil},
		{"old failures stopped two weeks ago", func() Facts {
			f := cleanFacts(28, twoOrgs, 1000)
			for i := 15; i <= 25; i++ {
				fail(&f, i, twoOrgs[i%2], "certificate-expired", "mx1.example.com", "209.85.1.1", 300)
			}
			return f
		}, nil, nil},
		{"one misbehaving sender", func() Facts {
			f := cleanFacts(21, twoOrgs, 1000)
			for i := 1; i <= 10; i++ {
				fail(&f, i, "Microsoft Corporation", "validation-failure", "mx1.example.com", "40.92.1."+strconv.Itoa(i), 50)
			}
			return f
		}, nil, []string{WarningSenderSide}},
		{"two failing reporters are not sender-side", func() Facts {
			f := cleanFacts(21, twoOrgs, 1000)
			fail(&f, 2, "Microsoft Corporation", "validation-failure", "mx1.example.com", "40.92.1.1", 50)
			fail(&f, 2, "Google Inc.", "validation-failure", "mx1.example.com", "209.85.1.1", 50)
			return f
		}, []string{BlockerFailureRate, BlockerTLSFailures, BlockerFailureRateRising}, nil},
		{"failures without a sending address are not sender-side", func() Facts {
			f := cleanFacts(21, twoOrgs, 1000)
			fail(&f, 2, "Microsoft Corporation", "validation-failure", "mx1.example.com", "", 50)
			return f
		}, []string{BlockerFailureRate, BlockerTLSFailures, BlockerFailureRateRising}, nil},
		{"mode none", func() Facts {
			f := cleanFacts(21, twoOrgs, 100)
			f.Policy.Mode = ModeNone
			return f
		}, []string{BlockerNotInTesting}, nil},
		{"no policy at all", func() Facts {
			f := cleanFacts(21, twoOrgs, 100)
			f.Policy = CurrentPolicy{Source: PolicySourceNone}
			f.ModeHistory = nil
			return f
		}, []string{BlockerNotInTesting, BlockerObservationTooShort}, nil},
		{"check problems", func() Facts {
			f := cleanFacts(21, twoOrgs, 100)
			f.CheckProblems = []CheckFinding{
				{Code: "testing-mode", Severity: "info", Message: "the policy is in testing"},
				{Code: "policy-certificate-invalid", Severity: "error", Message: "certificate expired"},
				{Code: "max-age-low", Severity: "warning", Message: "max_age 3600 is under a day"},
			}
			return f
		}, []string{"policy-certificate-invalid"}, []string{"max-age-low"}},
		{"enforced since a week", func() Facts {
			f := cleanFacts(21, twoOrgs, 100)
			for i := len(f.ModeHistory) - 7; i < len(f.ModeHistory); i++ {
				f.ModeHistory[i].Modes = []Mode{ModeEnforce}
			}
			f.Policy.Mode = ModeTesting // the live policy went back to testing today
			return f
		}, []string{BlockerObservationTooShort}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Evaluate(tt.facts(), DefaultThresholds())
			if got := codes(v.Blockers); !slices.Equal(got, orEmpty(tt.blockers)) {
				t.Errorf("blockers = %v, want %v", got, tt.blockers)
				for _, b := range v.Blockers {
					t.Logf("  %s: %s", b.Code, b.Message)
				}
			}
			if got := codes(v.Warnings); !slices.Equal(got, orEmpty(tt.warnings)) {
				t.Errorf("warnings = %v, want %v", got, tt.warnings)
			}
			if v.Ready != (len(tt.blockers) == 0) {
				t.Errorf("ready = %v with blockers %v", v.Ready, codes(v.Blockers))
			}
		})
	}
}

func TestEvaluateReadyProposal(t *testing.T) {
	f := cleanFacts(21, twoOrgs, 100)
	v := Evaluate(f, DefaultThresholds())
	if !v.Ready || v.Proposal == nil {
		t.Fatalf("Evaluate() ready = %v, proposal = %v; want ready with a proposal", v.Ready, v.Proposal)
	}
	p, err := ParsePolicy(v.Proposal.Policy)
	if err != nil {
		t.Fatalf("proposal policy does not parse: %v\n%s", err, v.Proposal.Policy)
	}
	if p.Mode != ModeEnforce || p.MaxAge != DefaultMaxAgeEnforce || !slices.Equal(p.MX, testMX) {
		t.Errorf("proposal = %+v, want enforce, max_age %d, mx %v", p, DefaultMaxAgeEnforce, testMX)
	}
	if v.Proposal.ID == f.Policy.ID || ValidID(v.Proposal.ID) != nil {
		t.Errorf("proposal id = %q, current %q: want a new valid id", v.Proposal.ID, f.Policy.ID)
	}
	// An id equal to the current one is moved on.
	f.Policy.ID = NewID(testAt)
	if v := Evaluate(f, DefaultThresholds()); v.Proposal == nil || v.Proposal.ID == f.Policy.ID {
		t.Errorf("proposal id equals the current id %q", f.Policy.ID)
	}
	ev := v.Evidence
	if ev.Sessions != 14*200 || ev.Reporters != 2 || ev.ReportDays != 14 || ev.ObservedDays != 21 {
		t.Errorf("evidence sessions %d reporters %d report days %d observed %d; want 2800, 2, 14, 21",
			ev.Sessions, ev.Reporters, ev.ReportDays, ev.ObservedDays)
	}
	if got := ev.Windows.Evaluation.String(); got != "2026-11-16..2026-11-29" {
		t.Errorf("evaluation window = %s, want 2026-11-16..2026-11-29", got)
	}
	if len(ev.PerDay) != ev.Windows.Span.Days {
		t.Errorf("per_day has %d days, want the span's %d", len(ev.PerDay), ev.Windows.Span.Days)
	}
}

func TestEvaluateEvidence(t *testing.T) {
	f := cleanFacts(21, twoOrgs, 1000)
	fail(&f, 2, "Google Inc.", "certificate-expired", "mx1.example.com", "209.85.1.1", 30)
	fail(&f, 1, "Microsoft Corporation", "certificate-expired", "mx1.example.com", "40.92.1.1", 40)
	v := Evaluate(f, DefaultThresholds())
	if !strings.HasPrefix(v.Blockers[0].Message, "70 of 14070 sessions failed in 2026-11-23..2026-11-29") {
		t.Errorf("first blocker message = %q", v.Blockers[0].Message)
	}
	b := finding(v.Blockers, BlockerTLSFailures)
	if b == nil || *b.Failures != 70 || !slices.Equal(b.MX, []string{"mx1.example.com"}) {
		t.Fatalf("tls-failures = %+v, want 70 failures at mx1.example.com", b)
	}
	if b.Example == nil || b.Example.Organization != "Microsoft Corporation" || b.Example.ResultType != "certificate-expired" {
		t.Errorf("tls-failures example = %+v, want the newest (Microsoft) one", b.Example)
	}
	if len(v.Evidence.PerMX) != 1 || v.Evidence.PerMX[0].RecentFailures != 70 || !v.Evidence.PerMX[0].InPolicy {
		t.Errorf("per_mx = %+v", v.Evidence.PerMX)
	}
	if len(v.Evidence.PerResultType) != 1 || v.Evidence.PerResultType[0].Failures != 70 {
		t.Errorf("per_result_type = %+v", v.Evidence.PerResultType)
	}
	if v.Proposal == nil {
		t.Errorf("a blocked domain still gets the enforce proposal to look at")
	}
}

func TestEvaluateSenderSide(t *testing.T) {
	for _, tc := range []struct{ ip, rng string }{
		{"40.92.1.7", "40.92.1.0/24"},
		{"2a01:111:f400:fe1e::15", "2a01:111:f400:fe1e::/64"},
	} {
		f := cleanFacts(21, twoOrgs, 100)
		for i := 1; i <= 5; i++ {
			fail(&f, i, "Microsoft Corporation", "validation-failure", "mx1.example.com", tc.ip, 20)
		}
		v := Evaluate(f, DefaultThresholds())
		w := finding(v.Warnings, WarningSenderSide)
		if !v.Ready || w == nil {
			t.Fatalf("%s: ready %v warnings %v blockers %v; want ready with sender-side", tc.ip, v.Ready, codes(v.Warnings), codes(v.Blockers))
		}
		if w.Range != tc.rng || w.Organization != "Microsoft Corporation" || *w.Failures != 100 {
			t.Errorf("sender-side = range %s org %s failures %d; want %s, Microsoft, 100", w.Range, w.Organization, *w.Failures, tc.rng)
		}
		if v.Evidence.SenderSideFailures != 100 || v.Evidence.Recent.Failures != 0 {
			t.Errorf("recent failures %d, sender-side %d; want 0 and 100", v.Evidence.Recent.Failures, v.Evidence.SenderSideFailures)
		}
	}
	// Details that say more than the summary (Mail.ru) leave out only
	// what the summary counted.
	f := cleanFacts(21, twoOrgs, 100)
	fail(&f, 1, "Microsoft Corporation", "validation-failure", "mx1.example.com", "40.92.1.7", 20)
	f.Senders[len(f.Senders)-1].Failures = 35
	v := Evaluate(f, DefaultThresholds())
	if w := finding(v.Warnings, WarningSenderSide); w == nil || *w.Failures != 20 {
		t.Errorf("sender-side with details over the summary = %+v, want 20 failures", w)
	}
	// Truncated sender groups rule it out.
	f = cleanFacts(21, twoOrgs, 100)
	fail(&f, 1, "Microsoft Corporation", "validation-failure", "mx1.example.com", "40.92.1.7", 20)
	f.SendersTruncated = true
	if v := Evaluate(f, DefaultThresholds()); v.Ready || finding(v.Warnings, WarningSenderSide) != nil {
		t.Errorf("truncated senders: ready %v warnings %v, want blocked without sender-side", v.Ready, codes(v.Warnings))
	}
}

func TestEvaluateWatch(t *testing.T) {
	enforced := func() Facts {
		f := cleanFacts(21, twoOrgs, 1000)
		f.Policy.Mode = ModeEnforce
		f.Policy.MaxAge = DefaultMaxAgeEnforce
		for i := range f.ModeHistory {
			f.ModeHistory[i].Modes = []Mode{ModeEnforce}
		}
		return f
	}
	f := enforced()
	v := Evaluate(f, DefaultThresholds())
	// Nothing to promote (not-in-testing, the rollout contract), nothing
	// to warn of.
	if v.Ready || strings.Join(codes(v.Blockers), ",") != BlockerNotInTesting || len(v.Warnings) != 0 || v.Proposal != nil {
		t.Errorf("quiet enforce: ready %v blockers %v warnings %v proposal %v; want only not-in-testing", v.Ready, codes(v.Blockers), codes(v.Warnings), v.Proposal)
	}
	f = enforced()
	for i := 4; i <= 17; i++ {
		fail(&f, i, twoOrgs[i%2], "certificate-expired", "mx1.example.com", "", 1)
	}
	fail(&f, 2, "Google Inc.", "certificate-expired", "mx1.example.com", "", 60)
	fail(&f, 1, "Microsoft Corporation", "certificate-expired", "mx1.example.com", "", 60)
	v = Evaluate(f, DefaultThresholds())
	r := finding(v.Warnings, WarningRegression)
	if r == nil || *r.Failures != 120 || *r.BaseFailures != 14 || r.BaseWindow.Days != 14 {
		t.Fatalf("regression = %+v, want 120 failures against 14 in 14 days", r)
	}
	if v.Proposal == nil {
		t.Fatalf("regression without a rollback proposal")
	}
	p, err := ParsePolicy(v.Proposal.Policy)
	if err != nil || p.Mode != ModeTesting || !slices.Equal(p.MX, testMX) || v.Proposal.ID == f.Policy.ID {
		t.Errorf("rollback proposal = %+v (err %v, id %s), want testing with the same mx and a new id", p, err, v.Proposal.ID)
	}
	// The same failures in every day: no rise.
	f = enforced()
	for i := 1; i <= 17; i++ {
		fail(&f, i, twoOrgs[i%2], "certificate-expired", "mx1.example.com", "", 10)
	}
	if v := Evaluate(f, DefaultThresholds()); finding(v.Warnings, WarningRegression) != nil {
		t.Errorf("steady failures raised a regression: %s", finding(v.Warnings, WarningRegression).Message)
	}
}

func TestTestingSince(t *testing.T) {
	day := UTCDay(testAt)
	d := func(n int) time.Time { return day.AddDate(0, 0, -n) }
	tests := []struct {
		name    string
		history []ModeDay
		policy  CurrentPolicy
		want    time.Time
		from    string
	}{
		{"unbroken testing", []ModeDay{{d(20), []Mode{ModeTesting}}, {d(1), []Mode{ModeTesting}}},
			CurrentPolicy{Mode: ModeTesting, Source: PolicySourceReports}, d(20), "policy-string"},
		{"days without policy-string bridge", []ModeDay{{d(30), []Mode{ModeNone}}, {d(20), []Mode{ModeTesting}}, {d(10), nil}, {d(1), []Mode{ModeTesting}}},
			CurrentPolicy{Mode: ModeTesting, Source: PolicySourceReports}, d(20), "policy-string"},
		{"mixed day ends the run", []ModeDay{{d(20), []Mode{ModeTesting}}, {d(5), []Mode{ModeEnforce, ModeTesting}}, {d(4), []Mode{ModeTesting}}},
			CurrentPolicy{Mode: ModeTesting, Source: PolicySourceLive}, d(4), "policy-string"},
		{"no policy-string, live testing", []ModeDay{{d(20), nil}, {d(2), nil}},
			CurrentPolicy{Mode: ModeTesting, Source: PolicySourceLive}, d(20), "first-report"},
		{"no policy-string, offline", []ModeDay{{d(20), nil}}, CurrentPolicy{Mode: ModeTesting, Source: PolicySourceReports}, time.Time{}, ""},
		{"today does not count", []ModeDay{{day, []Mode{ModeTesting}}}, CurrentPolicy{Mode: ModeTesting, Source: PolicySourceLive}, time.Time{}, ""},
	}
	for _, tt := range tests {
		got, from := testingSince(Facts{ModeHistory: tt.history, Policy: tt.policy}, day)
		if !got.Equal(tt.want) || from != tt.from {
			t.Errorf("%s: testingSince() = %v %q, want %v %q", tt.name, got, from, tt.want, tt.from)
		}
	}
}

func TestEvaluateWindowEdges(t *testing.T) {
	// Failures on day(at) itself are not counted: the day is not over.
	f := cleanFacts(21, twoOrgs, 100)
	fail(&f, 0, "Google Inc.", "certificate-expired", "mx1.example.com", "209.85.1.1", 500)
	if v := Evaluate(f, DefaultThresholds()); !v.Ready {
		t.Errorf("failures of day(at) counted: blockers %v", codes(v.Blockers))
	}
	// At midnight, day(at) is that day: the day before is in the window.
	f = cleanFacts(21, twoOrgs, 100)
	f.At = UTCDay(testAt)
	fail(&f, 1, "Google Inc.", "certificate-expired", "mx1.example.com", "", 500)
	if v := Evaluate(f, DefaultThresholds()); finding(v.Blockers, BlockerTLSFailures) == nil {
		t.Errorf("failures of the day before a midnight at not counted: blockers %v", codes(v.Blockers))
	}
	// A failure 8 days back is outside the recent window of 7 days.
	f = cleanFacts(21, twoOrgs, 1000)
	fail(&f, 8, "Google Inc.", "certificate-expired", "mx1.example.com", "209.85.1.1", 2)
	fail(&f, 8, "Microsoft Corporation", "certificate-expired", "mx1.example.com", "40.92.1.1", 2)
	if v := Evaluate(f, DefaultThresholds()); !v.Ready {
		t.Errorf("failure 8 days back blocked: %v", codes(v.Blockers))
	}
	// Exactly at the rate limit blocks ("below 0.1%"): 14 of 14000.
	f = cleanFacts(21, twoOrgs, 999)
	for i := 1; i <= 7; i++ {
		fail(&f, i, twoOrgs[i%2], "dnssec-invalid", "", "", 2)
	}
	if v := Evaluate(f, DefaultThresholds()); finding(v.Blockers, BlockerFailureRate) == nil {
		t.Errorf("rate of exactly 0.1%% not blocked: %v (rate %g)", codes(v.Blockers), v.Evidence.Recent.Rate)
	}
}

func TestEvaluateThresholds(t *testing.T) {
	f := cleanFacts(9, twoOrgs[:1], 10)
	th := DefaultThresholds()
	th.MinDays, th.MinReportDays, th.MinReporters, th.MinSessions = 7, 7, 1, 50
	if err := th.Validate(); err != nil {
		t.Fatal(err)
	}
	if v := Evaluate(f, th); !v.Ready {
		t.Errorf("lowered thresholds: blockers %v", codes(v.Blockers))
	}
	for _, bad := range []func(*Thresholds){
		func(t *Thresholds) { t.MinDays = 0 },
		func(t *Thresholds) { t.MinReportDays = t.MinDays + 1 },
		func(t *Thresholds) { t.MaxFailureRate = 2 },
		func(t *Thresholds) { t.RisingFactor = 0.5 },
		func(t *Thresholds) { t.RecentDays = 1000 },
		func(t *Thresholds) { t.EnforceMaxAge = -1 },
		func(t *Thresholds) { t.RisingDays, t.RegressionBaseDays = 200, 200 },
	} {
		th := DefaultThresholds()
		bad(&th)
		if th.Validate() == nil {
			t.Errorf("Validate(%+v) = nil, want an error", th)
		}
	}
	if got := DefaultThresholds().SpanDays(); got != 17 {
		t.Errorf("SpanDays() = %d, want 17 (3 + 14)", got)
	}
}

func TestVerdictJSON(t *testing.T) {
	b, err := json.Marshal(Evaluate(cleanFacts(3, twoOrgs[:1], 1), DefaultThresholds()))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"domain", "mode", "ready", "blockers", "warnings", "evidence", "proposal"} {
		if _, ok := m[k]; !ok {
			t.Errorf("verdict JSON lacks %q: %s", k, b)
		}
	}
	if len(m) != 7 {
		t.Errorf("verdict JSON has %d keys, want 7", len(m))
	}
	if string(m["warnings"]) != "[]" {
		t.Errorf("warnings = %s, want []", m["warnings"])
	}
	var bl []map[string]any
	if err := json.Unmarshal(m["blockers"], &bl); err != nil || len(bl) == 0 {
		t.Fatalf("blockers = %s", m["blockers"])
	}
	if bl[0]["code"] != BlockerObservationTooShort || bl[0]["observed_days"] != float64(3) {
		t.Errorf("first blocker = %v, want observation-too-short with observed_days 3", bl[0])
	}
	var p map[string]any
	if err := json.Unmarshal(m["proposal"], &p); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"policy", "id", "record_name", "record_value", "policy_url"} {
		if _, ok := p[k]; !ok {
			t.Errorf("proposal lacks %q: %s", k, m["proposal"])
		}
	}
}

func TestSenderRange(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.77", "192.0.2.0/24"},
		{"::ffff:192.0.2.77", "192.0.2.0/24"},
		{"2001:db8:1:2:3::4", "2001:db8:1:2::/64"},
	} {
		if got := SenderRange(netip.MustParseAddr(tc.ip)).String(); got != tc.want {
			t.Errorf("SenderRange(%s) = %s, want %s", tc.ip, got, tc.want)
		}
	}
	if SenderRange(netip.Addr{}).IsValid() {
		t.Errorf("SenderRange(invalid) is valid")
	}
}

// TestEvaluateNoRecentReports: a domain whose reports stopped is never
// given a clean bill: in enforce "no regression" would be a guess, in
// testing the blockers say little about why.
func TestEvaluateNoRecentReports(t *testing.T) {
	for _, mode := range []Mode{ModeEnforce, ModeTesting} {
		f := cleanFacts(21, twoOrgs, 1000)
		f.Policy.Mode = mode
		// The reports stopped 10 days ago.
		f.At = f.At.AddDate(0, 0, 10)
		v := Evaluate(f, DefaultThresholds())
		w := finding(v.Warnings, WarningNoRecentReports)
		if w == nil || !strings.Contains(w.Message, "the newest is of ") {
			t.Errorf("%s, reports stopped 10 days ago: warnings %v, want %s naming the newest day", mode, codes(v.Warnings), WarningNoRecentReports)
		}
		if v.Ready {
			t.Errorf("%s, reports stopped: ready", mode)
		}
		f = cleanFacts(21, twoOrgs, 1000)
		f.Policy.Mode = mode
		if w := finding(Evaluate(f, DefaultThresholds()).Warnings, WarningNoRecentReports); w != nil {
			t.Errorf("%s with recent reports: warning %+v", mode, w)
		}
	}
}
