package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

const hostile = `<script>alert("x")</script>'"><img src=x onerror=alert(1)>`

// TestHostileStringsEscaped stores reports whose every free-text field is
// hostile and reads them back through every page and the JSON API.
func TestHostileStringsEscaped(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	ids := seedReports(t, e.d, testNow, seedOptions{domain: "example.com", days: 3, hostile: hostile})
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	v := e.login(db.RoleViewer)
	id := strconv.FormatInt(ids[len(ids)-1], 10)
	for _, p := range []string{"/", "/domains/example.com?days=7", "/reports", "/reports?domain=example.com&org=" + urlq(hostile),
		"/reports/" + id, "/reports?result=" + urlq(hostile)} {
		rec := e.do(v, request{method: "GET", path: p})
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d: %.300s", p, rec.Code, rec.Body)
		}
		body := rec.Body.String()
		if strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") {
			t.Errorf("GET %s: the hostile string is in the page unescaped", p)
		}
		if strings.Contains(body, `href="javascript:`) {
			t.Errorf("GET %s: a javascript: link made it into the page", p)
		}
		if p != "/" && !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s: the hostile string is not shown (escaped) at all", p)
		}
	}
	tok := e.token(db.RoleViewer)
	for _, p := range []string{"/api/v1/reports/" + id, "/api/v1/reports?domain=example.com", "/api/v1/domains/example.com/breakdown/org",
		"/api/v1/domains/example.com/breakdown/result-type", "/api/v1/domains/example.com/breakdown/ip"} {
		rec := e.do(tok, request{method: "GET", path: p})
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", p, rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "<script>") {
			t.Errorf("GET %s: JSON carries a raw <script> (want \\u003c escapes)", p)
		}
		if !strings.Contains(rec.Body.String(), `\u003cscript\u003e`) {
			t.Errorf("GET %s: the hostile string is missing from the JSON", p)
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Errorf("GET %s: not valid JSON", p)
		}
	}
	// The raw JSON is a download, never rendered.
	rec := e.do(v, request{method: "GET", path: "/reports/" + id + "/raw"})
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") ||
		!strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("GET raw = %d %v", rec.Code, rec.Header())
	}
}

func urlq(s string) string {
	return strings.NewReplacer("%", "%25", "&", "%26", "#", "%23", "+", "%2B", " ", "+", "<", "%3C", ">", "%3E", `"`, "%22", "'", "%27").Replace(s)
}

