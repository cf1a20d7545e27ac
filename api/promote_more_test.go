package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
	"github.com/tlsrpt/tlsrpt/rollout/publish/publishtest"
)

// TestMXMove: a new mx list is a new version with a new id in the same
// mode; the MX records may change max_age after it is live.
func TestMXMove(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	admin := f.token("admin")
	rec := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/promote", `{}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("promote = %d %s", rec.Code, rec.Body)
	}
	pv := decodeVersion(t, rec.Body.Bytes())
	rec = f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/mx-move", `{"mx":["mx1.example.com","mx2.example.com","MX3.example.com."],"reason":"new provider"}`))
	if rec.Code != http.StatusCreated {
		t.Fatalf("mx-move = %d %s", rec.Code, rec.Body)
	}
	v := decodeVersion(t, rec.Body.Bytes())
	if v.Kind != rollout.KindMXMove || v.Mode != rollout.ModeEnforce || v.ID == pv.ID || !slices.Equal(v.MX, []string{"mx1.example.com", "mx2.example.com", "mx3.example.com"}) {
		t.Errorf("mx move = %+v, want enforce with the three hosts and a new id", v)
	}
	if v.VerifiedAt == nil || v.SafeAfter == nil || !v.SafeAfter.Equal(v.VerifiedAt.Add(604800*time.Second)) {
		t.Errorf("mx move verified %v safe_after %v, want safe_after = verified + 604800 s", v.VerifiedAt, v.SafeAfter)
	}
	if _, _, body := f.pub.FetchPolicy(t, "example.com"); !strings.Contains(body, "mx: mx3.example.com\r\n") {
		t.Errorf("hosted policy = %q, want the new list", body)
	}
	page := f.do(f.login("viewer"), request{method: http.MethodGet, path: "/domains/example.com"})
	if !strings.Contains(page.Body.String(), "Change the MX records after") {
		t.Error("domain page does not say when the MX records may change")
	}
	// The same list again changes nothing; an invalid pattern is refused.
	if rec := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/mx-move", `{"mx":["mx1.example.com","mx2.example.com","mx3.example.com"]}`)); rec.Code != http.StatusConflict {
		t.Errorf("mx-move to the same list = %d %s, want 409", rec.Code, rec.Body)
	}
	if rec := f.do(admin, jsonReq(http.MethodPost, "/api/v1/domains/example.com/mx-move", `{"mx":["bad host"]}`)); rec.Code != http.StatusUnprocessableEntity {
		t.Errorf("mx-move to an invalid pattern = %d %s, want 422", rec.Code, rec.Body)
	}
}

