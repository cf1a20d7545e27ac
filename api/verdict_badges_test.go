package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// overviewRowOf returns the overview's table row of domain ("" when the
// page does not list it).
func overviewRowOf(body, domain string) string {
	i := strings.Index(body, `<a href="/domains/`+domain+`">`)
	if i < 0 {
		return ""
	}
	row := body[i:]
	if j := strings.Index(row, "</tr>"); j >= 0 {
		row = row[:j]
	}
	return row
}

// wantBadge fails unless the overview shows domain with the badge kind
// and, per updating, the "updating…" mark.
func wantBadge(t *testing.T, e *testEnv, w who, domain, kind string, updating bool) {
	t.Helper()
	rec := e.do(w, request{method: http.MethodGet, path: "/"})
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / = %d %.300s", rec.Code, rec.Body)
	}
	row := overviewRowOf(rec.Body.String(), domain)
	if !strings.Contains(row, "badge-"+kind) || strings.Contains(row, "updating…") != updating {
		t.Errorf("overview row of %s = %q; want badge %s, updating %v", domain, row, kind, updating)
	}
}

// storeFailingReports stores, for yesterday, a second report of each of
// seedDomain's reporters in which a quarter of the sessions failed
// (adding to the rollup rows their first reports made).
func storeFailingReports(t *testing.T, d *db.DB, domain string) {
	t.Helper()
	day := rollout.UTCDay(testNow).AddDate(0, 0, -1)
	for j, org := range []string{"Google Inc.", "Microsoft Corporation", "Yahoo Inc."} {
		rep := &reports.Report{OrganizationName: org, ReportID: fmt.Sprintf("failing-%s-%d", domain, j),
			DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
			Policies: []reports.PolicyResult{{
				Policy: reports.Policy{Type: reports.PolicySTS, Domain: domain, MXHosts: []string{"mx1." + domain, "mx2." + domain},
					Strings: []string{"version: STSv1", "mode: testing", "mx: mx1." + domain, "mx: mx2." + domain, "max_age: 86400"}},
				Summary: reports.Summary{TotalSuccessfulSessionCount: 3000, TotalFailureSessionCount: 1000},
				FailureDetails: []reports.FailureDetail{{ResultType: reports.ResultCertificateExpired, SendingMTAIP: fmt.Sprintf("192.0.2.%d", j+1),
					ReceivingMXHostname: "mx2." + domain, FailedSessionCount: 1000}},
			}}}
		js, _ := json.Marshal(rep)
		if _, dup, err := d.StoreReport(context.Background(), reports.Received{Report: rep, JSON: js, Source: reports.SourceFile, ReceivedAt: day.Add(30 * time.Hour)}); err != nil || dup {
			t.Fatalf("StoreReport = duplicate %v, %v", dup, err)
		}
	}
}

