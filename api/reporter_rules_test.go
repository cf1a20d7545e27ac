package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
)

// TestReporterRules adds and deletes the operator's reporter rules through
// the settings page and the API, and posts reports that only those rules
// verify: a post from a listed network counts as its reporter's, one from
// a host named under a listed host domain as the reporter's whose
// contact-info names it.
func TestReporterRules(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	admin, viewer, tok := e.login(db.RoleAdmin), e.login(db.RoleViewer), e.token(db.RoleAdmin)
	api := func(w who, method, path, body string) *httpRec {
		t.Helper()
		return e.do(w, request{method: method, path: path, body: body, ctype: "application/json"})
	}
	post := func(remote, org, id string) {
		t.Helper()
		rec := e.do(who{remote: remote + ":4000"}, request{method: "POST", path: "/tlsrpt", body: string(reportJSONBody(t, org, id)), ctype: "application/tlsrpt+json"})
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"stored":1`) {
			t.Fatalf("POST /tlsrpt from %s = %d %s", remote, rec.Code, rec.Body)
		}
	}
	reportNamed := func(id string) *db.StoredReport {
		t.Helper()
		rows, err := e.d.DashboardReports(ctx, db.ReportListFilter{Domain: "example.com"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.ReportID == id {
				s, err := e.d.Report(ctx, r.ID)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		}
		t.Fatalf("report %s is not stored", id)
		return nil
	}

	// Without rules: the shipped ones only; posts from an unnamed relay
	// and from a host named elsewhere are stored unverified.
	var list struct {
		Shipped []struct{ Reporter, HostDomain, Note string } `json:"shipped"`
		Rules   []db.ReporterRule                             `json:"rules"`
	}
	rec := api(viewer, "GET", "/api/v1/reporter-rules", "")
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &list) != nil || len(list.Shipped) != 2 || list.Rules == nil || len(list.Rules) != 0 {
		t.Fatalf("GET /api/v1/reporter-rules = %d %s, want 2 shipped rules and an empty list", rec.Code, rec.Body)
	}
	e.verifyPoster("192.0.2.20", "out1.relay-host.example")
	post("192.0.2.8", "relay.example", "net-1")
	post("192.0.2.20", "sender2.example", "host-1")
	for _, id := range []string{"net-1", "host-1"} {
		if r := reportNamed(id); r.Trusted || r.Reporter != "" {
			t.Errorf("report %s without rules = trusted %v, reporter %q; want unverified", id, r.Trusted, r.Reporter)
		}
	}

	// Refused: bad rules (400 with the reason), a viewer, no CSRF token.
	for _, body := range []string{`{"kind":"relay","reporter":"relay.example"}`, `{"kind":"network","reporter":"relay.example","network":"not-a-net"}`,
		`{"kind":"host","reporter":"","host_domain":"relay-host.example"}`, `{"kind":"host","reporter":"relay.example","host_domain":""}`,
		`{"kind":"host","reporter":"relay.example","host_domain":"x.example","network":"192.0.2.0/24"}`, `{"kind":"host","reporter":"x.example","extra":1}`} {
		if rec := api(tok, "POST", "/api/v1/reporter-rules", body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"message"`) {
			t.Errorf("POST rule %s = %d %s, want 400", body, rec.Code, rec.Body)
		}
	}
	if rec := api(tok, "POST", "/api/v1/reporter-rules", `{"kind":"relay","reporter":"relay.example"}`); !strings.Contains(rec.Body.String(), `kind \"relay\", want host or network`) {
		t.Errorf("POST rule of a bad kind says %s, want the rule's fault named", rec.Body)
	}
	netForm := url.Values{"kind": {"network"}, "reporter": {"relay.example"}, "network": {"192.0.2.8/29"}, "note": {"our <relay>"}}
	if rec := e.do(viewer, request{method: "POST", path: "/settings/reporter-rules", form: netForm, withCSRF: true}); rec.Code != http.StatusForbidden {
		t.Errorf("rule form as a viewer = %d, want 403", rec.Code)
	}
	if rec := e.do(admin, request{method: "POST", path: "/settings/reporter-rules", form: netForm}); rec.Code != http.StatusForbidden {
		t.Errorf("rule form without CSRF = %d, want 403", rec.Code)
	}
	if rec := api(e.token(db.RoleViewer), "POST", "/api/v1/reporter-rules", `{"kind":"host","reporter":"a.example","host_domain":"b.example"}`); rec.Code != http.StatusForbidden {
		t.Errorf("POST rule as a viewer token = %d, want 403", rec.Code)
	}
	if rules, _ := e.d.ReporterRules(ctx); len(rules) != 0 {
		t.Fatalf("rules after refusals = %+v, want none", rules)
	}

	// The form adds a network rule, the API a host rule.
	if rec := e.do(admin, request{method: "POST", path: "/settings/reporter-rules", form: netForm, withCSRF: true}); rec.Code != http.StatusSeeOther ||
		!strings.HasPrefix(rec.Header().Get("Location"), "/settings?done=rule-added") {
		t.Fatalf("rule form = %d %q", rec.Code, rec.Header().Get("Location"))
	}
	rec = api(tok, "POST", "/api/v1/reporter-rules", `{"kind":"host","reporter":"Sender2.Example","host_domain":"mx.relay-host.example","note":"their relay"}`)
	var hostRule db.ReporterRule
	if rec.Code != http.StatusCreated || json.Unmarshal(rec.Body.Bytes(), &hostRule) != nil || hostRule.ID == 0 ||
		hostRule.Reporter != "sender2.example" || hostRule.HostDomain != "relay-host.example" {
		t.Fatalf("POST host rule = %d %s, want 201 with the organisational domains", rec.Code, rec.Body)
	}
	post("192.0.2.8", "relay.example", "net-2")
	post("192.0.2.20", "sender2.example", "host-2")
	if r := reportNamed("net-2"); !r.Trusted || r.Reporter != "relay.example" || r.ReporterMethod != "network" {
		t.Errorf("report from the listed network = trusted %v, reporter %q by %q; want relay.example by network", r.Trusted, r.Reporter, r.ReporterMethod)
	}
	if r := reportNamed("host-2"); !r.Trusted || r.Reporter != "sender2.example" || r.ReporterMethod != "fcrdns" {
		t.Errorf("report from the listed host domain = trusted %v, reporter %q by %q; want sender2.example by fcrdns", r.Trusted, r.Reporter, r.ReporterMethod)
	}
	// The report page says how: the posting address and its name.
	page := e.do(viewer, request{method: "GET", path: "/reports/" + strconv.FormatInt(reportNamed("host-2").ID, 10)}).Body.String()
	for _, want := range []string{"(reverse DNS of the posting address)", "192.0.2.20 (out1.relay-host.example)"} {
		if !strings.Contains(page, want) {
			t.Errorf("page of a report verified by a host rule does not show %q", want)
		}
	}
	page = e.do(viewer, request{method: "GET", path: "/reports/" + strconv.FormatInt(reportNamed("net-2").ID, 10)}).Body.String()
	if !strings.Contains(page, "(posted from an operator&#39;s network)") || !strings.Contains(page, "<dd>192.0.2.8</dd>") {
		t.Errorf("page of a report verified by a network rule does not say so")
	}

	// The settings page lists the shipped rules with why, and the
	// operator's; the forms only for admins.
	settings := e.do(viewer, request{method: "GET", path: "/settings"}).Body.String()
	for _, want := range []string{"Trusted reporters", "microsoft.com", "outlook.com", "yahoodns.net", "network 192.0.2.8/29",
		"hosts under relay-host.example", "our &lt;relay&gt;", "their relay"} {
		if !strings.Contains(settings, want) {
			t.Errorf("settings page does not show %q", want)
		}
	}
	if strings.Contains(settings, `action="/settings/reporter-rules`) {
		t.Errorf("the viewer's settings page has rule forms")
	}
	adminSettings := e.do(admin, request{method: "GET", path: "/settings"}).Body.String()
	if !strings.Contains(adminSettings, `action="/settings/reporter-rules"`) ||
		!strings.Contains(adminSettings, `action="/settings/reporter-rules/`+strconv.FormatInt(hostRule.ID, 10)+`/delete"`) {
		t.Errorf("the admin's settings page lacks the add or delete forms")
	}

	// Delete: the form one rule, the API the other; then 404.
	rules, err := e.d.ReporterRules(ctx)
	if err != nil || len(rules) != 2 {
		t.Fatalf("ReporterRules() = %+v, %v; want 2", rules, err)
	}
	netPath := "/settings/reporter-rules/" + strconv.FormatInt(rules[0].ID, 10) + "/delete"
	if rec := e.do(admin, request{method: "POST", path: netPath}); rec.Code != http.StatusForbidden {
		t.Errorf("delete form without CSRF = %d, want 403", rec.Code)
	}
	if rec := e.do(admin, request{method: "POST", path: netPath, withCSRF: true}); rec.Code != http.StatusSeeOther {
		t.Errorf("delete form = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(admin, request{method: "POST", path: netPath, withCSRF: true}); rec.Code != http.StatusNotFound {
		t.Errorf("delete form of a deleted rule = %d, want 404", rec.Code)
	}
	hostPath := "/api/v1/reporter-rules/" + strconv.FormatInt(hostRule.ID, 10)
	if rec := api(e.token(db.RoleViewer), "DELETE", hostPath, ""); rec.Code != http.StatusForbidden {
		t.Errorf("API delete as a viewer = %d, want 403", rec.Code)
	}
	if rec := api(tok, "DELETE", hostPath, ""); rec.Code != http.StatusNoContent {
		t.Errorf("API delete = %d %s", rec.Code, rec.Body)
	}
	if rec := api(tok, "DELETE", hostPath, ""); rec.Code != http.StatusNotFound {
		t.Errorf("API delete of a deleted rule = %d, want 404", rec.Code)
	}
	if rules, _ := e.d.ReporterRules(ctx); len(rules) != 0 {
		t.Errorf("rules after deleting both = %+v", rules)
	}
	// Without the rules, the same senders are unverified again.
	post("192.0.2.8", "relay.example", "net-3")
	if r := reportNamed("net-3"); r.Trusted {
		t.Errorf("report from the network after its rule was deleted is trusted")
	}

	names, details := auditActions(t, e)
	want := []string{"admin-user reporter_rule.add", "token reporter_rule.add", "admin-user reporter_rule.delete", "token reporter_rule.delete"}
	if strings.Join(names, ", ") != strings.Join(want, ", ") {
		t.Fatalf("audit log = %v, want %v", names, want)
	}
	if d := details[0]; d["kind"] != "network" || d["network"] != "192.0.2.8/29" || d["reporter"] != "relay.example" || d["note"] != "our <relay>" {
		t.Errorf("audit detail of the network rule = %v", d)
	}
	if d := details[3]; d["kind"] != "host" || d["host_domain"] != "relay-host.example" || d["id"] != float64(hostRule.ID) {
		t.Errorf("audit detail of the host rule's deletion = %v", d)
	}
}
