package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
)

type promotionsAnswer struct {
	DryRun  bool                   `json:"dry_run"`
	Counts  map[string]int         `json:"counts"`
	Results []autopilot.BulkResult `json:"results"`
}

func decodePromotions(t *testing.T, body []byte) promotionsAnswer {
	t.Helper()
	var a promotionsAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return a
}

// TestPromotionsBulk: POST /api/v1/promotions checks each domain against
// its own verdict: the ready ones are promoted (a version each, audited),
// the blocked one is listed with its blockers and left alone, the unlisted
// and the enforcing ones are skipped; a dry run changes nothing; viewers
// may not; the overview's form does the same with the CSRF token.
func TestPromotionsBulk(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, d := range []string{"a.example", "b.example", "auto.example"} {
		seedDomain(t, e.d, testNow, d, 20, 0)
	}
	seedDomain(t, e.d, testNow, "blocked.example", 20, 2)
	ctx := context.Background()
	on := true
	if err := e.d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "auto.example", Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	admin := e.token("admin")
	body := `{"domains":["a.example","blocked.example","nobody.example","auto.example","b.example"],"reason":"fleet day","dry_run":true}`

	if rec := e.do(e.token("viewer"), jsonReq(http.MethodPost, "/api/v1/promotions", body)); rec.Code != http.StatusForbidden {
		t.Errorf("POST promotions as a viewer = %d, want 403", rec.Code)
	}
	rec := e.do(admin, jsonReq(http.MethodPost, "/api/v1/promotions", body))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST promotions (dry run) = %d %s", rec.Code, rec.Body)
	}
	if a := decodePromotions(t, rec.Body.Bytes()); !a.DryRun || a.Counts["promoted"] != 3 || a.Counts["blocked"] != 1 || a.Counts["skipped"] != 1 {
		t.Errorf("dry run = %+v, want 3 promoted, 1 blocked, 1 skipped", a)
	}
	if vs, _ := e.d.PolicyVersions(ctx, "a.example", 0); len(vs) != 0 {
		t.Fatalf("the dry run made %d versions", len(vs))
	}

	rec = e.do(admin, jsonReq(http.MethodPost, "/api/v1/promotions", strings.Replace(body, `"dry_run":true`, `"dry_run":false`, 1)))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST promotions = %d %s", rec.Code, rec.Body)
	}
	a := decodePromotions(t, rec.Body.Bytes())
	want := map[string]string{"a.example": "promoted", "b.example": "promoted", "auto.example": "promoted",
		"blocked.example": "blocked", "nobody.example": "skipped"}
	if len(a.Results) != len(want) {
		t.Fatalf("results = %+v, want one per domain", a.Results)
	}
	for _, r := range a.Results {
		if r.Outcome != want[r.Domain] {
			t.Errorf("%s: outcome %s (%s), want %s", r.Domain, r.Outcome, r.Message, want[r.Domain])
		}
		vs, err := e.d.PolicyVersions(ctx, r.Domain, 0)
		if err != nil {
			t.Fatal(err)
		}
		switch r.Outcome {
		case "promoted":
			if len(vs) != 1 || vs[0].ID != r.ID || vs[0].Policy.Mode != rollout.ModeEnforce || vs[0].Policy.MaxAge != r.MaxAge || vs[0].Kind != rollout.KindPromote {
				t.Errorf("%s: versions %+v, want one enforce version %s with max_age %d", r.Domain, vs, r.ID, r.MaxAge)
			}
		case "blocked":
			if len(vs) != 0 || !slices.Contains(r.Blockers, rollout.BlockerTLSFailures) {
				t.Errorf("%s: %d versions, blockers %v; want none and tls-failures", r.Domain, len(vs), r.Blockers)
			}
		}
	}
	// The autopilot domain starts at the first stage of its ramp; the
	// others get the verdict's max_age, as a promotion by hand.
	for _, r := range a.Results {
		switch r.Domain {
		case "auto.example":
			if r.MaxAge != 86400 {
				t.Errorf("auto.example max_age %d, want the ramp's first stage 86400", r.MaxAge)
			}
		case "a.example":
			if r.MaxAge != rollout.DefaultMaxAgeEnforce {
				t.Errorf("a.example max_age %d, want %d", r.MaxAge, rollout.DefaultMaxAgeEnforce)
			}
		}
	}
	entries, err := e.d.AuditLog(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var promotes, bulk int
	for _, en := range entries {
		switch en.Action {
		case "policy.promote":
			promotes++
		case "promotions.bulk":
			bulk++
		}
	}
	if promotes != 3 || bulk != 1 {
		t.Errorf("audit: %d policy.promote, %d promotions.bulk; want 3 and 1", promotes, bulk)
	}

	// Again: the promoted ones are in enforce, skipped.
	rec = e.do(admin, jsonReq(http.MethodPost, "/api/v1/promotions", `{"domains":["a.example"]}`))
	if a := decodePromotions(t, rec.Body.Bytes()); len(a.Results) != 1 || a.Results[0].Outcome != "skipped" {
		t.Errorf("promoting again = %s, want skipped", rec.Body)
	}
	for _, bad := range []string{`{}`, `{"domains":[]}`, `{"domains":["a.example"],"extra":1}`, `not json`} {
		if rec := e.do(admin, jsonReq(http.MethodPost, "/api/v1/promotions", bad)); rec.Code != http.StatusBadRequest {
			t.Errorf("POST promotions %s = %d, want 400", bad, rec.Code)
		}
	}

	// The overview's form: the CSRF token is required.
	ad := e.login("admin")
	form := url.Values{"domain": {"b.example", "blocked.example"}, "dry_run": {"yes"}}
	if rec := e.do(ad, request{method: http.MethodPost, path: "/promotions", form: form}); rec.Code != http.StatusForbidden {
		t.Errorf("POST /promotions without the CSRF token = %d, want 403", rec.Code)
	}
	rec = e.do(ad, request{method: http.MethodPost, path: "/promotions", form: form, withCSRF: true})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `data-outcome="blocked"`) || !strings.Contains(rec.Body.String(), "dry run") {
		t.Errorf("POST /promotions = %d, want the results page with the blocked domain", rec.Code)
	}
}