// TestPollRetriesRecord: a push that failed is retried by the poll loop,
// which then verifies the version.
func TestPollRetriesRecord(t *testing.T) {
	f := newFlowEnv(t, true, func(c *Config) {
		c.Promote.Records = &rollout.DNSUpdate{Zone: "example.com", KeyName: publishtest.KeyName, Secret: "d3Jvbmc=", Timeout: 5 * time.Second}
	})
	f.s.cfg.Promote.Records.(*rollout.DNSUpdate).Server = f.pub.DNS.Addr
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	ctx := context.Background()
	if _, _, err := f.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	// The change records the version; one reconciler pass (as the page
	// runs) tries the push, which the server refuses.
	if _, err := f.s.Promoter().Change(ctx, publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	v, err := f.s.Promoter().Reconcile(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if v.RecordError == "" || v.RecordPublishedAt != nil || rollout.StepState(v.Steps, rollout.StepRecord) != rollout.StatePending {
		t.Fatalf("version after a refused push = %+v, want the error and the record pending", v)
	}
	f.s.cfg.Promote.Records.(*rollout.DNSUpdate).Secret = publishtest.Secret
	if n := f.s.Promoter().PollOnce(ctx); n != 1 {
		t.Errorf("pollOnce looked at %d domains, want 1", n)
	}
	v, err = f.d.LatestPolicyVersion(ctx, "example.com")
	if err != nil {
		t.Fatal(err)
	}
	if v.RecordError != "" || v.RecordPublishedAt == nil || v.VerifiedAt == nil {
		t.Errorf("version after the poll = %+v, want the record pushed and verified", v)
	}
}

// TestPolicyHandler: the policy host listener serves the policy file and
// nothing of the dashboard.
func TestPolicyHandler(t *testing.T) {
	f := newFlowEnv(t, true, nil)
	seedDomain(t, f.d, testNow, "example.com", 20, 0)
	if _, err := f.s.Promoter().Change(context.Background(), publish.ChangeRequest{Domain: "example.com", Kind: rollout.KindPromote, Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	h := f.s.PolicyHandler()
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/.well-known/mta-sts.txt", http.StatusOK},
		{http.MethodHead, "/.well-known/mta-sts.txt", http.StatusNotFound},
		{http.MethodPost, "/.well-known/mta-sts.txt", http.StatusNotFound},
		{http.MethodGet, "/login", http.StatusNotFound},
		{http.MethodGet, "/api/v1/domains", http.StatusNotFound},
		{http.MethodGet, "/", http.StatusNotFound},
	} {
		req := httptest.NewRequest(tc.method, tc.path, nil)
		req.Host = "mta-sts.example.com"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s %s on the policy host = %d, want %d", tc.method, tc.path, rec.Code, tc.want)
		}
	}
}

// TestRepromoteAfterRollback: after a rollback tlsrpt published, reports
// from the enforce days still say enforce; the mode comes from tlsrpt's
// own newest version first, so the plan proposes enforce again instead of
// "nothing to propose: " with no reason.
func TestRepromoteAfterRollback(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	const domain = "back.example"
	if _, _, err := e.d.AddDomain(ctx, domain); err != nil {
		t.Fatal(err)
	}
	today := rollout.UTCDay(testNow)
	for i := 20; i >= 1; i-- {
		day := today.AddDate(0, 0, -i)
		for j, org := range []string{"google.com", "microsoft.com"} {
			rep := &reports.Report{OrganizationName: org, ContactInfo: "tlsrpt@" + org, ReportID: fmt.Sprintf("%s-%d", org, i),
				DateRange: reports.DateRange{Start: day, End: day.Add(24*time.Hour - time.Second)},
				Policies: []reports.PolicyResult{{Policy: reports.Policy{Type: reports.PolicySTS, Domain: domain, MXHosts: []string{"mx1." + domain},
					Strings: []string{"version: STSv1", "mode: enforce", "mx: mx1." + domain, "max_age: 604800"}},
					Summary: reports.Summary{TotalSuccessfulSessionCount: int64(500 + j)}}}}
			if _, _, err := e.d.StoreReport(ctx, reports.Received{Report: rep, Source: reports.SourceFile}); err != nil {
				t.Fatal(err)
			}
		}
	}
	v, err := e.d.AddPolicyVersion(ctx, db.PolicyVersion{Domain: domain, Kind: rollout.KindRollback, ID: "20261101T000000Z",
		Policy: rollout.Policy{Mode: rollout.ModeTesting, MX: []string{"mx1." + domain}, MaxAge: 86400}, CreatedBy: "test",
		PolicyMethod: rollout.PolicyDownload, RecordMethod: rollout.RecordManual})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.d.MarkPolicyPublished(ctx, v.Seq, testNow.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	rec := e.do(e.token(db.RoleViewer), request{method: "GET", path: "/api/v1/domains/" + domain + "/promote"})
	var plan struct {
		Ready    bool              `json:"ready"`
		Blockers []rollout.Finding `json:"blockers"`
		Proposal *struct {
			Policy string `json:"policy"`
		} `json:"proposal"`
		NoPlan string `json:"no_plan"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &plan); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET promote plan = %d %s (%v)", rec.Code, rec.Body, err)
	}
	if plan.NoPlan != "" || plan.Proposal == nil || !strings.Contains(plan.Proposal.Policy, "mode: enforce") {
		t.Errorf("promote plan after a rollback = %s; want enforce proposed again", rec.Body)
	}
	if !plan.Ready && len(plan.Blockers) == 0 {
		t.Errorf("promote plan says not ready with no blocker: %s", rec.Body)
	}
}
