package api

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/torture"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// formLogin logs in through the real form: GET /login for the form's
// token, then POST it, with extra cookies (a planted session) on both.
func formLogin(t *testing.T, e *testEnv, remote, user, pw string, extra ...*http.Cookie) *httptest.ResponseRecorder {
	t.Helper()
	get := httptest.NewRequest("GET", "/login", nil)
	get.RemoteAddr = remote
	for _, c := range extra {
		get.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, get)
	var tok string
	for _, c := range rec.Result().Cookies() {
		if c.Name == loginCookie {
			tok = c.Value
		}
	}
	f := url.Values{"username": {user}, "password": {pw}, "csrf": {tok}, "next": {"/"}}
	post := httptest.NewRequest("POST", "/login", strings.NewReader(f.Encode()))
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	post.RemoteAddr = remote
	post.AddCookie(&http.Cookie{Name: loginCookie, Value: tok})
	for _, c := range extra {
		post.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, post)
	return rec
}

func sessionOf(rec *httptest.ResponseRecorder) string {
	for _, c := range rec.Result().Cookies() {
		if c.Name == sessionCookie && c.MaxAge >= 0 {
			return c.Value
		}
	}
	return ""
}

// canAddDomain says whether the session may do an admin's action:
// adding a domain through the form, with the session's own CSRF token.
func canAddDomain(t *testing.T, e *testEnv, session, domain string) int {
	t.Helper()
	page := e.do(who{cookie: session}, request{method: "GET", path: "/"})
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.Body.String())
	if m == nil {
		// Not logged in at all: the API says so.
		return e.do(who{cookie: session}, request{method: "GET", path: "/api/v1/domains"}).Code
	}
	return e.do(who{cookie: session, csrf: m[1]}, request{method: "POST", path: "/domains", form: url.Values{"domain": {domain}}, withCSRF: true}).Code
}

