package api

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// TestPushAgain (review item 8): a drifted record is pushed again from the
// page (a CSRF-protected form, admins only) or POST
// /api/v1/domains/{domain}/push; both are audited. While the domain is
// publishing, the panel says so with the pending steps, never
// "Published".
func TestPushAgain(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	admin, page := f.token("admin"), f.login("admin")
	if _, err := f.s.Promoter().Change(t.Context(), publishChange("example.com", rollout.KindPromote)); err != nil {
		t.Fatal(err)
	}
	body := f.do(page, request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if strings.Contains(body, "Published: mode enforce") || !strings.Contains(body, "Publishing: mode enforce") {
		t.Errorf("panel of a version not verified yet does not say it is publishing")
	}
	if rec := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/verify", ``)); rec.Code != http.StatusOK {
		t.Fatalf("POST verify = %d %s", rec.Code, rec.Body)
	}
	body = f.do(page, request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if !strings.Contains(body, "Published: mode enforce") || strings.Contains(body, `id="push-button"`) {
		t.Errorf("panel of a live version: want Published and no push button")
	}
	// Someone edits the record: drifted, and the page offers the push.
	f.pub.DNS.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id=handmade1")
	f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/verify", ``))
	body = f.do(page, request{method: http.MethodGet, path: "/domains/example.com"}).Body.String()
	if !strings.Contains(body, `id="push-button"`) || !strings.Contains(body, `action="/domains/example.com/push"`) {
		t.Fatalf("panel of a drifted record lacks the push button")
	}
	if rec := f.do(page, request{method: http.MethodPost, path: "/domains/example.com/push", form: url.Values{}}); rec.Code != http.StatusForbidden {
		t.Errorf("push form without the CSRF token = %d, want 403", rec.Code)
	}
	if rec := f.do(f.token("viewer"), jsonReq(http.MethodPost, "/api/v1/domains/example.com/push", ``)); rec.Code != http.StatusForbidden {
		t.Errorf("push by a viewer = %d, want 403", rec.Code)
	}
	rec := f.do(page, request{method: http.MethodPost, path: "/domains/example.com/push", form: url.Values{}, withCSRF: true})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("push form = %d %s, want 303", rec.Code, rec.Body)
	}
	v := decodeVersion(t, f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/verify", ``)).Body.Bytes())
	if st := stepStates(v); st[rollout.StepRecord] != rollout.StateDone {
		t.Errorf("record after the push = %v, want done", st)
	}
	if got := f.pub.DNS.TXT("_mta-sts.example.com"); !slices.Equal(got, []string{"v=STSv1; id=" + v.ID}) {
		t.Errorf("TXT after the push = %q, want id %s", got, v.ID)
	}
	// The API does the same.
	f.pub.DNS.SetTXT(t, "_mta-sts.example.com", "v=STSv1; id=handmade2")
	rec = f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/push", ``))
	if rec.Code != http.StatusOK || stepStates(decodeVersion(t, rec.Body.Bytes()))[rollout.StepRecord] != rollout.StateDone {
		t.Errorf("POST push = %d %s, want 200 and the record done", rec.Code, rec.Body)
	}
	actions, _ := domainAudit(t, f, "example.com")
	if n := countAction(actions, "policy.push_again"); n != 2 {
		t.Errorf("policy.push_again entries = %d (%v), want 2", n, actions)
	}
}

func publishChange(domain, kind string) publish.ChangeRequest {
	return publish.ChangeRequest{Domain: domain, Kind: kind, Actor: "test"}
}
