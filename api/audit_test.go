package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
)

// TestAuditPageAndAPI: admins read the audit log on a page and in the API,
// filtered by domain; entries are escaped; viewers are refused.
func TestAuditPageAndAPI(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	for _, a := range []db.AuditEntry{
		{Actor: "alice", Action: "domain.add", Domain: "example.com", Detail: map[string]string{"why": "<script>x</script>"}},
		{Actor: "bob", Action: "policy.promote", Domain: "example.org"},
	} {
		if _, err := e.d.AddAudit(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	admin, viewer := e.login(db.RoleAdmin), e.login(db.RoleViewer)
	rec := e.do(admin, request{method: "GET", path: "/audit"})
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, "domain.add") || !strings.Contains(body, "policy.promote") ||
		strings.Contains(body, "<script>x") || !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("GET /audit = %d, want both entries, escaped:\n%.800s", rec.Code, body)
	}
	rec = e.do(admin, request{method: "GET", path: "/audit?domain=example.org"})
	if body := rec.Body.String(); strings.Contains(body, "domain.add") || !strings.Contains(body, "policy.promote") {
		t.Errorf("GET /audit?domain=example.org shows other domains' entries")
	}
	if rec := e.do(viewer, request{method: "GET", path: "/audit"}); rec.Code != http.StatusForbidden {
		t.Errorf("GET /audit as viewer = %d, want 403", rec.Code)
	}
	rec = e.do(e.token(db.RoleAdmin), request{method: "GET", path: "/api/v1/audit?domain=example.com&limit=10"})
	var out struct {
		Entries []struct {
			Actor, Action, Domain string
			Detail                map[string]string
		}
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusOK || len(out.Entries) != 1 ||
		out.Entries[0].Actor != "alice" || out.Entries[0].Detail["why"] != "<script>x</script>" {
		t.Errorf("GET /api/v1/audit = %d %s (%v)", rec.Code, rec.Body, err)
	}
	for _, q := range []string{"?limit=0", "?limit=x", "?domain=-bad-"} {
		if rec := e.do(admin, request{method: "GET", path: "/api/v1/audit" + q}); rec.Code != http.StatusBadRequest {
			t.Errorf("GET /api/v1/audit%s = %d, want 400", q, rec.Code)
		}
	}
}
