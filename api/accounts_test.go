package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tlsrpt/tlsrpt/db"
)

// account makes a user with a real password and opens n sessions for it.
func (e *testEnv) account(name, role, password string, n int) (*db.User, []who) {
	e.t.Helper()
	ctx := context.Background()
	h, err := HashPassword(password)
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := e.d.PutUser(ctx, name, h, role)
	if err != nil {
		e.t.Fatal(err)
	}
	var ws []who
	for range n {
		tok, csrf := NewSecret(), NewSecret()
		if err := e.d.CreateSession(ctx, db.SecretHash(tok), u.ID, csrf, e.s.now().Add(time.Hour), "test"); err != nil {
			e.t.Fatal(err)
		}
		ws = append(ws, who{name: name, cookie: tok, csrf: csrf})
	}
	return u, ws
}

// audited fails unless the audit log has an entry of action whose detail
// contains want.
func (e *testEnv) audited(action, actor, want string) {
	e.t.Helper()
	log, err := e.d.AuditLog(context.Background(), "", 200)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range log {
		if a.Action == action && a.Actor == actor && strings.Contains(string(a.Detail.(json.RawMessage)), want) {
			return
		}
	}
	e.t.Errorf("no audit entry %s by %s with %s in %+v", action, actor, want, log)
}

// loggedIn says whether w's session still opens a page.
func (e *testEnv) loggedIn(w who) bool {
	e.t.Helper()
	return e.do(w, request{method: "GET", path: "/account"}).Code == http.StatusOK
}

func passwordIs(t *testing.T, d *db.DB, name, pw string) bool {
	t.Helper()
	u, err := d.UserByName(context.Background(), name)
	if err != nil {
		t.Fatalf("UserByName(%s) = %v", name, err)
	}
	return bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(pw)) == nil
}

var shownSecret = regexp.MustCompile(`<code class="secret">([^<]+)</code>`)

