package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// testNow is the fixed clock of the handler tests, moved by
// testclock.ShiftEnv in the test command's second run: derive every date
// of a test from it, and give its clock to everything the test starts.
var testNow = testclock.Base(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))

// unlimited is a rate that never limits within a test.
var unlimited = Rate{Per: 1e6, Every: time.Second, Burst: 1e6}

type testEnv struct {
	t testing.TB
	s *Server
	d *db.DB
	// dns answers the reverse-name checks of posted reports: a test adds
	// PTR and A records to verify a poster.
	dns *dnstest.Server
}

func newTestEnv(t testing.TB, mod func(*Config)) *testEnv {
	t.Helper()
	d := dbtest.New(t)
	pipeline := &ingest.Pipeline{Store: d, Limits: reports.DefaultLimits()}
	dnsSrv := dnstest.Start(t, "example.", "test-key.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	cfg := Config{
		Resolver:   dnsSrv.Resolver(),
		DB:         d,
		Pipeline:   pipeline,
		Log:        slog.New(slog.DiscardHandler),
		PublicRate: unlimited,
		LoginRate:  unlimited,
		Now:        func() time.Time { return testNow },
	}
	if mod != nil {
		mod(&cfg)
	}
	// One clock: the store refuses report days by it and the pipeline
	// stamps receipts with it.
	d.Now = cfg.Now
	if pipeline.Now == nil {
		pipeline.Now = cfg.Now
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	return &testEnv{t: t, s: s, d: d, dns: dnsSrv}
}

// who is a caller: a session cookie with its CSRF token, or a token.
type who struct {
	name   string
	cookie string
	csrf   string
	bearer string
	remote string
}

var anonymous = who{name: "anonymous"}

// login creates a user of role with a session, without the (slow)
// password form; TestLoginFlow covers the form.
func (e *testEnv) login(role string) who {
	e.t.Helper()
	ctx := context.Background()
	u, err := e.d.PutUser(ctx, role+"-user", "$2a$10$invalidinvalidinvalidinvalidinvalidinvalidinvalidinva", role)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, csrf := NewSecret(), NewSecret()
	// The session expires by the server's clock, whatever clock the test
	// gave it.
	if err := e.d.CreateSession(ctx, db.SecretHash(tok), u.ID, csrf, e.s.now().Add(time.Hour), "test"); err != nil {
		e.t.Fatal(err)
	}
	return who{name: role + " session", cookie: tok, csrf: csrf}
}

func (e *testEnv) token(role string) who {
	e.t.Helper()
	tok := NewAPIToken()
	if _, err := e.d.CreateAPIToken(context.Background(), db.SecretHash(tok), "test", role); err != nil {
		e.t.Fatal(err)
	}
	return who{name: role + " token", bearer: tok}
}

type request struct {
	method, path string
	body         string
	ctype        string
	// form is sent urlencoded; withCSRF adds the caller's token to it.
	form     url.Values
	withCSRF bool
}

func (e *testEnv) do(w who, r request) *httptest.ResponseRecorder {
	e.t.Helper()
	var body io.Reader
	// Browsers send forms only with POST; DELETE and PUT carry the token
	// in the header, as scripts do.
	csrfHeaderOnly := r.withCSRF && r.method != http.MethodPost
	if r.form != nil || (r.withCSRF && !csrfHeaderOnly) {
		f := url.Values{}
		for k, v := range r.form {
			f[k] = v
		}
		if r.withCSRF && !csrfHeaderOnly {
			f.Set(csrfField, w.csrf)
		}
		body = strings.NewReader(f.Encode())
		r.ctype = "application/x-www-form-urlencoded"
	} else if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	if csrfHeaderOnly {
		req.Header.Set(csrfHeader, w.csrf)
	}
	if w.cookie != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: w.cookie})
	}
	if w.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+w.bearer)
	}
	if w.remote != "" {
		req.RemoteAddr = w.remote
	}
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestLoginFlow(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.AdminPassword = "correct horse battery" })
	if pw, err := e.s.EnsureAdmin(context.Background()); err != nil || pw != "" {
		t.Fatalf("EnsureAdmin() = %q, %v; want no generated password when one is configured", pw, err)
	}
	// Anonymous page views go to the login page.
	rec := e.do(anonymous, request{method: "GET", path: "/reports?x=1"})
	if rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login?next=") {
		t.Fatalf("GET /reports anonymous = %d %q, want a redirect to /login", rec.Code, rec.Header().Get("Location"))
	}
	rec = e.do(anonymous, request{method: "GET", path: "/login"})
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /login = %d", rec.Code)
	}
	var loginTok string
	for _, c := range rec.Result().Cookies() {
		if c.Name == loginCookie {
			loginTok = c.Value
			if !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
				t.Errorf("login cookie %+v: want HttpOnly and SameSite=Lax", c)
			}
		}
	}
	if loginTok == "" || !strings.Contains(rec.Body.String(), `value="`+loginTok+`"`) {
		t.Fatalf("GET /login: the form does not carry the login cookie's token")
	}
	post := func(csrf, pw string) *httptest.ResponseRecorder {
		f := url.Values{"username": {"admin"}, "password": {pw}, "csrf": {csrf}, "next": {"/reports"}}
		req := httptest.NewRequest("POST", "/login", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: loginCookie, Value: loginTok})
		rec := httptest.NewRecorder()
		e.s.Handler().ServeHTTP(rec, req)
		return rec
	}
	if rec := post("", "correct horse battery"); rec.Code != http.StatusForbidden {
		t.Errorf("POST /login without the CSRF token = %d, want 403", rec.Code)
	}
	if rec := post(loginTok, "wrong"); rec.Code != http.StatusUnauthorized {
		t.Errorf("POST /login with a wrong password = %d, want 401", rec.Code)
	}
	rec = post(loginTok, "correct horse battery")
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/reports" {
		t.Fatalf("POST /login = %d %q, want 303 to /reports", rec.Code, rec.Header().Get("Location"))
	}
	var sess *http.Cookie
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie {
			sess = c
		}
	}
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode || sess.Secure {
		t.Fatalf("session cookie = %+v; want HttpOnly, SameSite=Lax, not Secure without TLS", sess)
	}
	admin := who{cookie: sess.Value}
	rec = e.do(admin, request{method: "GET", path: "/"})
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / logged in = %d", rec.Code)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("GET /: no CSRF token in the page")
	}
	admin.csrf = m[1]
	if rec := e.do(admin, request{method: "POST", path: "/logout"}); rec.Code != http.StatusForbidden {
		t.Errorf("POST /logout without CSRF = %d, want 403", rec.Code)
	}
	if rec := e.do(admin, request{method: "POST", path: "/logout", withCSRF: true}); rec.Code != http.StatusSeeOther {
		t.Errorf("POST /logout = %d, want 303", rec.Code)
	}
	if rec := e.do(admin, request{method: "GET", path: "/api/v1/domains"}); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/domains after logout = %d, want 401", rec.Code)
	}
}