// refreshAll runs the refresher's rounds until no badge is stale.
func refreshAll(t *testing.T, s *Server) int {
	t.Helper()
	total := 0
	for range 100 {
		n, err := s.RefreshVerdicts(context.Background(), 10)
		if err != nil {
			t.Fatalf("RefreshVerdicts = %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
	t.Fatal("RefreshVerdicts never ran out of stale badges")
	return total
}

// TestOverviewBadgeGoesStale: a stored report makes the badge stale at
// once (the overview shows the last value, "updating…"), and the refresh
// brings the verdict the domain page computes.
func TestOverviewBadgeGoesStale(t *testing.T) {
	e := newTestEnv(t, nil)
	seedDomain(t, e.d, testNow, "example.com", 20, 0)
	v := e.login(db.RoleViewer)
	// With a refresher running in the process, the page recomputes only
	// the badges that are missing.
	e.s.refresher.running.Store(true)
	defer e.s.refresher.running.Store(false)

	wantBadge(t, e, v, "example.com", db.BadgeReady, false) // missing: computed on request
	storeFailingReports(t, e.d, "example.com")
	wantBadge(t, e, v, "example.com", db.BadgeReady, true)
	var api struct {
		Domains []domainJSON `json:"domains"`
	}
	rec := e.do(v, request{method: http.MethodGet, path: "/api/v1/domains"})
	if err := json.Unmarshal(rec.Body.Bytes(), &api); err != nil || len(api.Domains) != 1 ||
		!api.Domains[0].Verdict.Stale || api.Domains[0].Verdict.Status != db.BadgeReady || api.Domains[0].Verdict.ComputedAt == nil {
		t.Errorf("GET /api/v1/domains while stale = %s (%v)", rec.Body, err)
	}

	if n := refreshAll(t, e.s); n != 1 {
		t.Errorf("refreshed %d badges, want 1", n)
	}
	verdict, err := e.s.verdict(context.Background(), "example.com")
	if err != nil {
		t.Fatal(err)
	}
	want := badge(verdict)
	if want.Kind != db.BadgeBlocked {
		t.Fatalf("the verdict after a day of failures is %+v; the test wants it blocked", want)
	}
	wantBadge(t, e, v, "example.com", db.BadgeBlocked, false)
	rec = e.do(v, request{method: http.MethodGet, path: "/"})
	if row := overviewRowOf(rec.Body.String(), "example.com"); !strings.Contains(row, escapeHTML(want.Reason)) {
		t.Errorf("overview row = %q, want the reason %q", row, want.Reason)
	}

	// A new UTC day: stale until refreshed, without any new report.
	// (A token: the session would expire meanwhile.)
	tok := e.token(db.RoleViewer)
	next := testNow.Add(24 * time.Hour)
	e.s.now = func() time.Time { return next }
	wantBadge(t, e, tok, "example.com", db.BadgeBlocked, true)
	if n := refreshAll(t, e.s); n != 1 {
		t.Errorf("refreshed %d badges on a new day, want 1", n)
	}
	wantBadge(t, e, tok, "example.com", db.BadgeBlocked, false)
}

// escapeHTML is what html/template makes of s in text.
func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestOverviewWithoutRefresher: when no refresher runs in the process
// (tlsrpt demo, tests), the overview recomputes the page's stale badges
// itself, a few per request.
func TestOverviewWithoutRefresher(t *testing.T) {
	e := newTestEnv(t, nil)
	seedDomain(t, e.d, testNow, "example.com", 20, 0)
	v := e.login(db.RoleViewer)
	wantBadge(t, e, v, "example.com", db.BadgeReady, false)
	storeFailingReports(t, e.d, "example.com")
	wantBadge(t, e, v, "example.com", db.BadgeBlocked, false)
}

// TestPromoteMakesBadgeStale: publishing a version changes the verdict's
// policy, so the badge is stale until refreshed, then enforcing.
func TestPromoteMakesBadgeStale(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	admin := f.token("admin")
	v := f.login(db.RoleViewer)
	f.s.refresher.running.Store(true)
	defer f.s.refresher.running.Store(false)
	wantBadge(t, f.testEnv, v, "example.com", db.BadgeReady, false)
	if rec := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/promote", `{"reason":"ready"}`)); rec.Code != http.StatusCreated {
		t.Fatalf("POST promote = %d %s", rec.Code, rec.Body)
	}
	wantBadge(t, f.testEnv, v, "example.com", db.BadgeReady, true)
	refreshAll(t, f.s)
	wantBadge(t, f.testEnv, v, "example.com", db.BadgeEnforcing, false)

	// Changed thresholds, too.
	if rec := f.do(admin, jsonReq(http.MethodPut, "/api/v1/domains/example.com/settings", `{"min_reporters":2}`)); rec.Code != http.StatusOK {
		t.Fatalf("PUT settings = %d %s", rec.Code, rec.Body)
	}
	wantBadge(t, f.testEnv, v, "example.com", db.BadgeEnforcing, true)
}

// TestOverviewPaging: 50 domains a page, links to the next and previous
// pages, filters by name and badge kind, in the page and in the API.
func TestOverviewPaging(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	for i := range 61 {
		if _, _, err := e.d.AddDomain(ctx, fmt.Sprintf("d%02d.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	refreshAll(t, e.s) // no reports: every badge is blocked
	v := e.login(db.RoleViewer)
	get := func(path string) string {
		t.Helper()
		rec := e.do(v, request{method: http.MethodGet, path: path})
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %.300s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	rows := func(body string) int { return strings.Count(body, `<a href="/domains/`) }

	p1 := get("/")
	if rows(p1) != 50 || !strings.Contains(p1, `href="/?page=2"`) || strings.Contains(p1, "previous") ||
		!strings.Contains(p1, "61 domains, page 1 of 2") || overviewRowOf(p1, "d49.example") == "" || overviewRowOf(p1, "d50.example") != "" {
		t.Errorf("page 1: %d rows, pager or count wrong", rows(p1))
	}
	p2 := get("/?page=2")
	if rows(p2) != 11 || !strings.Contains(p2, `<a href="/">← previous</a>`) || strings.Contains(p2, "next →") || overviewRowOf(p2, "d60.example") == "" {
		t.Errorf("page 2: %d rows, pager wrong", rows(p2))
	}
	if f := get("/?q=D0"); rows(f) != 10 || overviewRowOf(f, "d09.example") == "" {
		t.Errorf("?q=D0: %d rows, want d00-d09", rows(f))
	}
	if f := get("/?q=d1&per_page=4&sort=severity"); rows(f) != 4 || !strings.Contains(f, `href="/?page=2&amp;per_page=4&amp;q=d1&amp;sort=severity"`) {
		t.Errorf("?q=d1&per_page=4: %d rows or the next link lost the filter", rows(f))
	}
	if f := get("/?kind=ready"); rows(f) != 0 || !strings.Contains(f, "No domain matches") {
		t.Errorf("?kind=ready: %d rows, want none", rows(f))
	}
	if f := get("/?kind=blocked&per_page=500"); rows(f) != 61 {
		t.Errorf("?kind=blocked: %d rows, want 61", rows(f))
	}
	for _, bad := range []string{"/?page=0", "/?per_page=501", "/?kind=nope", "/?sort=size", "/?page=x"} {
		if rec := e.do(v, request{method: http.MethodGet, path: bad}); rec.Code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", bad, rec.Code)
		}
	}

	var out struct {
		Domains []domainJSON `json:"domains"`
		Total   int          `json:"total"`
		Page    int          `json:"page"`
		PerPage int          `json:"per_page"`
	}
	rec := e.do(e.token(db.RoleViewer), request{method: http.MethodGet, path: "/api/v1/domains?per_page=7&page=3&kind=blocked"})
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/domains = %d %s (%v)", rec.Code, rec.Body, err)
	}
	if out.Total != 61 || out.Page != 3 || out.PerPage != 7 || len(out.Domains) != 7 || out.Domains[0].Domain != "d14.example" ||
		out.Domains[0].Verdict.Status != db.BadgeBlocked || out.Domains[0].Verdict.Stale {
		t.Errorf("GET /api/v1/domains?per_page=7&page=3 = %+v", out)
	}
}

// TestBadgeReasonEscaped: a badge's reason quotes report contents (an
// organisation, an MX name); the overview escapes it, the API carries it
// as JSON.
func TestBadgeReasonEscaped(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	day := rollout.UTCDay(testNow)
	done, err := e.d.RefreshVerdict(ctx, "example.com", func(context.Context) (db.VerdictBadge, error) {
		return db.VerdictBadge{Kind: db.BadgeBlocked, Label: "blocked", Reason: "failures at " + hostile, Mode: hostile,
			ComputedAt: testNow, ComputedDay: day}, nil
	})
	if err != nil || !done {
		t.Fatal(done, err)
	}
	rec := e.do(e.login(db.RoleViewer), request{method: http.MethodGet, path: "/"})
	body := rec.Body.String()
	if rec.Code != http.StatusOK || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") ||
		!strings.Contains(body, "failures at &lt;script&gt;") {
		t.Errorf("GET / with a hostile reason = %d; escaped: %v", rec.Code, strings.Contains(body, "&lt;script&gt;"))
	}
	rec = e.do(e.token(db.RoleViewer), request{method: http.MethodGet, path: "/api/v1/domains"})
	if strings.Contains(rec.Body.String(), "<script>") || !strings.Contains(rec.Body.String(), `failures at \u003cscript\u003e`) {
		t.Errorf("GET /api/v1/domains with a hostile reason = %s", rec.Body)
	}
}

// TestServeRefreshesBadges: Serve runs the refresher; a stale badge is
// recomputed without anyone asking (the overview's request only wakes it
// sooner), and the refresher stops with the server.
func TestServeRefreshesBadges(t *testing.T) {
	e := newTestEnv(t, nil)
	seedDomain(t, e.d, testNow, "example.com", 20, 0)
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.s.Serve(ctx, ln, "", "") }()
	today := rollout.UTCDay(testNow)
	waitFor := func(kind string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			r, err := e.d.OverviewDomain(context.Background(), "example.com", today)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Stale && r.Badge != nil && r.Badge.Kind == kind {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("badge = %+v, stale %v after 30 s; want %s, fresh", r.Badge, r.Stale, kind)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(db.BadgeReady)
	storeFailingReports(t, e.d, "example.com")
	e.do(e.token(db.RoleViewer), request{method: http.MethodGet, path: "/"})
	waitFor(db.BadgeBlocked)
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if e.s.refresher.running.Load() {
		t.Errorf("the refresher still runs after Serve returned")
	}
}
