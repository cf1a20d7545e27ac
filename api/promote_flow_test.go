package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

func jsonReq(method, path, body string) request {
	return request{method: method, path: path, body: body, ctype: "application/json"}
}

func stepStates(v versionJSON) map[string]string {
	out := map[string]string{}
	for _, s := range v.Steps {
		out[s.Name] = s.State
	}
	return out
}

// TestPromoteFlow: promote a ready domain with the policy hosted by tlsrpt
// and the record pushed by RFC 2136; the hosted file serves enforce with
// the new id, the TXT record carries it, verification ends done. A TXT
// changed behind tlsrpt's back is drift. Rollback and retirement go
// through the same steps with new ids.
func TestPromoteFlow(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	admin := f.token("admin")

	// Before: no policy is hosted; the old record is live.
	if st, _, _ := f.pub.FetchPolicy(t, "example.com"); st != http.StatusNotFound {
		t.Fatalf("hosted policy before promoting: status %d, want 404", st)
	}
	plan := f.do(admin, request{method: http.MethodGet, path: "/api/v1/domains/example.com/promote"})
	if plan.Code != http.StatusOK || !strings.Contains(plan.Body.String(), `"ready":true`) {
		t.Fatalf("GET promote plan = %d %s, want 200 and ready", plan.Code, plan.Body)
	}

	rec := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/promote", `{"reason":"verdict ready"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST promote = %d %s, want 201", rec.Code, rec.Body)
	}
	v := decodeVersion(t, rec.Body.Bytes())
	if v.Mode != rollout.ModeEnforce || v.ID == publishtest.OldID || v.MaxAge != rollout.DefaultMaxAgeEnforce || v.Override {
		t.Errorf("promoted version = mode %s id %s max_age %d override %v, want enforce, a new id, 604800, no override", v.Mode, v.ID, v.MaxAge, v.Override)
	}
	if !slices.Equal(v.MX, []string{"mx1.example.com", "mx2.example.com"}) {
		t.Errorf("promoted mx = %v, want the reports' list", v.MX)
	}
	if st := stepStates(v); st[rollout.StepPolicy] != rollout.StateDone || st[rollout.StepRecord] != rollout.StateDone || v.VerifiedAt == nil {
		t.Errorf("steps after promoting = %v verified %v, want both done and verified (%+v)", st, v.VerifiedAt, v.Steps)
	}
	st, ctype, body := f.pub.FetchPolicy(t, "example.com")
	if st != http.StatusOK || ctype != "text/plain" || !strings.Contains(body, "mode: enforce\r\n") || body != v.Policy {
		t.Errorf("hosted policy = %d %q %q, want 200 text/plain with the version's file", st, ctype, body)
	}
	if got := f.pub.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + v.ID}) {
		t.Errorf("TXT after promoting = %q, want the new id %s", got, v.ID)
	}

	// Promoting again: nothing to do.
	if again := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/promote", `{}`)); again.Code != http.StatusConflict {
		t.Errorf("POST promote of an enforcing domain = %d %s, want 409", again.Code, again.Body)
	}

	// Drift: someone edits the TXT record by hand.
	f.pub.DNS.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id=handmade1")
	rec = f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/verify", ``))
	if rec.Code != http.StatusOK {
		t.Fatalf("POST verify = %d %s", rec.Code, rec.Body)
	}
	dv := decodeVersion(t, rec.Body.Bytes())
	if st := stepStates(dv); st[rollout.StepRecord] != rollout.StateDrifted || st[rollout.StepPolicy] != rollout.StateDone {
		t.Errorf("steps after the hand edit = %v, want the record drifted, the policy done", st)
	}
	for _, s := range dv.Steps {
		if s.Name == rollout.StepRecord && (!strings.Contains(s.Detail, "handmade1") || !strings.Contains(s.Fix, v.ID)) {
			t.Errorf("drifted step = %+v, want the live id in the detail and the version's id in the fix", s)
		}
	}
	// The page shows the drift.
	page := f.do(f.login("admin"), request{method: http.MethodGet, path: "/domains/example.com"})
	if !strings.Contains(page.Body.String(), `data-state="drifted"`) {
		t.Errorf("domain page does not show the drifted step")
	}

	// Rollback to testing: a new id, the same steps, the record pushed
	// again (over the hand edit).
	rec = f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/rollback", `{"mode":"testing","reason":"failures"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST rollback = %d %s", rec.Code, rec.Body)
	}
	rb := decodeVersion(t, rec.Body.Bytes())
	if rb.Mode != rollout.ModeTesting || rb.ID == v.ID || rb.ID == publishtest.OldID || rb.Kind != rollout.KindRollback || rb.MaxAge != rollout.DefaultMaxAgeTesting {
		t.Errorf("rollback version = %+v, want testing, a new id, max_age 86400", rb)
	}
	if st := stepStates(rb); st[rollout.StepPolicy] != rollout.StateDone || st[rollout.StepRecord] != rollout.StateDone {
		t.Errorf("steps after the rollback = %v (%+v), want both done", st, rb.Steps)
	}
	if _, _, body := f.pub.FetchPolicy(t, "example.com"); !strings.Contains(body, "mode: testing\r\n") {
		t.Errorf("hosted policy after the rollback = %q, want mode testing", body)
	}
	if got := f.pub.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + rb.ID}) {
		t.Errorf("TXT after the rollback = %q, want id %s", got, rb.ID)
	}

	// Retirement: mode none, and when the records may go.
	rec = f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/rollback", `{"mode":"none","reason":"leaving"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST retire = %d %s", rec.Code, rec.Body)
	}
	rt := decodeVersion(t, rec.Body.Bytes())
	if rt.Mode != rollout.ModeNone || rt.Kind != rollout.KindRetire || rt.SafeAfter == nil {
		t.Fatalf("retirement = %+v, want mode none with safe_after", rt)
	}
	if want := rt.VerifiedAt.AddDate(0, 0, 7); !rt.SafeAfter.Equal(want) {
		t.Errorf("safe_after = %v, want verified + the enforce max_age %v", rt.SafeAfter, want)
	}
	if _, _, body := f.pub.FetchPolicy(t, "example.com"); !strings.Contains(body, "mode: none\r\n") {
		t.Errorf("hosted policy after retiring = %q, want mode none", body)
	}
	page = f.do(f.login("viewer"), request{method: http.MethodGet, path: "/domains/example.com"})
	if !strings.Contains(page.Body.String(), "the records may be removed after") {
		t.Errorf("domain page after retiring does not say when the records may be removed")
	}

	// History: four versions, ids all different.
	rec = f.do(admin, request{method: http.MethodGet, path: "/api/v1/domains/example.com/versions"})
	var hist struct{ Versions []versionJSON }
	if err := json.Unmarshal(rec.Body.Bytes(), &hist); err != nil || len(hist.Versions) != 3 {
		t.Fatalf("versions = %s (%v), want 3", rec.Body, err)
	}
	seen := map[string]bool{}
	for _, h := range hist.Versions {
		if seen[h.ID] {
			t.Errorf("id %s used twice", h.ID)
		}
		seen[h.ID] = true
	}

	// Audit log: promote, rollback, retire by the token.
	entries, err := f.d.AuditLog(context.Background(), "example.com", 20)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	for _, want := range []string{"policy.promote", "policy.rollback", "policy.retire"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit log %v lacks %s", actions, want)
		}
	}
}

