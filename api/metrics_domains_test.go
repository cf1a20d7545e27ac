package api

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// metricsToken is the bearer token of the metrics tests.
const metricsToken = "0123456789abcdef-monitoring"

// scrapeValues serves GET /metrics with the metrics token and returns each
// sample line's value by its series (name and labels, as served).
func (e *testEnv) scrapeValues() (map[string]float64, string) {
	e.t.Helper()
	rec := e.do(who{bearer: metricsToken}, request{method: "GET", path: "/metrics"})
	if rec.Code != 200 {
		e.t.Fatalf("GET /metrics with the token = %d %.300s", rec.Code, rec.Body)
	}
	body := rec.Body.String()
	vals := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if strings.HasPrefix(line, "#") || i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			e.t.Fatalf("metrics line %q: %v", line, err)
		}
		vals[line[:i]] = v
	}
	return vals, body
}

// storeSessions stores one trusted report of org for domain on day with
// ok successful and failed failed sessions of policy type typ.
func storeSessions(t *testing.T, d *db.DB, domain, org, typ string, day time.Time, ok, failed int64) {
	t.Helper()
	var details []reports.FailureDetail
	if failed > 0 {
		details = []reports.FailureDetail{{ResultType: reports.ResultCertificateExpired, SendingMTAIP: "203.0.113.7",
			ReceivingMXHostname: "mx1." + domain, FailedSessionCount: failed}}
	}
	rep := &reports.Report{
		OrganizationName: org,
		DateRange:        reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		ContactInfo:      "smtp-tls-reporting@" + org,
		ReportID:         fmt.Sprintf("%s-%s-%s-%s", domain, org, typ, day.Format("20060102")),
		Policies: []reports.PolicyResult{{
			Policy:         reports.Policy{Type: typ, Domain: domain, MXHosts: []string{"mx1." + domain}},
			Summary:        reports.Summary{TotalSuccessfulSessionCount: ok, TotalFailureSessionCount: failed},
			FailureDetails: details,
		}},
	}
	if _, _, err := d.StoreReport(context.Background(), reports.Received{Report: rep, Source: reports.SourceFile,
		SourceRef: "test/" + rep.ReportID, ReceivedAt: day.Add(30 * time.Hour)}); err != nil {
		t.Fatalf("StoreReport(%s) = %v", rep.ReportID, err)
	}
}

// addVersion adds a hosted enforce version of domain with id, its
// verification steps (none: never checked) and record error.
func addVersion(t *testing.T, d *db.DB, domain, id string, at time.Time, recordErr string, states ...string) {
	t.Helper()
	ctx := context.Background()
	v, err := d.AddPolicyVersion(ctx, db.PolicyVersion{Domain: domain, Kind: rollout.KindPromote,
		Policy: rollout.Policy{Mode: rollout.ModeEnforce, MX: []string{"mx1." + domain}, MaxAge: 604800},
		ID:     id, CreatedBy: "test", PolicyMethod: rollout.PolicyHosted, RecordMethod: rollout.RecordManual})
	if err != nil {
		t.Fatal(err)
	}
	if recordErr != "" {
		if err := d.MarkRecordPublished(ctx, v.Seq, at, recordErr); err != nil {
			t.Fatal(err)
		}
	}
	if len(states) == 0 {
		return
	}
	steps := []rollout.Step{{Name: rollout.StepPolicy, State: states[0]}, {Name: rollout.StepRecord, State: states[1]}}
	if err := d.SetVersionSteps(ctx, v.Seq, steps, at); err != nil {
		t.Fatal(err)
	}
}