// TestAutopilotPanel: the domain page shows the autopilot panel (stage,
// next step, ramp); an admin switches it on with the form (CSRF needed,
// audited), a viewer may not; the API reads and sets the settings, with
// the bounds checked.
func TestAutopilotPanel(t *testing.T) {
	e := newTestEnv(t, nil)
	seedDomain(t, e.d, testNow, "example.com", 20, 0)
	ctx := context.Background()
	ad, viewer := e.login("admin"), e.login("viewer")

	page := e.do(viewer, request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if !strings.Contains(page, `id="autopilot"`) || !strings.Contains(page, `data-enabled="false"`) || strings.Contains(page, `id="autopilot-toggle"`) ||
		!strings.Contains(page, "promote to enforce with max_age 86400") {
		t.Fatalf("domain page for a viewer: want the panel off, the next step, no toggle")
	}
	on := request{method: http.MethodPost, path: "/domains/example.com/autopilot", form: url.Values{"enabled": {"on"}}, withCSRF: true}
	if rec := e.do(viewer, on); rec.Code != http.StatusForbidden {
		t.Errorf("viewer toggling = %d, want 403", rec.Code)
	}
	noCSRF := on
	noCSRF.withCSRF = false
	if rec := e.do(ad, noCSRF); rec.Code != http.StatusForbidden {
		t.Errorf("toggling without the CSRF token = %d, want 403", rec.Code)
	}
	rec := e.do(ad, on)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("toggling on = %d %s", rec.Code, rec.Body)
	}
	loc, _, _ := strings.Cut(rec.Header().Get("Location"), "#") // browsers keep the fragment to themselves
	page = e.do(ad, request{method: http.MethodGet, path: loc}).Body.String()
	if !strings.Contains(page, `data-enabled="true"`) || !strings.Contains(page, "Switch autopilot off") || !strings.Contains(page, "Autopilot switched on") {
		t.Errorf("domain page after switching on: want on, the off button and the flash")
	}
	// Its plan at once: a dry-run evaluation of today, nothing changed.
	if !strings.Contains(page, `class="autopilot-plan">ready 1 of 3 days: would promote to enforce with max_age 86400 on `) {
		t.Errorf("domain page after switching on: want the plan line")
	}
	if vs, _ := e.d.PolicyVersions(ctx, "example.com", 0); len(vs) != 0 {
		t.Errorf("switching on made %d versions", len(vs))
	}
	s, err := e.d.AutopilotSettings(ctx, "example.com")
	if err != nil || s.Enabled == nil || !*s.Enabled || s.UpdatedBy != "admin-user" {
		t.Errorf("stored settings = %+v, %v", s, err)
	}
	if acts, _ := e.d.AuditLog(ctx, "example.com", 10); len(acts) == 0 || acts[0].Action != "autopilot.settings" || acts[0].Actor != "admin-user" {
		t.Errorf("audit = %+v, want autopilot.settings by admin-user", acts)
	}

	// The hold days form: admins only, with the CSRF token; a list that is
	// not three of 1..365 is refused, the value escaped in the answer.
	hold := request{method: http.MethodPost, path: "/domains/example.com/autopilot", form: url.Values{"hold_days": {"5, 6,7"}}, withCSRF: true}
	if rec := e.do(viewer, hold); rec.Code != http.StatusForbidden {
		t.Errorf("viewer setting the hold days = %d, want 403", rec.Code)
	}
	noCSRF = hold
	noCSRF.withCSRF = false
	if rec := e.do(ad, noCSRF); rec.Code != http.StatusForbidden {
		t.Errorf("setting the hold days without the CSRF token = %d, want 403", rec.Code)
	}
	if !strings.Contains(page, `id="autopilot-hold-days-form"`) || !strings.Contains(page, `name="hold_days" value="7,14,30"`) {
		t.Errorf("domain page for an admin: want the hold days form with the defaults")
	}
	rec = e.do(ad, hold)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("setting the hold days = %d %s", rec.Code, rec.Body)
	}
	loc, _, _ = strings.Cut(rec.Header().Get("Location"), "#")
	page = e.do(ad, request{method: http.MethodGet, path: loc}).Body.String()
	if !strings.Contains(page, "Autopilot hold days set") || !strings.Contains(page, `name="hold_days" value="5,6,7"`) || !strings.Contains(page, "1: max_age 86400, then 5 clean days live") {
		t.Errorf("domain page after setting the hold days: want the flash, the form with 5,6,7 and the ramp")
	}
	if s, err := e.d.AutopilotSettings(ctx, "example.com"); err != nil || !slices.Equal(s.HoldDays, []int{5, 6, 7}) || s.Enabled == nil || !*s.Enabled {
		t.Errorf("stored settings after the hold days form = %+v, %v; want 5, 6, 7 and still on", s, err)
	}
	for _, bad := range []string{"5,6", "0,6,7", "5,6,366", "<script>alert(1)</script>", ""} {
		hold.form = url.Values{"hold_days": {bad}}
		rec := e.do(ad, hold)
		if body := rec.Body.String(); rec.Code != http.StatusBadRequest || !strings.Contains(body, "hold days") || strings.Contains(body, "<script>alert") {
			t.Errorf("hold days form %q = %d, want 400 naming the hold days, escaped:\n%s", bad, rec.Code, body)
		}
	}

	// The API: read, set, bounds.
	tok := e.token("admin")
	rec = e.do(tok, jsonReq(http.MethodPut, "/api/v1/domains/example.com/autopilot", `{"dry_run":true,"final_max_age":31557600}`))
	var st autopilot.Status
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &st) != nil || !st.Settings.Enabled || !st.Settings.DryRun ||
		st.Settings.FinalMaxAge != 31557600 || st.FinalStage != 4 {
		t.Errorf("PUT autopilot = %d %s, want on, dry run, final a year over 4 stages", rec.Code, rec.Body)
	}
	for _, bad := range []string{`{"final_max_age":31557601}`, `{"ready_days":0}`, `{"final_max_age":60}`} {
		if rec := e.do(tok, jsonReq(http.MethodPut, "/api/v1/domains/example.com/autopilot", bad)); rec.Code != http.StatusBadRequest {
			t.Errorf("PUT autopilot %s = %d %s, want 400", bad, rec.Code, rec.Body)
		}
	}
	// The hold days: set, shown in the status's ramp and on the panel;
	// refused, naming the setting, unless three of 1..365.
	rec = e.do(tok, jsonReq(http.MethodPut, "/api/v1/domains/example.com/autopilot", `{"hold_days":[2,3,4]}`))
	st = autopilot.Status{}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &st) != nil || !slices.Equal(st.Settings.HoldDays, []int{2, 3, 4}) ||
		len(st.Ramp) != 4 || st.Ramp[0].HoldDays != 2 || st.Ramp[1].HoldDays != 3 || st.Ramp[2].HoldDays != 4 || st.Ramp[3].HoldDays != 0 {
		t.Errorf("PUT autopilot hold_days = %d %s, want holds 2, 3, 4 on the ramp", rec.Code, rec.Body)
	}
	if page := e.do(ad, request{method: http.MethodGet, path: "/domains/example.com"}).Body.String(); !strings.Contains(page, "1: max_age 86400, then 2 clean days live") ||
		!strings.Contains(page, "3: max_age 2592000, then 4 clean days live") {
		t.Errorf("domain page after setting the hold days: want the ramp with 2, 3, 4 clean days")
	}
	for _, bad := range []string{`{"hold_days":[0,3,4]}`, `{"hold_days":[2,3]}`, `{"hold_days":[2,3,366]}`, `{"hold_days":[]}`, `{"hold_days":"2,3,4"}`} {
		if rec := e.do(tok, jsonReq(http.MethodPut, "/api/v1/domains/example.com/autopilot", bad)); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "hold") {
			t.Errorf("PUT autopilot %s = %d %s, want 400 naming the hold days", bad, rec.Code, rec.Body)
		}
	}
	if s, err := e.d.AutopilotSettings(ctx, "example.com"); err != nil || !slices.Equal(s.HoldDays, []int{2, 3, 4}) {
		t.Errorf("stored hold days after the refused PUTs = %v, %v; want [2 3 4]", s.HoldDays, err)
	}
	if rec := e.do(e.token("viewer"), jsonReq(http.MethodPut, "/api/v1/autopilot", `{"enabled":true}`)); rec.Code != http.StatusForbidden {
		t.Errorf("viewer setting the fleet default = %d, want 403", rec.Code)
	}
	rec = e.do(tok, jsonReq(http.MethodPut, "/api/v1/autopilot", `{"enabled":true,"ready_days":5,"hold_days":[10,20,40]}`))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"ready_days":5`) || !strings.Contains(rec.Body.String(), `"hold_days":[10,20,40]`) {
		t.Errorf("PUT fleet autopilot = %d %s", rec.Code, rec.Body)
	}
	if rec := e.do(tok, jsonReq(http.MethodPut, "/api/v1/autopilot", `{"hold_days":[10,20]}`)); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "hold days") {
		t.Errorf("PUT fleet autopilot hold_days [10,20] = %d %s, want 400 naming the hold days", rec.Code, rec.Body)
	}
}

// TestOverviewFleetFilters: the overview filters by mode, ramp stage and
// autopilot state, keeps the filters in its links, shows the stage and
// autopilot columns, and refuses (escaped) values it does not offer.
func TestOverviewFleetFilters(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	for _, d := range []string{"stage1.example", "stage2.example", "final.example", "testing.example"} {
		if _, _, err := e.d.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	for d, age := range map[string]int64{"stage1.example": 86400, "stage2.example": 604800, "final.example": 2592000} {
		if _, err := e.d.AddPolicyVersion(ctx, db.PolicyVersion{Domain: d, Kind: rollout.KindPromote, ID: "20261101T000000Z",
			Policy: rollout.Policy{Mode: rollout.ModeEnforce, MX: []string{"mx." + d}, MaxAge: age}, PolicyMethod: rollout.PolicyHosted, RecordMethod: rollout.RecordManual}); err != nil {
			t.Fatal(err)
		}
	}
	on, dry := true, true
	if err := e.d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "stage1.example", Enabled: &on}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "stage2.example", Enabled: &on, DryRun: &dry}); err != nil {
		t.Fatal(err)
	}
	viewer := e.login("viewer")
	names := func(query string) []string {
		t.Helper()
		rec := e.do(viewer, request{method: http.MethodGet, path: "/api/v1/domains?" + query})
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /api/v1/domains?%s = %d %s", query, rec.Code, rec.Body)
		}
		var out struct{ Domains []domainJSON }
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, d := range out.Domains {
			ns = append(ns, d.Domain)
		}
		return ns
	}
	for q, want := range map[string][]string{
		"stage=1":                   {"stage1.example"},
		"stage=2":                   {"stage2.example"},
		"stage=final":               {"final.example"},
		"stage=testing":             {"testing.example"},
		"autopilot=on":              {"stage1.example"},
		"autopilot=dry-run":         {"stage2.example"},
		"autopilot=off":             {"final.example", "testing.example"},
		"autopilot=off&stage=final": {"final.example"},
	} {
		if got := names(q); !slices.Equal(got, want) {
			t.Errorf("?%s = %v, want %v", q, got, want)
		}
	}
	page := e.do(viewer, request{method: http.MethodGet, path: "/?stage=1&per_page=1&autopilot=on"}).Body.String()
	if !strings.Contains(page, `data-stage="1"`) || !strings.Contains(page, `data-autopilot="on"`) {
		t.Errorf("overview: want the stage and autopilot columns")
	}
	rec := e.do(viewer, request{method: http.MethodGet, path: "/?stage=" + url.QueryEscape("<script>x")})
	if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "<script>") {
		t.Errorf("overview with a bad stage = %d, want 400 without the raw value", rec.Code)
	}
	if rec := e.do(viewer, request{method: http.MethodGet, path: "/?mode=sideways"}); rec.Code != http.StatusBadRequest {
		t.Errorf("overview with a bad mode = %d, want 400", rec.Code)
	}
}