func TestUsersPageFlows(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	admin := e.login(db.RoleAdmin) // account "admin-user"
	post := func(path string, form map[string][]string) *http.Response {
		t.Helper()
		return e.do(admin, request{method: "POST", path: path, form: form, withCSRF: true}).Result()
	}

	page := e.do(admin, request{method: "GET", path: "/settings/users"})
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "admin-user (you)") {
		t.Fatalf("GET /settings/users = %d: %.300s", page.Code, page.Body)
	}
	if strings.Contains(page.Body.String(), `action="/settings/users/admin-user/remove"`) {
		t.Errorf("the users page offers to remove the admin's own account")
	}

	// Add with a chosen password.
	if r := post("/settings/users", map[string][]string{"username": {"alice"}, "role": {"viewer"}, "password": {"alice-password-1"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("add alice = %d", r.StatusCode)
	}
	if u, err := e.d.UserByName(ctx, "alice"); err != nil || u.Role != db.RoleViewer || !passwordIs(t, e.d, "alice", "alice-password-1") {
		t.Errorf("alice = %+v, %v; want a viewer with the chosen password", u, err)
	}
	e.audited("user.add", "admin-user", `"user": "alice"`)
	for _, tc := range []struct {
		form map[string][]string
		want int
	}{
		{map[string][]string{"username": {"alice"}, "role": {"admin"}, "password": {"another-password"}}, http.StatusConflict},
		{map[string][]string{"username": {"carol"}, "role": {"viewer"}, "password": {"short"}}, http.StatusBadRequest},
		{map[string][]string{"username": {"carol"}, "role": {"root"}}, http.StatusBadRequest},
		{map[string][]string{"username": {"a b<"}, "role": {"viewer"}}, http.StatusBadRequest},
	} {
		if r := post("/settings/users", tc.form); r.StatusCode != tc.want {
			t.Errorf("add %v = %d, want %d", tc.form, r.StatusCode, tc.want)
		}
	}
	if !passwordIs(t, e.d, "alice", "alice-password-1") {
		t.Errorf("adding alice again changed her password")
	}
	if _, err := e.d.UserByName(ctx, "carol"); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("a refused add stored carol: %v", err)
	}

	// Add with a generated password, shown once.
	rec := e.do(admin, request{method: "POST", path: "/settings/users", form: map[string][]string{"username": {"bob"}, "role": {"viewer"}}, withCSRF: true})
	m := shownSecret.FindStringSubmatch(rec.Body.String())
	if rec.Code != http.StatusOK || m == nil || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("add bob = %d %q, want the generated password shown, not cached: %.400s", rec.Code, rec.Header().Get("Cache-Control"), rec.Body)
	}
	if !passwordIs(t, e.d, "bob", m[1]) {
		t.Errorf("bob's stored hash does not match the password shown")
	}
	if strings.Contains(e.do(admin, request{method: "GET", path: "/settings/users"}).Body.String(), m[1]) {
		t.Errorf("the generated password is shown again")
	}

	// Role.
	if r := post("/settings/users/alice/role", map[string][]string{"role": {"admin"}}); r.StatusCode != http.StatusSeeOther {
		t.Errorf("alice → admin = %d", r.StatusCode)
	}
	if u, _ := e.d.UserByName(ctx, "alice"); u.Role != db.RoleAdmin {
		t.Errorf("alice's role = %s, want admin", u.Role)
	}
	e.audited("user.role", "admin-user", `"role": "admin"`)

	// Reset: a new password, and the user's sessions end.
	bob, _ := e.d.UserByName(ctx, "bob")
	bobSession := who{cookie: NewSecret()}
	if err := e.d.CreateSession(ctx, db.SecretHash(bobSession.cookie), bob.ID, "x", testNow.Add(time.Hour), "test"); err != nil {
		t.Fatal(err)
	}
	if !e.loggedIn(bobSession) {
		t.Fatal("bob's session does not work before the reset")
	}
	if r := post("/settings/users/bob/password", map[string][]string{"password": {"bob-new-password"}}); r.StatusCode != http.StatusSeeOther {
		t.Errorf("reset bob = %d", r.StatusCode)
	}
	if !passwordIs(t, e.d, "bob", "bob-new-password") || e.loggedIn(bobSession) {
		t.Errorf("after the reset: password set %v, session alive %v; want set and ended", passwordIs(t, e.d, "bob", "bob-new-password"), e.loggedIn(bobSession))
	}
	e.audited("user.password", "admin-user", `"user": "bob"`)
	if r := post("/settings/users/admin-user/password", map[string][]string{"password": {"whatever-password"}}); r.StatusCode != http.StatusConflict {
		t.Errorf("reset of one's own password here = %d, want 409 (it goes through /account)", r.StatusCode)
	}
	if r := post("/settings/users/nobody/password", nil); r.StatusCode != http.StatusNotFound {
		t.Errorf("reset of nobody = %d, want 404", r.StatusCode)
	}

	// Remove: not oneself, not the last admin.
	if r := post("/settings/users/alice/remove", nil); r.StatusCode != http.StatusSeeOther {
		t.Errorf("remove alice = %d", r.StatusCode)
	}
	if _, err := e.d.UserByName(ctx, "alice"); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("alice after removal: %v", err)
	}
	e.audited("user.remove", "admin-user", `"user": "alice"`)
	if r := post("/settings/users/admin-user/remove", nil); r.StatusCode != http.StatusConflict {
		t.Errorf("removing oneself = %d, want 409", r.StatusCode)
	}
	// admin-user is now the only admin: an admin token may not remove or
	// demote it.
	tok := e.token(db.RoleAdmin)
	for _, r := range []request{
		{method: "POST", path: "/settings/users/admin-user/remove"},
		{method: "POST", path: "/settings/users/admin-user/role", form: map[string][]string{"role": {"viewer"}}},
	} {
		if rec := e.do(tok, r); rec.Code != http.StatusConflict || !strings.Contains(rec.Body.String(), "last admin") {
			t.Errorf("%s as the last admin = %d %.200s, want 409", r.path, rec.Code, rec.Body)
		}
	}
	if u, err := e.d.UserByName(ctx, "admin-user"); err != nil || u.Role != db.RoleAdmin {
		t.Errorf("the last admin = %+v, %v; want it kept, admin", u, err)
	}
	// With a second admin, the first may be demoted.
	if r := post("/settings/users/bob/role", map[string][]string{"role": {"admin"}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob → admin = %d", r.StatusCode)
	}
	if rec := e.do(tok, request{method: "POST", path: "/settings/users/bob/remove"}); rec.Code != http.StatusSeeOther {
		t.Errorf("removing the second admin = %d, want 303", rec.Code)
	}

	// Forms need the session's CSRF token; viewers may not see the page.
	if rec := e.do(admin, request{method: "POST", path: "/settings/users", form: map[string][]string{"username": {"dave"}, "role": {"admin"}}}); rec.Code != http.StatusForbidden {
		t.Errorf("add without CSRF = %d, want 403", rec.Code)
	}
	viewer := e.login(db.RoleViewer)
	if rec := e.do(viewer, request{method: "GET", path: "/settings/users"}); rec.Code != http.StatusForbidden {
		t.Errorf("viewer GET /settings/users = %d, want 403", rec.Code)
	}
	if rec := e.do(viewer, request{method: "POST", path: "/settings/users", form: map[string][]string{"username": {"dave"}, "role": {"admin"}}, withCSRF: true}); rec.Code != http.StatusForbidden {
		t.Errorf("viewer add = %d, want 403", rec.Code)
	}
	if _, err := e.d.UserByName(ctx, "dave"); !errors.Is(err, db.ErrNoCredential) {
		t.Errorf("a refused add stored dave: %v", err)
	}
}