// TestHostedPolicyHosts: the policy answers only for mta-sts.<domain> of a
// hosted domain.
func TestHostedPolicyHosts(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	if _, err := f.s.Promoter().Change(context.Background(), publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]int{
		"mta-sts.example.com":      http.StatusOK,
		"MTA-STS.Example.COM.:443": http.StatusOK,
		"mta-sts.example.org":      http.StatusNotFound,
		"example.com":              http.StatusNotFound,
		"tlsrpt.example.net":       http.StatusNotFound,
		"mta-sts.":                 http.StatusNotFound,
	} {
		req := httptest.NewRequest(http.MethodGet, "/.well-known/mta-sts.txt", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		f.s.Handler().ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("GET policy for Host %q = %d, want %d", host, rec.Code, want)
		}
		if want == http.StatusOK && rec.Header().Get("Content-Type") != "text/plain" {
			t.Errorf("Content-Type for %q = %q", host, rec.Header().Get("Content-Type"))
		}
	}
}

// TestPromoteSafeOrder: when the operator hosts the file (download), the
// record is not pushed before the file is served.
func TestPromoteSafeOrder(t *testing.T) {
	f := newFlowEnv(t, false, nil)
	seedDomain(t, f.d, testNow, "shop.example.com", 20, 0)
	admin := f.token("admin")
	rec := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/shop.example.com/promote", `{}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST promote = %d %s", rec.Code, rec.Body)
	}
	v := decodeVersion(t, rec.Body.Bytes())
	if st := stepStates(v); st[rollout.StepPolicy] != rollout.StatePending || st[rollout.StepRecord] != rollout.StatePending {
		t.Errorf("steps = %v, want both pending: nobody serves the file yet", st)
	}
	if v.RecordPublishedAt != nil {
		t.Error("the record was pushed before the policy file was served")
	}
	if got := f.pub.DNS.TXT("_mta-sts.shop.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + publishtest.OldID}) {
		t.Errorf("TXT = %q, want the old record untouched", got)
	}
	dl := f.do(admin, request{method: http.MethodGet, path: "/domains/shop.example.com/mta-sts.txt"})
	if dl.Code != http.StatusOK || dl.Body.String() != v.Policy || !strings.Contains(dl.Header().Get("Content-Disposition"), "attachment") {
		t.Errorf("download = %d %q, want the policy file as an attachment", dl.Code, dl.Body)
	}
}