// TestDashboardPages seeds a month of reports and checks what the pages
// and the JSON API compute from them.
func TestDashboardPages(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	seedReports(t, e.d, testNow, seedOptions{domain: "example.com", days: 30})
	seedReports(t, e.d, testNow, seedOptions{domain: "unlisted.example", days: 2})
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	// What the seed stored, summed independently from the store's raw rows.
	var wantSessions, wantFailed int64
	if err := e.d.Pool.QueryRow(ctx, `SELECT sum(p.successful + p.failed), sum(p.failed) FROM report_policies p
		JOIN reports r ON r.id = p.report_id WHERE p.policy_domain = 'example.com' AND r.day >= $1`,
		testNow.AddDate(0, 0, -7).Truncate(24*time.Hour)).Scan(&wantSessions, &wantFailed); err != nil {
		t.Fatal(err)
	}
	tok := e.token(db.RoleViewer)
	rec := e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/summary?days=7"})
	var sum struct {
		Sessions, Failures int64
		Mode               string
		Days               int
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &sum); err != nil || rec.Code != 200 {
		t.Fatalf("summary = %d %s", rec.Code, rec.Body)
	}
	if sum.Sessions != wantSessions || sum.Failures != wantFailed || sum.Mode != "testing" || sum.Days != 7 {
		t.Errorf("summary = %+v, want %d sessions, %d failures, mode testing", sum, wantSessions, wantFailed)
	}
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/series?days=30"})
	var series struct {
		Series []struct {
			Day        time.Time
			Successful int64
			Failed     int64
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &series); err != nil || len(series.Series) != 30 {
		t.Fatalf("series = %d entries (%v), want 30", len(series.Series), err)
	}
	if last := series.Series[29]; !last.Day.Equal(rollout.UTCDay(testNow).AddDate(0, 0, -1)) || last.Successful == 0 {
		t.Errorf("last day of the series = %+v, want yesterday, with sessions", last)
	}
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/breakdown/mx?days=30"})
	var bd struct{ Rows []db.BreakdownRow }
	if err := json.Unmarshal(rec.Body.Bytes(), &bd); err != nil || len(bd.Rows) == 0 || bd.Rows[0].Key != "mx2.example.com" {
		t.Errorf("breakdown by mx = %s, want mx2.example.com first", rec.Body)
	}
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/breakdown/nope"})
	if rec.Code != http.StatusBadRequest {
		t.Errorf("breakdown/nope = %d, want 400", rec.Code)
	}
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains"})
	var list struct {
		Domains  []domainJSON
		Unlisted []db.UnlistedDomain
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list.Domains) != 1 || len(list.Unlisted) != 1 {
		t.Fatalf("domains = %s", rec.Body)
	}
	if d := list.Domains[0]; d.Sessions7d != wantSessions || d.Mode != "testing" || d.Verdict.Status == "" {
		t.Errorf("domain = %+v, want %d sessions over 7 days, testing, a verdict", d, wantSessions)
	}
	if list.Unlisted[0].Domain != "unlisted.example" {
		t.Errorf("unlisted = %+v", list.Unlisted)
	}
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/verdict"})
	var verdict struct {
		Domain   string
		Ready    bool
		Blockers []struct{ Code string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &verdict); err != nil || verdict.Domain != "example.com" {
		t.Fatalf("verdict = %d %s", rec.Code, rec.Body)
	}
	// The seed has expired certificates on mx2 every few days: blocked.
	if verdict.Ready || len(verdict.Blockers) == 0 {
		t.Errorf("verdict = %+v, want blocked", verdict)
	}

	v := e.login(db.RoleViewer)
	rec = e.do(v, request{method: "GET", path: "/"})
	body := rec.Body.String()
	for _, want := range []string{"example.com", "unlisted.example", "badge-blocked", `class="spark"`} {
		if !strings.Contains(body, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	if strings.Contains(body, `action="/domains"`) {
		t.Errorf("overview shows the add form to a viewer")
	}
	rec = e.do(v, request{method: "GET", path: "/domains/example.com?days=30"})
	body = rec.Body.String()
	if n := strings.Count(body, "<rect "); n != 30 {
		t.Errorf("domain chart has %d bars, want 30", n)
	}
	for _, want := range []string{"certificate-expired", "mx2.example.com", "Microsoft Corporation", "203.0.113.10",
		"/reports?domain=example.com", `id="promote"`, "Blockers"} {
		if !strings.Contains(body, want) {
			t.Errorf("domain page lacks %q", want)
		}
	}
	// Drill-down: the MX link lists exactly the reports with such details.
	m := regexp.MustCompile(`href="(/reports\?[^"]*mx=mx2.example.com[^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no drill-down link for mx2.example.com")
	}
	link := strings.ReplaceAll(m[1], "&amp;", "&")
	rec = e.do(tok, request{method: "GET", path: "/api/v1" + link})
	var rl struct{ Reports []db.ReportListRow }
	if err := json.Unmarshal(rec.Body.Bytes(), &rl); err != nil || len(rl.Reports) == 0 {
		t.Fatalf("drill-down %s = %s", link, rec.Body)
	}
	for _, r := range rl.Reports {
		if r.Failed == 0 {
			t.Errorf("drill-down lists report %d without failures", r.ID)
		}
	}
	// Paging: two pages of 5 do not overlap and continue in order.
	rec = e.do(tok, request{method: "GET", path: "/api/v1/reports?domain=example.com&limit=5"})
	var p1 struct {
		Reports []db.ReportListRow
		Next    string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p1); err != nil || len(p1.Reports) != 5 || p1.Next == "" {
		t.Fatalf("page 1 = %s", rec.Body)
	}
	rec = e.do(tok, request{method: "GET", path: p1.Next})
	var p2 struct{ Reports []db.ReportListRow }
	if err := json.Unmarshal(rec.Body.Bytes(), &p2); err != nil || len(p2.Reports) != 5 {
		t.Fatalf("page 2 = %s", rec.Body)
	}
	if !p2.Reports[0].Start.Before(p1.Reports[4].Start) && p2.Reports[0].ID >= p1.Reports[4].ID {
		t.Errorf("page 2 starts at %v/%d, not after page 1's %v/%d", p2.Reports[0].Start, p2.Reports[0].ID, p1.Reports[4].Start, p1.Reports[4].ID)
	}
	for _, p := range []string{"/reports?domain=example.com", "/quarantine", "/settings"} {
		if rec := e.do(v, request{method: "GET", path: p}); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d", p, rec.Code)
		}
	}
}

func reportJSONBody(t *testing.T, org, id string) []byte {
	t.Helper()
	day := rollout.UTCDay(testNow).AddDate(0, 0, -2)
	rep := reports.Report{OrganizationName: org, ReportID: id, ContactInfo: "tls@" + org,
		DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies: []reports.PolicyResult{{Policy: reports.Policy{Type: "sts", Domain: "example.com", Strings: []string{"version: STSv1", "mode: testing", "mx: mx1.example.com", "max_age: 86400"}, MXHosts: []string{"mx1.example.com"}},
			Summary: reports.Summary{TotalSuccessfulSessionCount: 100, TotalFailureSessionCount: 0}}}}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPostReport(t *testing.T) {
	const metricsToken = "content-test-metrics-token"
	e := newTestEnv(t, func(c *Config) { c.MaxReportBytes = 8 << 10; c.MetricsToken = metricsToken })
	ctx := context.Background()
	body := reportJSONBody(t, "sender.example", "r-1")
	// The poster's address has a forward-confirmed reverse name under the
	// reports' contact-info domain: its reports are verified.
	e.dns.Add(t, "7.2.0.192.in-addr.arpa. 300 IN PTR mta1.sender.example.", "mta1.sender.example. 300 IN A 192.0.2.7")
	post := func(ctype string, b []byte) *httpRec {
		return e.do(who{remote: "192.0.2.7:4000"}, request{method: "POST", path: "/tlsrpt", body: string(b), ctype: ctype})
	}
	if rec := post("application/tlsrpt+json", body); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"stored":1`) {
		t.Fatalf("POST /tlsrpt = %d %s", rec.Code, rec.Body)
	}
	// A retry of the same report is a success, stored once.
	if rec := post("application/tlsrpt+json", body); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"duplicates":1`) {
		t.Errorf("POST /tlsrpt again = %d %s, want 200 duplicate", rec.Code, rec.Body)
	}
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(reportJSONBody(t, "sender.example", "r-2"))
	zw.Close()
	if rec := post("application/tlsrpt+gzip", zb.Bytes()); rec.Code != http.StatusOK {
		t.Errorf("POST gzip = %d %s", rec.Code, rec.Body)
	}
	rows, err := e.d.DashboardReports(ctx, db.ReportListFilter{Domain: "example.com"})
	if err != nil || len(rows) != 2 || rows[0].Source != "https" {
		t.Fatalf("stored reports = %+v, %v; want 2 from https", rows, err)
	}
	r, err := e.d.Report(ctx, rows[0].ID)
	if err != nil || r.SourceRef != "192.0.2.7" || !r.Trusted || r.Reporter != "sender.example" || r.ReporterMethod != "fcrdns" || r.RemoteName != "mta1.sender.example" {
		t.Errorf("stored report = %+v, %v; want from the remote address, verified as sender.example by its reverse name", r, err)
	}
	// The same report body from an address without a reverse name is
	// stored, unverified.
	unverified := reportJSONBody(t, "sender.example", "r-3")
	if rec := e.do(who{remote: "192.0.2.8:4000"}, request{method: "POST", path: "/tlsrpt", body: string(unverified), ctype: "application/tlsrpt+json"}); rec.Code != http.StatusOK {
		t.Fatalf("POST from an unnamed address = %d %s", rec.Code, rec.Body)
	}
	rows, err = e.d.DashboardReports(ctx, db.ReportListFilter{Domain: "example.com"})
	if err != nil || len(rows) != 3 {
		t.Fatalf("stored reports = %+v, %v; want 3", rows, err)
	}
	for _, row := range rows {
		if row.ReportID == "r-3" && row.Trusted {
			t.Errorf("report r-3 from 192.0.2.8 (no reverse name) stored trusted")
		}
	}
	if rec := post("text/plain", body); rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("POST text/plain = %d, want 415", rec.Code)
	}
	if rec := post("application/tlsrpt+json", []byte(`{"not":"a report"}`)); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not a valid TLS report") {
		t.Errorf("POST garbage = %d %s, want 400", rec.Code, rec.Body)
	}
	if q, _ := e.d.QuarantineList(ctx, db.QuarantineFilter{}); len(q) != 1 {
		t.Errorf("quarantine after garbage = %d entries, want 1", len(q))
	}
	if rec := post("application/tlsrpt+json", bytes.Repeat([]byte(" "), 9<<10)); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("POST 9 KiB with an 8 KiB limit = %d, want 413", rec.Code)
	}
	metrics := e.do(anonymous, request{method: "GET", path: "/metrics"}).Body.String()
	for _, want := range []string{`tlsrpt_https_reports_total{outcome="stored"} 3`, `tlsrpt_https_reports_total{outcome="duplicate"} 1`,
		`tlsrpt_reports_stored{source="https",trusted="true"} 2`, `tlsrpt_reports_stored{source="https",trusted="false"} 1`, `tlsrpt_quarantined_messages 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	// Per-domain series need the metrics token (TestMetricsToken).
	metrics = e.do(who{bearer: metricsToken}, request{method: "GET", path: "/metrics"}).Body.String()
	if want := `tlsrpt_sessions_total{domain="example.com",outcome="successful",policy_type="sts"} 200`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %q", want)
	}
}

type httpRec = httptest.ResponseRecorder

func TestRateLimits(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.PublicRate = Rate{Per: 1, Every: time.Hour, Burst: 2}
		c.LoginRate = Rate{Per: 1, Every: time.Hour, Burst: 1}
	})
	a := who{remote: "192.0.2.1:1000"}
	for i := range 2 {
		if rec := e.do(a, request{method: "GET", path: "/healthz"}); rec.Code != http.StatusOK {
			t.Fatalf("healthz #%d = %d", i, rec.Code)
		}
	}
	rec := e.do(a, request{method: "POST", path: "/tlsrpt", body: "{}", ctype: "application/tlsrpt+json"})
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("third public request = %d, want 429", rec.Code)
	}
	if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra < 1 || ra > 3600 {
		t.Errorf("Retry-After = %q, want 1..3600 seconds", rec.Header().Get("Retry-After"))
	}
	if rec := e.do(who{remote: "192.0.2.2:1000"}, request{method: "GET", path: "/healthz"}); rec.Code != http.StatusOK {
		t.Errorf("another IPv4 address = %d, want 200", rec.Code)
	}
	// IPv6: one /64 is one client.
	b1, b2 := who{remote: "[2001:db8:a:b::1]:1"}, who{remote: "[2001:db8:a:b:ffff::2]:1"}
	e.do(b1, request{method: "GET", path: "/healthz"})
	e.do(b1, request{method: "GET", path: "/healthz"})
	if rec := e.do(b2, request{method: "GET", path: "/metrics"}); rec.Code != http.StatusTooManyRequests {
		t.Errorf("second address of the same /64 = %d, want 429", rec.Code)
	}
	if rec := e.do(who{remote: "[2001:db8:a:c::1]:1"}, request{method: "GET", path: "/healthz"}); rec.Code != http.StatusOK {
		t.Errorf("another /64 = %d, want 200", rec.Code)
	}
	// Login: the second attempt from one address within the hour is refused
	// before the password is looked at.
	c := who{remote: "192.0.2.9:1"}
	e.do(c, request{method: "POST", path: "/login", form: map[string][]string{"username": {"admin"}, "password": {"x"}}})
	rec = e.do(c, request{method: "POST", path: "/login", form: map[string][]string{"username": {"admin"}, "password": {"y"}}})
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("second login attempt = %d, want 429 with Retry-After", rec.Code)
	}
}