func TestTokensPageFlows(t *testing.T) {
	e := newTestEnv(t, nil)
	admin := e.login(db.RoleAdmin)
	rec := e.do(admin, request{method: "POST", path: "/settings/tokens", form: map[string][]string{"name": {"backup script"}, "role": {"viewer"}}, withCSRF: true})
	m := shownSecret.FindStringSubmatch(rec.Body.String())
	if rec.Code != http.StatusOK || m == nil || !strings.HasPrefix(m[1], TokenPrefix) || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("create token = %d, want the token shown once, not cached: %.400s", rec.Code, rec.Body)
	}
	tok := who{bearer: m[1]}
	e.audited("token.create", "admin-user", `"name": "backup script"`)

	// Stored hashed: the token is in no column, only its SHA-256.
	var n int
	if err := e.d.Pool.QueryRow(context.Background(), `SELECT count(*) FROM api_tokens t WHERE t::text LIKE '%' || $1 || '%'`, m[1]).Scan(&n); err != nil || n != 0 {
		t.Errorf("rows with the token in clear = %d, %v", n, err)
	}
	if rec := e.do(tok, request{method: "GET", path: "/api/v1/domains"}); rec.Code != http.StatusOK {
		t.Errorf("GET with the new token = %d, want 200", rec.Code)
	}
	if rec := e.do(tok, request{method: "POST", path: "/api/v1/domains", body: `{"domain":"example.com"}`, ctype: "application/json"}); rec.Code != http.StatusForbidden {
		t.Errorf("a viewer token adding a domain = %d, want 403", rec.Code)
	}
	list := e.do(admin, request{method: "GET", path: "/settings/tokens"}).Body.String()
	if strings.Contains(list, m[1]) || !strings.Contains(list, "backup script") {
		t.Errorf("the token list shows the token again, or not its name")
	}

	// Revoke: refused from then on.
	var id string
	for _, a := range regexp.MustCompile(`/settings/tokens/(\d+)/revoke`).FindAllStringSubmatch(list, -1) {
		id = a[1] // the newest is first; there is one token
	}
	if id == "" {
		t.Fatalf("no revoke form in %s", list)
	}
	if rec := e.do(admin, request{method: "POST", path: "/settings/tokens/" + id + "/revoke", withCSRF: true}); rec.Code != http.StatusSeeOther {
		t.Errorf("revoke = %d", rec.Code)
	}
	if rec := e.do(tok, request{method: "GET", path: "/api/v1/domains"}); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET with the revoked token = %d, want 401", rec.Code)
	}
	e.audited("token.revoke", "admin-user", `"id": `+id)
	if rec := e.do(admin, request{method: "POST", path: "/settings/tokens/" + id + "/revoke", withCSRF: true}); rec.Code != http.StatusNotFound {
		t.Errorf("second revoke = %d, want 404", rec.Code)
	}
	list = e.do(admin, request{method: "GET", path: "/settings/tokens"}).Body.String()
	ts, err := e.d.AllAPITokens(context.Background())
	if err != nil || len(ts) == 0 || ts[0].RevokedAt == nil {
		t.Fatalf("AllAPITokens = %+v, %v; want the token, revoked", ts, err)
	}
	if strings.Contains(list, "/settings/tokens/"+id+"/revoke") || !strings.Contains(list, ts[0].RevokedAt.UTC().Format(time.RFC3339)) {
		t.Errorf("the revoked token still has a revoke form, or no revoked time: %s", list)
	}
	if rec := e.do(admin, request{method: "POST", path: "/settings/tokens", form: map[string][]string{"role": {"owner"}}, withCSRF: true}); rec.Code != http.StatusBadRequest {
		t.Errorf("create with role owner = %d, want 400", rec.Code)
	}
}