// TestPromoteBlocked: a blocked verdict refuses without the override,
// refuses an override without the domain typed again, accepts it with the
// domain and a reason; the audit log keeps both.
func TestPromoteBlocked(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 3)
	admin := f.token("admin")
	path := "/api/v1/domains/example.com/promote"
	if rec := f.do(f.token("viewer"), jsonReq(http.MethodPost, path, `{}`)); rec.Code != http.StatusForbidden {
		t.Errorf("viewer POST promote = %d, want 403", rec.Code)
	}
	rec := f.do(admin, jsonReq(http.MethodPost, path, `{"reason":"please"}`))
	if rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "blocked") {
		t.Errorf("POST promote of a blocked domain = %d %s, want 409 naming the block", rec.Code, rec.Body)
	}
	rec = f.do(admin, jsonReq(http.MethodPost, path, `{"override":true,"confirm":"example.org","reason":"known"}`))
	if rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("override with the wrong domain = %d %s, want 422", rec.Code, rec.Body)
	}
	rec = f.do(admin, jsonReq(http.MethodPost, path, `{"override":true,"confirm":"example.com","reason":""}`))
	if rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("override without a reason = %d %s, want 422", rec.Code, rec.Body)
	}
	if got := f.pub.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + publishtest.OldID}) {
		t.Errorf("TXT after refusals = %q, want untouched", got)
	}
	rec = f.do(admin, jsonReq(http.MethodPost, path, `{"override":true,"confirm":"EXAMPLE.com","reason":"mx2 is being replaced today"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("override = %d %s, want 201", rec.Code, rec.Body)
	}
	if v := decodeVersion(t, rec.Body.Bytes()); !v.Override || v.Reason != "mx2 is being replaced today" {
		t.Errorf("version = %+v, want override with the reason", v)
	}
	entries, err := f.d.AuditLog(context.Background(), "example.com", 20)
	if err != nil {
		t.Fatal(err)
	}
	var refused, override int
	for _, e := range entries {
		switch e.Action {
		case "policy.promote.refused":
			refused++
		case "policy.override":
			override++
			if s := string(e.Detail.(json.RawMessage)); !strings.Contains(s, `"EXAMPLE.com"`) || !strings.Contains(s, "mx2 is being replaced") {
				t.Errorf("override audit detail = %s, want the typed domain and the reason", s)
			}
		}
	}
	if refused != 3 || override != 1 {
		t.Errorf("audit: %d refusals, %d overrides, want 3 and 1", refused, override)
	}
}

// TestPromotePanel: the panel shows the policy file, id and TXT value;
// viewers see it disabled.
func TestPromotePanel(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	admin := f.do(f.login("admin"), request{method: http.MethodGet, path: "/domains/example.com"})
	body := admin.Body.String()
	id := testNow.UTC().Format("20060102T150405Z")
	for _, want := range []string{`id="promote-form"`, "mode: enforce", "max_age: 604800", `v=STSv1; id=` + id, "_mta-sts.example.com.", `name="id" value="` + id + `"`} {
		if !strings.Contains(body, want) {
			t.Errorf("admin's panel lacks %q", want)
		}
	}
	if strings.Contains(body, "<fieldset disabled>") {
		t.Error("admin's panel is disabled")
	}
	viewer := f.do(f.login("viewer"), request{method: http.MethodGet, path: "/domains/example.com"})
	if !strings.Contains(viewer.Body.String(), "<fieldset disabled>") {
		t.Error("viewer's panel is not disabled")
	}
	if rec := f.do(f.login("viewer"), request{method: http.MethodPost, path: "/domains/example.com/promote", withCSRF: true}); rec.Code != http.StatusForbidden {
		t.Errorf("viewer form POST = %d, want 403", rec.Code)
	}
}