func TestQuarantineAndSettings(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	// A report the parser refuses today, fixed by hand: the stored raw
	// bytes are what reprocess reads, so quarantine a good report directly
	// (as if an older parser had refused it).
	good := reportJSONBody(t, "late.example", "q-1")
	qid, err := e.d.Quarantine(ctx, good, "refused by an older parser", reports.SourceHTTPS, "192.0.2.3")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := e.d.Quarantine(ctx, []byte("not a report"), "no report", reports.SourceFile, "x.json")
	if err != nil {
		t.Fatal(err)
	}
	admin := e.token(db.RoleAdmin)
	rec := e.do(admin, request{method: "POST", path: fmt.Sprintf("/api/v1/quarantine/%d/reprocess", qid)})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"new":1`) {
		t.Fatalf("reprocess = %d %s", rec.Code, rec.Body)
	}
	if q, _ := e.d.QuarantineGet(ctx, qid); q == nil || q.ReprocessedAt == nil {
		t.Errorf("entry %d not marked reprocessed", qid)
	}
	rec = e.do(admin, request{method: "POST", path: fmt.Sprintf("/api/v1/quarantine/%d/reprocess", bad)})
	if rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("reprocess of garbage = %d %s, want 422", rec.Code, rec.Body)
	}
	viewer := e.login(db.RoleViewer)
	rec = e.do(viewer, request{method: "GET", path: fmt.Sprintf("/quarantine/%d/raw", bad)})
	if rec.Code != http.StatusOK || rec.Body.String() != "not a report" || !strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Errorf("raw download = %d %q", rec.Code, rec.Body)
	}
	if rec := e.do(admin, request{method: "DELETE", path: fmt.Sprintf("/api/v1/quarantine/%d", bad)}); rec.Code != http.StatusNoContent {
		t.Errorf("delete = %d", rec.Code)
	}
	if _, err := e.d.QuarantineGet(ctx, bad); err == nil {
		t.Errorf("entry %d still there after delete", bad)
	}

	// Settings: a form post by an admin session changes one threshold.
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	as := e.login(db.RoleAdmin)
	rec = e.do(as, request{method: "POST", path: "/settings/example.com", form: map[string][]string{"min_days": {"21"}, "max_failure_rate": {"0.002"}}, withCSRF: true})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("POST settings = %d %s", rec.Code, rec.Body)
	}
	th, err := e.d.DomainThresholds(ctx, "example.com")
	if err != nil || th.MinDays != 21 || th.MaxFailureRate != 0.002 || th.MinReporters != 2 {
		t.Errorf("thresholds = %+v, %v; want min_days 21, rate 0.002, the rest default", th, err)
	}
	rec = e.do(as, request{method: "POST", path: "/settings/example.com", form: map[string][]string{"min_days": {"abc"}}, withCSRF: true})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "is not a number") {
		t.Errorf("POST settings abc = %d", rec.Code)
	}
	rec = e.do(admin, request{method: "PUT", path: "/api/v1/domains/example.com/settings", body: `{"min_reporters": 3}`, ctype: "application/json"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"min_reporters":3`) || !strings.Contains(rec.Body.String(), `"min_days":21`) {
		t.Errorf("PUT settings = %d %s", rec.Code, rec.Body)
	}
	rec = e.do(admin, request{method: "PUT", path: "/api/v1/domains/example.com/settings", body: `{"max_failure_rate": 7}`, ctype: "application/json"})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "max_failure_rate") {
		t.Errorf("PUT invalid settings = %d %s", rec.Code, rec.Body)
	}
}

