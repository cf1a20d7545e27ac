package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// summaryOf reads GET /api/v1/domains/<domain>/summary?days=7.
func summaryOf(t *testing.T, e *testEnv, w who, domain string) (nReports, sessions int64) {
	t.Helper()
	rec := e.do(w, request{method: "GET", path: "/api/v1/domains/" + domain + "/summary?days=7"})
	var sum struct {
		Reports  int64 `json:"reports"`
		Sessions int64 `json:"sessions"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &sum) != nil {
		t.Fatalf("GET summary of %s = %d %s", domain, rec.Code, rec.Body)
	}
	return sum.Reports, sum.Sessions
}

// auditActions lists the audit log's entries as "actor action", oldest
// first, with their details; an API token's actor is shown as "token".
func auditActions(t *testing.T, e *testEnv) ([]string, []map[string]any) {
	t.Helper()
	log, err := e.d.AuditLog(context.Background(), "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var details []map[string]any
	for i := len(log) - 1; i >= 0; i-- {
		actor := log[i].Actor
		if strings.HasPrefix(actor, "token ") {
			actor = "token"
		}
		names = append(names, actor+" "+log[i].Action)
		var d map[string]any
		if raw, ok := log[i].Detail.(json.RawMessage); ok {
			_ = json.Unmarshal(raw, &d)
		}
		details = append(details, d)
	}
	return names, details
}

// TestTakeReportBack excludes, includes and deletes reports through the
// report page's forms and the API, and reads the domain's summary after
// each change: an excluded or deleted report leaves the counts, an
// included one comes back. Refusals change nothing.
func TestTakeReportBack(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	ids := seedReports(t, e.d, testNow, seedOptions{domain: "example.com", days: 3})
	admin, viewer, tok := e.login(db.RoleAdmin), e.login(db.RoleViewer), e.token(db.RoleAdmin)
	wantReports, wantSessions := summaryOf(t, e, viewer, "example.com")
	if wantReports != int64(len(ids)) {
		t.Fatalf("summary before = %d reports, want %d", wantReports, len(ids))
	}
	sessionsOf := func(id int64) int64 {
		r, err := e.d.Report(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var n int64
		for _, p := range r.Report.Policies {
			n += p.Summary.TotalSuccessfulSessionCount + p.Summary.TotalFailureSessionCount
		}
		return n
	}
	check := func(when string, nReports, sessions int64) {
		t.Helper()
		if r, s := summaryOf(t, e, viewer, "example.com"); r != nReports || s != sessions {
			t.Errorf("%s: summary = %d reports, %d sessions; want %d, %d", when, r, s, nReports, sessions)
		}
	}
	a, b := ids[len(ids)-1], ids[len(ids)-2]
	sa, sb := sessionsOf(a), sessionsOf(b)
	pa := "/reports/" + strconv.FormatInt(a, 10)
	form := func(w who, path string, f url.Values, csrf bool) *httpRec {
		t.Helper()
		return e.do(w, request{method: "POST", path: path, form: f, withCSRF: csrf})
	}

	// Refused: no CSRF token, a viewer, no reason, a reason too long.
	for _, tc := range []struct {
		name string
		w    who
		csrf bool
		f    url.Values
		want int
	}{
		{"without CSRF", admin, false, url.Values{"reason": {"forged"}}, http.StatusForbidden},
		{"as a viewer", viewer, true, url.Values{"reason": {"forged"}}, http.StatusForbidden},
		{"without a reason", admin, true, url.Values{"reason": {"  "}}, http.StatusBadRequest},
		{"with a reason of 501 bytes", admin, true, url.Values{"reason": {strings.Repeat("x", 501)}}, http.StatusBadRequest},
	} {
		if rec := form(tc.w, pa+"/exclude", tc.f, tc.csrf); rec.Code != tc.want {
			t.Errorf("POST %s/exclude %s = %d, want %d: %.200s", pa, tc.name, rec.Code, tc.want, rec.Body)
		}
	}
	check("after refused exclusions", wantReports, wantSessions)

	// The page's form excludes; the page then says by whom, when and why.
	rec := form(admin, pa+"/exclude", url.Values{"reason": {"forged <b>report</b>"}}, true)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != pa+"?done=excluded" {
		t.Fatalf("POST %s/exclude = %d %q, want 303 to the report", pa, rec.Code, rec.Header().Get("Location"))
	}
	wantReports, wantSessions = wantReports-1, wantSessions-sa
	check("after excluding a report", wantReports, wantSessions)
	page := e.do(viewer, request{method: "GET", path: pa + "?done=excluded"}).Body.String()
	at := testNow.UTC().Format(time.RFC3339)
	for _, want := range []string{"Excluded by admin-user at " + at + ": forged &lt;b&gt;report&lt;/b&gt;", "Report excluded"} {
		if !strings.Contains(page, want) {
			t.Errorf("report page after excluding does not say %q", want)
		}
	}
	if strings.Contains(page, `action="`+pa+`/exclude"`) {
		t.Errorf("the viewer's report page has the exclude form")
	}
	if admPage := e.do(admin, request{method: "GET", path: pa}).Body.String(); !strings.Contains(admPage, `action="`+pa+`/include"`) {
		t.Errorf("the admin's page of an excluded report has no include form")
	}
	list := e.do(viewer, request{method: "GET", path: "/reports?domain=example.com"}).Body.String()
	if strings.Count(list, "badge-excluded") != 1 {
		t.Errorf("report list marks %d reports excluded, want 1", strings.Count(list, "badge-excluded"))
	}
	// Twice is a conflict, through the page and the API.
	if rec := form(admin, pa+"/exclude", url.Values{"reason": {"again"}}, true); rec.Code != http.StatusConflict {
		t.Errorf("excluding an excluded report = %d, want 409", rec.Code)
	}
	api := func(method, path, body string) *httpRec {
		t.Helper()
		return e.do(tok, request{method: method, path: path, body: body, ctype: "application/json"})
	}
	if rec := api("POST", "/api/v1"+pa+"/exclude", `{"reason":"again"}`); rec.Code != http.StatusConflict {
		t.Errorf("API exclude of an excluded report = %d %s, want 409", rec.Code, rec.Body)
	}
	var got reportJSON
	if rec := api("GET", "/api/v1"+pa, ""); rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &got) != nil ||
		got.ExcludedAt == nil || !got.ExcludedAt.Equal(testNow) || got.ExcludedBy != "admin-user" || got.ExcludedReason != "forged <b>report</b>" {
		t.Errorf("GET /api/v1%s = %d %s, want it excluded by admin-user at %s", pa, rec.Code, rec.Body, at)
	}

	// The API includes it again; a second inclusion is a conflict.
	if rec := api("POST", "/api/v1"+pa+"/include", ""); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "excluded_at") {
		t.Errorf("API include = %d %s, want 200 without excluded_at", rec.Code, rec.Body)
	}
	wantReports, wantSessions = wantReports+1, wantSessions+sa
	check("after including it again", wantReports, wantSessions)
	if rec := api("POST", "/api/v1"+pa+"/include", ""); rec.Code != http.StatusConflict {
		t.Errorf("API include of a counted report = %d, want 409", rec.Code)
	}
	if rec := form(admin, pa+"/include", nil, true); rec.Code != http.StatusConflict {
		t.Errorf("include form of a counted report = %d, want 409", rec.Code)
	}

	// The API excludes b; the page's form includes it again.
	pb := "/reports/" + strconv.FormatInt(b, 10)
	for _, body := range []string{`{"reason":""}`, `{"reason":"` + strings.Repeat("x", 501) + `"}`, `{"why":"x"}`, ``} {
		if rec := api("POST", "/api/v1"+pb+"/exclude", body); rec.Code != http.StatusBadRequest {
			t.Errorf("API exclude with %.30q = %d, want 400", body, rec.Code)
		}
	}
	if rec := api("POST", "/api/v1"+pb+"/exclude", `{"reason":"test traffic"}`); rec.Code != http.StatusOK ||
		!strings.Contains(rec.Body.String(), `"excluded_reason":"test traffic"`) {
		t.Errorf("API exclude = %d %s", rec.Code, rec.Body)
	}
	check("after the API excluded b", wantReports-1, wantSessions-sb)
	if rec := form(admin, pb+"/include", nil, true); rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != pb+"?done=included" {
		t.Errorf("include form = %d %q", rec.Code, rec.Header().Get("Location"))
	}
	check("after the form included b", wantReports, wantSessions)

	// Delete: the page wants the report's number typed.
	for _, confirm := range []string{"", "1", strconv.FormatInt(b, 10)} {
		if rec := form(admin, pa+"/delete", url.Values{"confirm": {confirm}}, true); rec.Code != http.StatusBadRequest {
			t.Errorf("delete form confirmed with %q = %d, want 400", confirm, rec.Code)
		}
	}
	check("after unconfirmed deletes", wantReports, wantSessions)
	rec = form(admin, pa+"/delete", url.Values{"confirm": {strconv.FormatInt(a, 10)}, "reason": {"duplicate"}}, true)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/reports?done=report-deleted" {
		t.Fatalf("delete form = %d %q", rec.Code, rec.Header().Get("Location"))
	}
	wantReports, wantSessions = wantReports-1, wantSessions-sa
	if _, err := e.d.Report(ctx, a); err != db.ErrNotFound {
		t.Errorf("Report(%d) after delete = %v, want ErrNotFound", a, err)
	}
	check("after deleting a", wantReports, wantSessions)
	if rec := e.do(viewer, request{method: "GET", path: pa}); rec.Code != http.StatusNotFound {
		t.Errorf("GET %s after delete = %d, want 404", pa, rec.Code)
	}
	// An excluded report deleted through the API leaves nothing to undo.
	if rec := api("POST", "/api/v1"+pb+"/exclude", `{"reason":"bad"}`); rec.Code != http.StatusOK {
		t.Fatalf("API exclude b = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(tok, request{method: "DELETE", path: "/api/v1" + pb}); rec.Code != http.StatusNoContent {
		t.Errorf("API delete = %d %s, want 204", rec.Code, rec.Body)
	}
	check("after deleting the excluded b", wantReports-1, wantSessions-sb)
	// Missing reports are 404 everywhere.
	for _, tc := range []struct{ method, path, body string }{
		{"DELETE", "/api/v1" + pb, ""}, {"POST", "/api/v1" + pb + "/exclude", `{"reason":"x"}`},
		{"POST", "/api/v1" + pb + "/include", ""}, {"POST", "/api/v1/reports/999999/exclude", `{"reason":"x"}`},
	} {
		if rec := api(tc.method, tc.path, tc.body); rec.Code != http.StatusNotFound {
			t.Errorf("%s %s of a missing report = %d, want 404", tc.method, tc.path, rec.Code)
		}
	}
	if rec := form(admin, pb+"/exclude", url.Values{"reason": {"x"}}, true); rec.Code != http.StatusNotFound {
		t.Errorf("exclude form of a missing report = %d, want 404", rec.Code)
	}
	// A viewer's token may change nothing.
	vt := e.token(db.RoleViewer)
	for _, tc := range []struct{ method, path string }{
		{"POST", "/api/v1/reports/" + strconv.FormatInt(ids[0], 10) + "/exclude"},
		{"POST", "/api/v1/reports/" + strconv.FormatInt(ids[0], 10) + "/include"},
		{"DELETE", "/api/v1/reports/" + strconv.FormatInt(ids[0], 10)},
	} {
		if rec := e.do(vt, request{method: tc.method, path: tc.path, body: `{"reason":"x"}`, ctype: "application/json"}); rec.Code != http.StatusForbidden {
			t.Errorf("%s %s as a viewer = %d, want 403", tc.method, tc.path, rec.Code)
		}
	}
	if rec := e.do(anonymous, request{method: "POST", path: "/api/v1/reports/" + strconv.FormatInt(ids[0], 10) + "/exclude", body: `{"reason":"x"}`, ctype: "application/json"}); rec.Code != http.StatusUnauthorized {
		t.Errorf("anonymous API exclude = %d, want 401", rec.Code)
	}

	// Every change is in the audit log with who, which report and why.
	names, details := auditActions(t, e)
	want := []string{"admin-user report.exclude", "token report.include", "token report.exclude", "admin-user report.include",
		"admin-user report.delete", "token report.exclude", "token report.delete"}
	if strings.Join(names, ", ") != strings.Join(want, ", ") {
		t.Fatalf("audit log = %v, want %v", names, want)
	}
	d0 := details[0]
	if d0["id"] != float64(a) || d0["reason"] != "forged <b>report</b>" || d0["organization"] != "Yahoo Inc." ||
		!strings.HasPrefix(d0["report_id"].(string), "example.com-") || d0["reporter"] != "2.example" {
		t.Errorf("audit detail of the exclusion = %v", d0)
	}
	if d := details[4]; d["id"] != float64(a) || d["reason"] != "duplicate" {
		t.Errorf("audit detail of the delete = %v", d)
	}
}

// TestReportShowsReporter stores a mailed report whose DKIM signature by
// example.net verifies while its organisation name claims Google: the
// list, the page and the API show example.net as the reporter, verified
// as DKIM signer, with the name flagged; the hostile name is escaped.
func TestReportShowsReporter(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	day := rollout.UTCDay(testNow).AddDate(0, 0, -1)
	org := `Google Inc. <script>alert(1)</script>`
	rep := &reports.Report{OrganizationName: org, ReportID: "mismatch-1", ContactInfo: "tls@example.net",
		DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
		Policies: []reports.PolicyResult{{Policy: reports.Policy{Type: "sts", Domain: "example.com", MXHosts: []string{"mx1.example.com"},
			Strings: []string{"version: STSv1", "mode: testing", "mx: mx1.example.com", "max_age: 86400"}},
			Summary: reports.Summary{TotalSuccessfulSessionCount: 10}}}}
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := e.d.StoreReport(ctx, reports.Received{Report: rep, JSON: raw, Source: reports.SourceIMAP, SourceRef: "INBOX/1",
		DKIM: reports.DKIMPass, DKIMDomain: "example.net", From: "r@example.net", ReceivedAt: day.Add(30 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	v := e.login(db.RoleViewer)
	path := "/reports/" + strconv.FormatInt(id, 10)
	wantMismatch := `the name &#34;Google Inc. &lt;script&gt;alert(1)&lt;/script&gt;&#34; belongs to google.com, not to example.net`
	for _, p := range []string{path, "/reports?domain=example.com"} {
		rec := e.do(v, request{method: "GET", path: p})
		body := rec.Body.String()
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", p, rec.Code)
		}
		for _, want := range []string{`<span class="reporter">example.net</span>`, "(DKIM signer)",
			`<span class="badge badge-mismatch" title="` + wantMismatch + `">name mismatch</span>`, "Google Inc. &lt;script&gt;"} {
			if !strings.Contains(body, want) {
				t.Errorf("GET %s does not show %q", p, want)
			}
		}
		if strings.Contains(body, "<script>alert") {
			t.Errorf("GET %s: the organisation name is in the page unescaped", p)
		}
	}
	if body := e.do(v, request{method: "GET", path: path}).Body.String(); !strings.Contains(body, `<span class="badge badge-mismatch">name mismatch</span> `+wantMismatch+".") {
		t.Errorf("the report page does not say why the name does not match in its body")
	}
	var got map[string]any
	rec := e.do(e.token(db.RoleViewer), request{method: "GET", path: "/api/v1" + path})
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["reporter"] != "example.net" || got["reporter_method"] != "dkim" ||
		!strings.HasPrefix(got["name_mismatch"].(string), `the name "Google Inc.`) {
		t.Errorf("GET /api/v1%s = reporter %v, method %v, mismatch %v", path, got["reporter"], got["reporter_method"], got["name_mismatch"])
	}
	for _, k := range []string{"excluded_at", "excluded_by", "excluded_reason", "remote_addr", "remote_name"} {
		if _, ok := got[k]; ok {
			t.Errorf("GET /api/v1%s has %q for a counted mailed report", path, k)
		}
	}

	// A counted report stored before reporters were recorded (migration
	// 085 left posted ones so) is "not recorded", not "unverified".
	if _, err := e.d.Pool.Exec(ctx, `UPDATE reports SET reporter = '', reporter_method = '', name_mismatch = '' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if body := e.do(v, request{method: "GET", path: path}).Body.String(); !strings.Contains(body, ">not recorded</span>") || strings.Contains(body, "badge-unverified") {
		t.Errorf("the page of a counted report without a recorded reporter does not say \"not recorded\", or says unverified")
	}
}