func TestLoginNextStaysOnSite(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/reports?a=1", "/reports?a=1"}, {"", "/"}, {"//evil.example/", "/"}, {"https://evil.example/", "/"}, {"/\\evil.example", "/"}, {"/\t/evil.example", "/"}, {"/\n/evil.example", "/"}, {"/ok\\", "/"},
	} {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEnsureAdminGenerates(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	pw, err := e.s.EnsureAdmin(ctx)
	if err != nil || len(pw) < 16 {
		t.Fatalf("EnsureAdmin() = %q, %v; want a generated password", pw, err)
	}
	u, err := e.d.UserByName(ctx, AdminUser)
	if err != nil || u.Role != db.RoleAdmin || strings.Contains(u.PasswordHash, pw) || !strings.HasPrefix(u.PasswordHash, "$2") {
		t.Fatalf("stored admin = %+v, %v; want a bcrypt hash, not the password", u, err)
	}
	if pw2, err := e.s.EnsureAdmin(ctx); err != nil || pw2 != "" {
		t.Errorf("second EnsureAdmin() = %q, %v; want nothing new", pw2, err)
	}
}

func TestCSRFRequiredForCookieNotBearer(t *testing.T) {
	e := newTestEnv(t, nil)
	ctx := context.Background()
	admin := e.login(db.RoleAdmin)
	rec := e.do(admin, request{method: "POST", path: "/domains", form: url.Values{"domain": {"a.example"}}})
	if rec.Code != http.StatusForbidden {
		t.Errorf("POST /domains without CSRF = %d, want 403", rec.Code)
	}
	forged := admin
	forged.csrf = "forged"
	if rec := e.do(forged, request{method: "POST", path: "/domains", form: url.Values{"domain": {"a.example"}}, withCSRF: true}); rec.Code != http.StatusForbidden {
		t.Errorf("POST /domains with a wrong CSRF token = %d, want 403", rec.Code)
	}
	// The JSON API with a cookie needs the header too.
	if rec := e.do(admin, request{method: "POST", path: "/api/v1/domains", body: `{"domain":"b.example"}`, ctype: "application/json"}); rec.Code != http.StatusForbidden {
		t.Errorf("POST /api/v1/domains with a cookie and no CSRF = %d, want 403", rec.Code)
	}
	if ds, _ := e.d.Domains(ctx); len(ds) != 0 {
		t.Fatalf("domains after refused requests = %v, want none", ds)
	}
	if rec := e.do(admin, request{method: "POST", path: "/domains", form: url.Values{"domain": {"a.example"}}, withCSRF: true}); rec.Code != http.StatusSeeOther {
		t.Errorf("POST /domains with CSRF = %d, want 303: %s", rec.Code, rec.Body)
	}
	tok := e.token(db.RoleAdmin)
	if rec := e.do(tok, request{method: "POST", path: "/api/v1/domains", body: `{"domain":"B.Example."}`, ctype: "application/json"}); rec.Code != http.StatusCreated {
		t.Errorf("POST /api/v1/domains with a token = %d, want 201: %s", rec.Code, rec.Body)
	}
	ds, err := e.d.Domains(ctx)
	if err != nil || len(ds) != 2 || ds[0].Name != "a.example" || ds[1].Name != "b.example" {
		t.Errorf("Domains() = %v, %v; want a.example and b.example", ds, err)
	}
	log, err := e.d.AuditLog(ctx, "a.example", 10)
	if err != nil || len(log) != 1 || log[0].Actor != "admin-user" || log[0].Action != "domain.add" {
		t.Errorf("AuditLog(a.example) = %+v, %v; want the add by admin-user", log, err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newTestEnv(t, nil)
	rec := e.do(anonymous, request{method: "GET", path: "/login"})
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options missing")
	}
	// No inline script or style in any page.
	if regexp.MustCompile(`<script>|<script [^>]*>[^<]|style=`).MatchString(rec.Body.String()) {
		t.Errorf("GET /login has an inline script or style attribute")
	}
	// Assets are served under their hashed name, cached long.
	m := regexp.MustCompile(`href="(/static/style\.[0-9a-f]+\.css)"`).FindStringSubmatch(rec.Body.String())
	if m == nil {
		t.Fatalf("no hashed stylesheet link in the login page")
	}
	rec = e.do(anonymous, request{method: "GET", path: m[1]})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/css") {
		t.Errorf("GET %s = %d %v", m[1], rec.Code, rec.Header())
	}
	if rec := e.do(anonymous, request{method: "GET", path: "/static/style.css"}); rec.Code != http.StatusNotFound {
		t.Errorf("GET /static/style.css (unhashed) = %d, want 404", rec.Code)
	}
}

func TestSecureCookiesBehindTLS(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.SecureCookies = true })
	rec := e.do(anonymous, request{method: "GET", path: "/login"})
	for _, c := range rec.Result().Cookies() {
		if !c.Secure {
			t.Errorf("cookie %s not Secure with SecureCookies", c.Name)
		}
	}
	if rec.Header().Get("Strict-Transport-Security") == "" {
		t.Errorf("no HSTS with SecureCookies")
	}
}