// TestLiveCheckOnRequest runs the live check against a resolver on a
// closed loopback port: the page shows what the check found (it never
// fails), and without ?check=1 no check runs.
func TestLiveCheckOnRequest(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.Inspector = &rollout.Inspector{Resolver: "127.0.0.1:9", Timeout: 300 * time.Millisecond}
	})
	if _, _, err := e.d.AddDomain(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	v := e.login(db.RoleViewer)
	rec := e.do(v, request{method: "GET", path: "/domains/example.com"})
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "Checked at") || !strings.Contains(rec.Body.String(), "Run the live check") {
		t.Fatalf("domain page without check = %d; want the button, no result", rec.Code)
	}
	rec = e.do(v, request{method: "GET", path: "/domains/example.com?check=1"})
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "Checked at") {
		t.Fatalf("domain page with check = %d: %.500s", rec.Code, body)
	}
	if !strings.Contains(body, `class="problems"`) && !strings.Contains(body, "Note") {
		t.Errorf("the check with an unreachable resolver shows neither problems nor notes")
	}
	tok := e.token(db.RoleViewer)
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/check"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"problems"`) {
		t.Errorf("GET check = %d %s", rec.Code, rec.Body)
	}
	rec = e.do(tok, request{method: "GET", path: "/api/v1/domains/example.com/verdict?check=1"})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"source":"check"`) {
		t.Errorf("GET verdict?check=1 = %d %.400s; want findings from the check", rec.Code, rec.Body)
	}
}

// TestRateLimitOff: TLSRPT_RATE_PUBLIC=off lifts the public limit (it was
// read as the zero Rate, which New replaced by the default 60/m).
func TestRateLimitOff(t *testing.T) {
	off, err := ParseRate("off")
	if err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.PublicRate = off })
	a := who{remote: "192.0.2.1:1000"}
	for i := range 2 * DefaultPublicRate.Burst {
		if rec := e.do(a, request{method: "GET", path: "/healthz"}); rec.Code != http.StatusOK {
			t.Fatalf("healthz #%d with the public limit off = %d, want 200", i, rec.Code)
		}
	}
}

// TestQuarantineTruncated: an entry kept as a prefix is shown as truncated
// with the reason, has no reprocess button, and reprocessing it is refused
// with the reason instead of parsing a cut input.
func TestQuarantineTruncated(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	big := append(reportJSONBody(t, "late.example", "q-big"), bytes.Repeat([]byte(" "), 200<<10)...)
	id, err := e.d.Quarantine(ctx, big, "refused by an older parser", reports.SourceHTTPS, "192.0.2.3")
	if err != nil {
		t.Fatal(err)
	}
	admin := e.login(db.RoleAdmin)
	rec := e.do(admin, request{method: "GET", path: "/quarantine"})
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "Truncated:") || !strings.Contains(body, "not reprocessable") ||
		strings.Contains(body, fmt.Sprintf("/quarantine/%d/reprocess", id)) {
		t.Errorf("quarantine page = %d, want the entry shown truncated without a reprocess button:\n%s", rec.Code, body)
	}
	token := e.token(db.RoleAdmin)
	rec = e.do(token, request{method: "POST", path: fmt.Sprintf("/api/v1/quarantine/%d/reprocess", id)})
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "only the first 65536 of") {
		t.Errorf("reprocess of a truncated entry = %d %s, want 409 with the reason", rec.Code, rec.Body)
	}
	rec = e.do(token, request{method: "GET", path: "/api/v1/quarantine"})
	if !strings.Contains(rec.Body.String(), `"truncated":"only the first 65536 of`) || !strings.Contains(rec.Body.String(), fmt.Sprintf(`"size":%d`, len(big))) {
		t.Errorf("GET /api/v1/quarantine = %s, want the truncation and the whole size", rec.Body)
	}
}