func TestAccountPassword(t *testing.T) {
	e := newTestEnv(t, nil)
	_, ss := e.account("carol", db.RoleViewer, "carol-old-password", 2)
	here, other := ss[0], ss[1]
	change := func(cur, nw, again string) *http.Response {
		t.Helper()
		return e.do(here, request{method: "POST", path: "/account/password", withCSRF: true,
			form: map[string][]string{"current": {cur}, "new": {nw}, "again": {again}}}).Result()
	}
	if rec := e.do(here, request{method: "GET", path: "/account"}); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `action="/account/password"`) {
		t.Fatalf("GET /account = %d", rec.Code)
	}
	for _, tc := range []struct{ cur, nw, again string }{
		{"wrong-password", "carol-new-password", "carol-new-password"},
		{"", "carol-new-password", "carol-new-password"},
		{"carol-old-password", "short", "short"},
		{"carol-old-password", "carol-new-password", "carol-new-passwore"},
	} {
		if r := change(tc.cur, tc.nw, tc.again); r.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("change %+v = %d, want 422", tc, r.StatusCode)
		}
	}
	if !passwordIs(t, e.d, "carol", "carol-old-password") || !e.loggedIn(other) {
		t.Fatalf("a refused change changed the password or ended a session")
	}
	if r := change("carol-old-password", "carol-new-password", "carol-new-password"); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("change = %d", r.StatusCode)
	}
	if !passwordIs(t, e.d, "carol", "carol-new-password") {
		t.Errorf("the new password is not stored")
	}
	if !e.loggedIn(here) || e.loggedIn(other) {
		t.Errorf("after the change: this session alive %v, other alive %v; want true, false", e.loggedIn(here), e.loggedIn(other))
	}
	e.audited("account.password", "carol", `"other_sessions_ended": 1`)
	// A session needs the form's token; a token has no password.
	if rec := e.do(here, request{method: "POST", path: "/account/password", form: map[string][]string{"current": {"carol-new-password"}, "new": {"x-new-password-2"}, "again": {"x-new-password-2"}}}); rec.Code != http.StatusForbidden {
		t.Errorf("change without CSRF = %d, want 403", rec.Code)
	}
	if rec := e.do(e.token(db.RoleAdmin), request{method: "POST", path: "/account/password"}); rec.Code != http.StatusBadRequest {
		t.Errorf("change by a token = %d, want 400", rec.Code)
	}
	if !passwordIs(t, e.d, "carol", "carol-new-password") {
		t.Errorf("a refused change changed the password")
	}
}