func TestErrorsAreJSONForTheAPI(t *testing.T) {
	e := newTestEnv(t, nil)
	v := e.token(db.RoleViewer)
	rec := e.do(v, request{method: "GET", path: "/api/v1/reports/999"})
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"message"`) || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("GET missing report = %d %s", rec.Code, rec.Body)
	}
	rec = e.do(v, request{method: "GET", path: "/api/v1/domains/not_a_domain!/summary"})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not a valid domain") {
		t.Errorf("GET summary of a bad domain = %d %s", rec.Code, rec.Body)
	}
	rec = e.do(v, request{method: "GET", path: "/api/v1/domains/example.com/summary?days=12"})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "7, 30, 90 or 365") {
		t.Errorf("GET summary?days=12 = %d %s", rec.Code, rec.Body)
	}
	rec = e.do(e.login(db.RoleViewer), request{method: "GET", path: "/reports/999"})
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "<html") {
		t.Errorf("GET /reports/999 page = %d, want an HTML 404", rec.Code)
	}
}

// verifyPoster gives addr (a poster's address, as e.do's remote) the
// forward-confirmed reverse name name in the test's DNS: its posts are
// then verified for reports whose contact-info is under name's domain.
func (e *testEnv) verifyPoster(addr, name string) {
	e.t.Helper()
	a := netip.MustParseAddr(addr)
	rev, err := dns.ReverseAddr(a.String())
	if err != nil {
		e.t.Fatal(err)
	}
	typ := "A"
	if a.Is6() {
		typ = "AAAA"
	}
	e.dns.Add(e.t, rev+" 300 IN PTR "+name+".", name+". 300 IN "+typ+" "+a.String())
}