// TestUnknownDomainPage: a name nobody listed and no report names is a
// 404 with a way to add it (for admins), not a page of zeros; a listed
// domain without reports, or an unlisted one with reports, has its page.
func TestUnknownDomainPage(t *testing.T) {
	e := newTestEnv(t, nil)
	admin, viewer := e.login(db.RoleAdmin), e.login(db.RoleViewer)
	rec := e.do(admin, request{method: "GET", path: "/domains/nonexistent.example"})
	body := rec.Body.String()
	if rec.Code != http.StatusNotFound || !strings.Contains(body, "nonexistent.example is not on the list") ||
		!strings.Contains(body, `name="domain" value="nonexistent.example"`) || strings.Contains(body, "nothing to propose") {
		t.Errorf("GET /domains/nonexistent.example as admin = %d, want 404 with an Add form:\n%.600s", rec.Code, body)
	}
	if rec := e.do(viewer, request{method: "GET", path: "/domains/nonexistent.example"}); rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), `action="/domains"`) {
		t.Errorf("GET /domains/nonexistent.example as viewer = %d, want 404 without a form", rec.Code)
	}
	if _, _, err := e.d.AddDomain(context.Background(), "listed.example"); err != nil {
		t.Fatal(err)
	}
	seedReports(t, e.d, testNow, seedOptions{domain: "stranger.example", days: 2})
	for _, p := range []string{"/domains/listed.example", "/domains/stranger.example"} {
		if rec := e.do(viewer, request{method: "GET", path: p}); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, rec.Code)
		}
	}
}

