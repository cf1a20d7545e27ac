package api

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
)

// concretePath fills a route's parameters with values that exist or at
// least parse, so the request reaches the handler.
func concretePath(p string) string {
	r := strings.NewReplacer(":domain", "example.com", ":id", "1", ":by", "mx", ":name", "nobody", "*", "style.css")
	return r.Replace(p)
}

// TestAuthorizationMatrix walks every route of the router and calls it as
// anonymous, viewer and admin (by session and by token). Every route must
// have a rule; the outcome must be what the rule says. A route added
// without a rule fails here.
func TestAuthorizationMatrix(t *testing.T) {
	e := newTestEnv(t, nil)
	// Sessions are made afresh for each route: POST /logout ends them.
	callersFor := func() map[string]who {
		return map[string]who{
			"anonymous":      anonymous,
			"viewer session": e.login(db.RoleViewer),
			"admin session":  e.login(db.RoleAdmin),
			"viewer token":   e.token(db.RoleViewer),
			"admin token":    e.token(db.RoleAdmin),
		}
	}
	names := []string{"anonymous", "viewer session", "viewer token", "admin session", "admin token"}
	routes := e.s.echo.Routes()
	if len(routes) < 30 {
		t.Fatalf("router has %d routes, want the full set", len(routes))
	}
	for _, rt := range routes {
		rule, ok := e.s.rules[rt.Method+" "+rt.Path]
		if !ok {
			t.Errorf("route %s %s has no access rule", rt.Method, rt.Path)
			continue
		}
		callers := callersFor()
		for _, name := range names {
			w := callers[name]
			rec := e.do(w, request{method: rt.Method, path: concretePath(rt.Path), withCSRF: rt.Method != http.MethodGet})
			denied := rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden ||
				(rec.Code == http.StatusSeeOther && strings.HasPrefix(rec.Header().Get("Location"), "/login?next="))
			var want bool // want denied
			switch rule {
			case accessPublic:
				want = false
			case accessViewer:
				want = name == "anonymous"
			case accessAdmin:
				want = !strings.HasPrefix(name, "admin")
			}
			// Public login pages answer 403 to a form without their own
			// token: that is CSRF, not authorization.
			if rt.Path == "/login" && rt.Method == http.MethodPost {
				continue
			}
			if denied != want {
				t.Errorf("%s %s as %s = %d (denied %v), want denied %v (rule %s): %.200s",
					rt.Method, rt.Path, name, rec.Code, denied, want, rule, rec.Body)
			}
			if want && name == "viewer session" && rec.Code != http.StatusForbidden {
				t.Errorf("%s %s as viewer = %d, want 403", rt.Method, rt.Path, rec.Code)
			}
		}
	}
	// And no rule without a route: a rule for a removed route is dead.
	have := map[string]bool{}
	for _, rt := range routes {
		have[rt.Method+" "+rt.Path] = true
	}
	for k := range e.s.rules {
		if !have[k] {
			t.Errorf("rule %q has no route", k)
		}
	}
}

// TestOpenAPIMatchesRoutes compares the OpenAPI document with the router
// both ways, including who may call each operation.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	e := newTestEnv(t, nil)
	rec := e.do(anonymous, request{method: "GET", path: "/api/v1/openapi.json"})
	if rec.Code != http.StatusOK {
		t.Fatalf("GET openapi.json = %d", rec.Code)
	}
	var doc struct {
		OpenAPI string `json:"openapi"`
		Paths   map[string]map[string]struct {
			Role string `json:"x-role"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi.json does not parse as OpenAPI 3: %v", err)
	}
	documented := map[string]string{}
	for p, ops := range doc.Paths {
		for m, op := range ops {
			if m == "parameters" {
				continue
			}
			documented[strings.ToUpper(m)+" "+p] = op.Role
		}
	}
	// The API and the public machine endpoints are documented; the HTML
	// pages, login and static files are not part of the API.
	inAPI := func(p string) bool {
		return strings.HasPrefix(p, "/api/") || p == "/tlsrpt" || p == "/healthz" || p == "/metrics"
	}
	var routed []string
	for _, rt := range e.s.echo.Routes() {
		if !inAPI(rt.Path) {
			continue
		}
		p := rt.Path
		for _, seg := range strings.Split(p, "/") {
			if strings.HasPrefix(seg, ":") {
				p = strings.Replace(p, seg, "{"+seg[1:]+"}", 1)
			}
		}
		key := rt.Method + " " + p
		routed = append(routed, key)
		role, ok := documented[key]
		if !ok {
			t.Errorf("route %s is not in openapi.json", key)
			continue
		}
		if want := e.s.rules[rt.Method+" "+rt.Path].String(); role != want {
			t.Errorf("openapi.json says %s is for %q, the router says %q", key, role, want)
		}
		delete(documented, key)
	}
	for k := range documented {
		t.Errorf("openapi.json documents %s, which the router does not have", k)
	}
	sort.Strings(routed)
	if len(routed) < 20 {
		t.Errorf("only %d API routes compared: %v", len(routed), routed)
	}
}