// TestSessionFixation: a session cookie planted before login (an unknown
// value, or an attacker's own viewer session) is never what the login
// hands out, and never gains the admin's rights.
func TestSessionFixation(t *testing.T) {
	const adminPW = "fixation test password"
	e := newTestEnv(t, func(c *Config) { c.AdminPassword = adminPW })
	if _, err := e.s.EnsureAdmin(context.Background()); err != nil {
		t.Fatal(err)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("viewer pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.PutUser(context.Background(), "mallory", string(hash), db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	// The attacker's own, valid viewer session.
	rec := formLogin(t, e, "192.0.2.50:1", "mallory", "viewer pw")
	viewer := sessionOf(rec)
	if rec.Code != http.StatusSeeOther || viewer == "" {
		t.Fatalf("viewer login = %d, session %q", rec.Code, viewer)
	}
	accepted := 0
	for _, planted := range []string{"attacker-chosen-session-value", viewer} {
		rec := formLogin(t, e, "192.0.2.51:1", AdminUser, adminPW, &http.Cookie{Name: sessionCookie, Value: planted})
		got := sessionOf(rec)
		if rec.Code != http.StatusSeeOther || got == "" {
			t.Fatalf("admin login with a planted session = %d, session %q", rec.Code, got)
		}
		if got == planted {
			t.Errorf("login kept the planted session %q", planted)
		}
		// The planted cookie has no admin rights afterwards; the new one has.
		if code := canAddDomain(t, e, planted, "planted.example"); code != http.StatusUnauthorized && code != http.StatusForbidden {
			accepted++
			t.Errorf("adding a domain with the planted session %.10s... after the admin logged in = %d, want 401 or 403", planted, code)
		}
		if code := canAddDomain(t, e, got, "admin.example"); code >= 400 {
			t.Errorf("adding a domain with the new admin session = %d", code)
		}
	}
	torture.Record(t, map[string]any{"planted_sessions": 2, "accepted_after_login": accepted})
}

// TestLoginBruteForce: 200 wrong passwords from one address; only the
// limiter's burst reaches the password check, the rest get 429 with
// Retry-After, and even the right password is refused from that address
// until the limit clears, while another address logs in.
func TestLoginBruteForce(t *testing.T) {
	const adminPW = "brute force test password"
	e := newTestEnv(t, func(c *Config) {
		c.AdminPassword = adminPW
		c.LoginRate = Rate{Per: 5, Every: time.Minute, Burst: 5}
	})
	if _, err := e.s.EnsureAdmin(context.Background()); err != nil {
		t.Fatal(err)
	}
	const attempts = 200
	codes := map[int]int{}
	start := time.Now()
	for i := range attempts {
		rec := formLogin(t, e, "198.51.100.7:1234", AdminUser, fmt.Sprintf("guess-%d", i))
		codes[rec.Code]++
		if rec.Code == http.StatusTooManyRequests && rec.Header().Get("Retry-After") == "" {
			t.Errorf("attempt %d: 429 without Retry-After", i)
		}
		if rec.Code == http.StatusSeeOther {
			t.Fatalf("attempt %d with a wrong password logged in", i)
		}
	}
	elapsed := time.Since(start)
	// Burst plus what refills during the run.
	allowed := 5 + int(elapsed.Minutes()*5) + 1
	if checked := codes[http.StatusUnauthorized]; checked > allowed || codes[http.StatusTooManyRequests] < attempts-allowed {
		t.Errorf("codes %v: %d attempts reached the password check, want at most %d", codes, checked, allowed)
	}
	if rec := formLogin(t, e, "198.51.100.7:1234", AdminUser, adminPW); rec.Code != http.StatusTooManyRequests {
		t.Errorf("right password from the limited address = %d, want 429", rec.Code)
	}
	if rec := formLogin(t, e, "198.51.100.8:1234", AdminUser, adminPW); rec.Code != http.StatusSeeOther {
		t.Errorf("right password from another address = %d, want 303", rec.Code)
	}
	torture.Record(t, map[string]any{"attempts": attempts, "reached_password_check": codes[http.StatusUnauthorized],
		"refused_429": codes[http.StatusTooManyRequests]})
}

// TestSecretsNotLogged runs logins (right and wrong), token and session
// use, CSRF failures and report posts with debug logging into a buffer,
// then looks for every secret in it.
func TestSecretsNotLogged(t *testing.T) {
	const adminPW = "Adm1n-secret-Passw0rd"
	var logs lockedBuffer
	e := newTestEnv(t, func(c *Config) {
		c.AdminPassword = adminPW
		c.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	if _, err := e.s.EnsureAdmin(context.Background()); err != nil {
		t.Fatal(err)
	}
	secrets := []string{adminPW, "wrong-Passw0rd-guess"}
	rec := formLogin(t, e, "192.0.2.60:1", AdminUser, "wrong-Passw0rd-guess")
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("wrong password = %d", rec.Code)
	}
	rec = formLogin(t, e, "192.0.2.61:1", AdminUser, adminPW)
	sess := sessionOf(rec)
	if sess == "" {
		t.Fatalf("login = %d, no session", rec.Code)
	}
	page := e.do(who{cookie: sess}, request{method: "GET", path: "/"})
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.Body.String())
	if m == nil {
		t.Fatal("no CSRF token in the page")
	}
	tok := e.token(db.RoleAdmin)
	secrets = append(secrets, sess, m[1], tok.bearer)
	// Use them all, rightly and wrongly.
	e.do(who{cookie: sess}, request{method: "POST", path: "/logout"}) // no CSRF: refused
	e.do(tok, request{method: "GET", path: "/api/v1/domains"})
	e.do(who{bearer: tok.bearer + "x"}, request{method: "GET", path: "/api/v1/domains"})
	e.do(who{cookie: sess + "x"}, request{method: "GET", path: "/api/v1/domains"})
	e.do(who{remote: "192.0.2.62:1"}, request{method: "POST", path: "/tlsrpt", body: `{"organization-name":"` + adminPW + `"}`, ctype: "application/tlsrpt+json"})
	e.do(who{cookie: sess, csrf: m[1]}, request{method: "POST", path: "/logout", withCSRF: true})
	out := logs.String()
	if out == "" {
		t.Fatalf("nothing was logged: the test would prove nothing")
	}
	leaked := 0
	for _, s := range secrets {
		if strings.Contains(out, s) {
			leaked++
			t.Errorf("the log contains a secret (%.6s...)", s)
		}
	}
	torture.Record(t, map[string]any{"secrets": len(secrets), "log_bytes": len(out), "leaked": leaked})
}