// TestUnlistedNoPolicyDomainPage: a domain whose reports all say
// no-policy-found and that nobody listed says both, with the reason and
// an Add button, instead of contradicting its own numbers.
func TestUnlistedNoPolicyDomainPage(t *testing.T) {
	e := newTestEnv(t, nil)
	admin := e.login(db.RoleAdmin)
	day := rollout.UTCDay(testNow).AddDate(0, 0, -2)
	rep := reports.Report{OrganizationName: "Google Inc.", ReportID: "npf-1", ContactInfo: "smtp-tls-reporting@google.com",
		DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies: []reports.PolicyResult{{Policy: reports.Policy{Type: reports.PolicyNoPolicyFound, Domain: "stranger.example"},
			Summary: reports.Summary{TotalSuccessfulSessionCount: 400}}}}
	if _, _, err := e.d.StoreReport(context.Background(), reports.Received{Report: &rep, Source: reports.SourceFile}); err != nil {
		t.Fatal(err)
	}
	rec := e.do(admin, request{method: "GET", path: "/domains/stranger.example?days=7"})
	body := rec.Body.String()
	for _, want := range []string{"400 sessions (400 no-policy-found)", "stranger.example is not on the list", `name="domain" value="stranger.example"`, "found no MTA-STS policy"} {
		if rec.Code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("GET /domains/stranger.example = %d, lacks %q", rec.Code, want)
		}
	}
	if _, _, err := e.d.AddDomain(context.Background(), "stranger.example"); err != nil {
		t.Fatal(err)
	}
	if body := e.do(admin, request{method: "GET", path: "/domains/stranger.example?days=7"}).Body.String(); strings.Contains(body, "is not on the list") {
		t.Errorf("listed domain still says it is not on the list")
	}
}