func TestDomainSettingsPage(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	if _, _, err := e.d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	admin := e.login(db.RoleAdmin)
	index := e.do(admin, request{method: "GET", path: "/settings"}).Body.String()
	if !strings.Contains(index, `href="/settings/domains/example.com"`) || strings.Contains(index, `name="min_days"`) ||
		!strings.Contains(index, `href="/settings/users"`) || !strings.Contains(index, "Trusted reporters") {
		t.Errorf("the settings index wants a link per domain, no threshold form, the account pages and the reporters: %s", index)
	}
	page := e.do(admin, request{method: "GET", path: "/settings/domains/example.com"})
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), `name="min_days"`) || !strings.Contains(page.Body.String(), `action="/settings/domains/example.com/remove"`) {
		t.Fatalf("GET the domain's settings = %d: %.400s", page.Code, page.Body)
	}
	rec := e.do(admin, request{method: "POST", path: "/settings/domains/example.com", form: map[string][]string{"min_days": {"30"}}, withCSRF: true})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/settings/domains/example.com?done=saved" {
		t.Errorf("save = %d → %s", rec.Code, rec.Header().Get("Location"))
	}
	if th, err := e.d.DomainThresholds(ctx, "example.com"); err != nil || th.MinDays != 30 {
		t.Errorf("thresholds = %+v, %v; want min_days 30", th, err)
	}
	e.audited("settings.thresholds", "admin-user", `"min_days": 30`)

	for _, typed := range []string{"", "example.org", "example"} {
		rec := e.do(admin, request{method: "POST", path: "/settings/domains/example.com/remove", form: map[string][]string{"confirm": {typed}}, withCSRF: true})
		if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), "Not removed") {
			t.Errorf("remove typing %q = %d, want 422", typed, rec.Code)
		}
	}
	if ok, _ := e.d.HasDomain(ctx, "example.com"); !ok {
		t.Fatalf("a removal without the typed name removed the domain")
	}
	if rec := e.do(e.login(db.RoleViewer), request{method: "GET", path: "/settings/domains/example.com"}); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "/remove") {
		t.Errorf("viewer's page = %d, want it without the removal form", rec.Code)
	}
	rec = e.do(admin, request{method: "POST", path: "/settings/domains/example.com/remove", form: map[string][]string{"confirm": {" Example.COM "}}, withCSRF: true})
	if rec.Code != http.StatusSeeOther {
		t.Errorf("remove typing the name = %d: %.300s", rec.Code, rec.Body)
	}
	if ok, _ := e.d.HasDomain(ctx, "example.com"); ok {
		t.Errorf("example.com is still listed")
	}
	e.audited("domain.remove", "admin-user", "{}")
	if rec := e.do(admin, request{method: "GET", path: "/settings/domains/example.com"}); rec.Code != http.StatusNotFound {
		t.Errorf("GET an unlisted domain's settings = %d, want 404", rec.Code)
	}
}

// TestAccountPagesEscape puts hostile text where users can: a token's
// name and (through the store) an account name.
func TestAccountPagesEscape(t *testing.T) {
	e := newTestEnv(t, nil)
	admin := e.login(db.RoleAdmin)
	if rec := e.do(admin, request{method: "POST", path: "/settings/tokens", form: map[string][]string{"name": {hostile}, "role": {"viewer"}}, withCSRF: true}); rec.Code != http.StatusOK {
		t.Fatalf("create token = %d", rec.Code)
	}
	_, ss := e.account(hostile, db.RoleViewer, "hostile-password", 1)
	for _, r := range []struct {
		w    who
		path string
	}{{admin, "/settings/tokens"}, {admin, "/settings/users"}, {ss[0], "/account"}} {
		rec := e.do(r.w, request{method: "GET", path: r.path})
		body := rec.Body.String()
		if rec.Code != http.StatusOK || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") || !strings.Contains(body, "&lt;script&gt;") {
			t.Errorf("GET %s = %d: the hostile name is not shown escaped", r.path, rec.Code)
		}
	}
}