// seedMonitoring lists domains with reports, thresholds and policy
// versions so that every per-domain series exists, and returns what each
// series must read. Relative to the UTC day of testNow.
func seedMonitoring(t *testing.T, e *testEnv) map[string]float64 {
	t.Helper()
	ctx := context.Background()
	today := testNow.UTC().Truncate(24 * time.Hour)
	day := func(n int) time.Time { return today.AddDate(0, 0, -n) }
	for _, name := range []string{"rate.example", "custom.example", "quiet.example", "pending.example"} {
		if _, _, err := e.d.AddDomain(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	// rate.example, default thresholds (7 days): 100 failed of 2000 sts
	// sessions in [day-7, day-1]. Day -8 is outside the window, tlsa
	// sessions are no sts sessions.
	storeSessions(t, e.d, "rate.example", "a.example", reports.PolicySTS, day(1), 900, 100)
	storeSessions(t, e.d, "rate.example", "b.example", reports.PolicySTS, day(7), 1000, 0)
	storeSessions(t, e.d, "rate.example", "a.example", reports.PolicySTS, day(8), 0, 500)
	storeSessions(t, e.d, "rate.example", "a.example", reports.PolicyTLSA, day(1), 0, 1000)
	// custom.example: a one-day window and a 2% threshold.
	th := rollout.DefaultThresholds()
	th.RecentDays, th.MaxFailureRate = 1, 0.02
	if err := e.d.SetDomainThresholds(ctx, "custom.example", th); err != nil {
		t.Fatal(err)
	}
	storeSessions(t, e.d, "custom.example", "a.example", reports.PolicySTS, day(1), 990, 10)
	storeSessions(t, e.d, "custom.example", "a.example", reports.PolicySTS, day(2), 0, 1000)
	// Not listed: no series.
	storeSessions(t, e.d, "unlisted.example", "a.example", reports.PolicySTS, day(1), 0, 10)

	checked := testNow.Add(-time.Hour)
	// Verified live.
	addVersion(t, e.d, "rate.example", "20261101T000000Z", checked, "", rollout.StateDone, rollout.StateDone)
	// An older version was verified; the newest drifted.
	addVersion(t, e.d, "custom.example", "20261101T000000Z", checked, "", rollout.StateDone, rollout.StateDone)
	addVersion(t, e.d, "custom.example", "20261102T000000Z", checked, "", rollout.StateDone, rollout.StateDrifted)
	// Publishing the record failed; never verified.
	addVersion(t, e.d, "pending.example", "20261101T000000Z", checked, "REFUSED", rollout.StateDone, rollout.StatePending)

	ts := float64(checked.Unix())
	return map[string]float64{
		`tlsrpt_domain_failure_rate{domain="rate.example"}`:                 0.05,
		`tlsrpt_domain_max_failure_rate{domain="rate.example"}`:             rollout.DefaultMaxFailureRate,
		`tlsrpt_domain_failure_rate{domain="custom.example"}`:               0.01,
		`tlsrpt_domain_max_failure_rate{domain="custom.example"}`:           0.02,
		`tlsrpt_domain_failure_rate{domain="quiet.example"}`:                0,
		`tlsrpt_domain_max_failure_rate{domain="quiet.example"}`:            rollout.DefaultMaxFailureRate,
		`tlsrpt_domain_failure_rate{domain="pending.example"}`:              0,
		`tlsrpt_policy_verified{domain="rate.example"}`:                     1,
		`tlsrpt_policy_drift{domain="rate.example"}`:                        0,
		`tlsrpt_policy_checked_timestamp_seconds{domain="rate.example"}`:    ts,
		`tlsrpt_policy_verified{domain="custom.example"}`:                   0,
		`tlsrpt_policy_drift{domain="custom.example"}`:                      1,
		`tlsrpt_policy_verified{domain="pending.example"}`:                  0,
		`tlsrpt_policy_drift{domain="pending.example"}`:                     0,
		`tlsrpt_policy_checked_timestamp_seconds{domain="pending.example"}`: ts,
	}
}

// TestMetricsDomainHealth: the failure rate of each listed domain over its
// own recent window of trusted sts sessions, its threshold, and the state
// of its newest policy version, served only with the metrics token.
func TestMetricsDomainHealth(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MetricsToken = metricsToken })
	want := seedMonitoring(t, e)
	got, body := e.scrapeValues()
	for series, w := range want {
		v, ok := got[series]
		if !ok {
			t.Errorf("GET /metrics lacks %s", series)
			continue
		}
		if diff := v - w; diff > 1e-12 || diff < -1e-12 {
			t.Errorf("%s = %v, want %v", series, v, w)
		}
	}
	// No version, no policy series; not listed, no series at all.
	for _, absent := range []string{`tlsrpt_policy_verified{domain="quiet.example"}`, `domain="unlisted.example"`} {
		if strings.Contains(body, absent) {
			t.Errorf("GET /metrics serves %s", absent)
		}
	}
	anon := e.do(anonymous, request{method: "GET", path: "/metrics"}).Body.String()
	for _, name := range []string{"tlsrpt_domain_failure_rate", "tlsrpt_domain_max_failure_rate", "tlsrpt_policy_verified", "tlsrpt_policy_drift", "tlsrpt_policy_checked_timestamp_seconds"} {
		if strings.Contains(anon, name) {
			t.Errorf("GET /metrics without the token serves %s", name)
		}
	}
	// Every intake outcome exists from the start, so rate() sees the
	// first refusal.
	for _, o := range httpsOutcomes {
		if s := `tlsrpt_https_reports_total{outcome="` + o + `"}`; got[s] != 0 || !strings.Contains(body, s+" 0") {
			t.Errorf("GET /metrics: %s not served at 0", s)
		}
	}
}

// TestMetricsDomainHealthStoreError: when the per-domain read fails, the
// scrape with the token says so in tlsrpt_metrics_store_error (the
// TLSRPTStoreError alert) instead of serving a partial picture; the
// process-wide scrape, which does not read it, is unaffected.
func TestMetricsDomainHealthStoreError(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.MetricsToken = metricsToken })
	seedMonitoring(t, e)
	// The test's own database: the version table goes, the counts stay.
	if _, err := e.d.Pool.Exec(context.Background(), `DROP TABLE policy_versions CASCADE`); err != nil {
		t.Fatal(err)
	}
	got, body := e.scrapeValues()
	if v, ok := got["tlsrpt_metrics_store_error"]; !ok || v != 1 || strings.Contains(body, "tlsrpt_domain_failure_rate{") {
		t.Errorf("scrape with the token after a failed read: tlsrpt_metrics_store_error %v (served %v), domain series %v; want 1 and none",
			v, ok, strings.Contains(body, "tlsrpt_domain_failure_rate{"))
	}
	if anon := e.do(anonymous, request{method: "GET", path: "/metrics"}).Body.String(); !strings.Contains(anon, "tlsrpt_metrics_store_error 0") {
		t.Errorf("scrape without the token after a failed per-domain read lacks tlsrpt_metrics_store_error 0")
	}
}
