package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Tests of the API hardening found by probing a running server from
// outside (RELIABILITY.md, "Attacks on intake and evidence").

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{"admin", "admin"},
		{strings.Repeat("a", maxLogField), strings.Repeat("a", maxLogField)},
		{strings.Repeat("a", maxLogField+10), strings.Repeat("a", maxLogField) + "…[10 more bytes]"},
		// Never cut inside a character: "é" is 2 bytes and straddles the bound.
		{strings.Repeat("a", maxLogField-1) + "é" + "bc", strings.Repeat("a", maxLogField-1) + "…[4 more bytes]"},
	} {
		got := clip(tc.in)
		if got != tc.want || !utf8.ValidString(got) {
			t.Errorf("clip(%.20q… %d bytes) = %.20q… %d bytes, want %d bytes", tc.in, len(tc.in), got, len(got), len(tc.want))
		}
	}
}

// TestClientInputLogBounded: a long user name, path and user agent reach
// the log bounded, on the failed login and on the internal error (the
// store down), whose error quotes the user name.
func TestClientInputLogBounded(t *testing.T) {
	var buf lockedBuffer
	e := newTestEnv(t, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(&buf, nil)) })
	long := strings.Repeat("x", 6000)
	if rec := formLogin(t, e, "192.0.2.9:1", long, "wrong"); rec.Code != http.StatusUnauthorized {
		t.Fatalf("login as a 6000-byte name = %d, want 401", rec.Code)
	}
	setDown := dbtest.Outage(t, e.d)
	setDown(true)
	defer setDown(false)
	formLogin(t, e, "192.0.2.9:1", long, "wrong")
	req := httptest.NewRequest("GET", "/reports/"+long, nil)
	req.Header.Set("User-Agent", long)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "x"})
	rec := httptest.NewRecorder()
	e.s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("GET with the store down = %d, Retry-After %q; want 503 with it", rec.Code, rec.Header().Get("Retry-After"))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var failed, internal int
	for _, l := range lines {
		// An error keeps up to maxLogError bytes, other fields maxLogField.
		if len(l) > maxLogError+1024 {
			t.Errorf("log line of %d bytes: %.300s…", len(l), l)
		}
		if strings.Contains(l, "Login failed") && strings.Contains(l, "more bytes]") {
			failed++
		}
		if strings.Contains(l, "Request failed") && strings.Contains(l, "more bytes]") {
			internal++
		}
	}
	if failed != 1 || internal != 2 {
		t.Errorf("%d clipped failed logins (want 1) and %d clipped internal errors (want 2) in the log:\n%.3000s", failed, internal, buf.String())
	}
}

// countingReader is an endless request body that counts what the server
// read of it.
type countingReader struct {
	n    int64
	fill byte
}

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.fill
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestLoginBodyBounded: the login form takes a URL-encoded body of at most
// maxLoginBody bytes. A larger one is refused with 413 after reading no
// more than the bound (nothing at all when Content-Length says so), a
// multipart one with 415 without reading it; an anonymous request once
// spooled 296 MiB to /tmp.
func TestLoginBodyBounded(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, tc := range []struct {
		name     string
		ctype    string
		length   int64 // Content-Length; -1: chunked, unknown
		want     int
		wantRead int64 // at most
		wantMsg  string
	}{
		{"urlencoded, chunked, endless", "application/x-www-form-urlencoded", -1, http.StatusRequestEntityTooLarge, maxLoginBody + 1, "larger than 8192 bytes"},
		{"urlencoded, 1 MiB announced", "application/x-www-form-urlencoded", 1 << 20, http.StatusRequestEntityTooLarge, 0, "larger than 8192 bytes"},
		{"multipart, 296 MiB announced", "multipart/form-data; boundary=x", 296 << 20, http.StatusUnsupportedMediaType, 0, "application/x-www-form-urlencoded"},
		{"multipart, chunked", "multipart/form-data; boundary=x", -1, http.StatusUnsupportedMediaType, 0, "not &#34;multipart/form-data&#34;"},
		{"no type", "", -1, http.StatusUnsupportedMediaType, 0, "application/x-www-form-urlencoded"},
	} {
		body := &countingReader{fill: 'a'}
		req := httptest.NewRequest("POST", "/login", io.LimitReader(body, 300<<20))
		req.ContentLength = tc.length
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		req.AddCookie(&http.Cookie{Name: loginCookie, Value: "t"})
		rec := httptest.NewRecorder()
		e.s.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want || body.n > tc.wantRead || !strings.Contains(rec.Body.String(), tc.wantMsg) {
			t.Errorf("%s: POST /login = %d after reading %d bytes, want %d after at most %d bytes, with %q: %.300s",
				tc.name, rec.Code, body.n, tc.want, tc.wantRead, tc.wantMsg, rec.Body)
		}
	}
	// A form within the bound is read as before: a wrong password is 401.
	if rec := formLogin(t, e, "192.0.2.9:1", strings.Repeat("u", maxLoginBody/2), "wrong"); rec.Code != http.StatusUnauthorized {
		t.Errorf("login form of %d bytes = %d, want 401", maxLoginBody/2, rec.Code)
	}
}

// TestLoginCostsOneComparison: every failed login costs one bcrypt
// comparison, whether the name is unknown, the password wrong or too long,
// or the stored hash broken, so the answer's time does not tell which
// names exist (an unknown name answered in 3 ms, a known one in
// 120-150 ms). Counted through the compareHash hook, not timed.
func TestLoginCostsOneComparison(t *testing.T) {
	if c, err := bcrypt.Cost([]byte(dummyHash)); err != nil || c != bcrypt.DefaultCost {
		t.Fatalf("bcrypt.Cost(dummyHash) = %d, %v; want %d, the cost of HashPassword", c, err, bcrypt.DefaultCost)
	}
	h, err := HashPassword("any")
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != bcrypt.DefaultCost {
		t.Fatalf("HashPassword's cost = %d, dummyHash's %d: they must match", c, bcrypt.DefaultCost)
	}
	e := newTestEnv(t, nil)
	var hashes []string
	e.s.compareHash = func(hash, pw []byte) error {
		hashes = append(hashes, string(hash))
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	ctx := context.Background()
	real, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.PutUser(ctx, "alice", string(real), db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.PutUser(ctx, "broken", "not a bcrypt hash", db.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		why, user, pw string
		want          int
		wantHash      string
	}{
		{"unknown user", "nobody", "right", http.StatusUnauthorized, dummyHash},
		{"wrong password", "alice", "wrong", http.StatusUnauthorized, string(real)},
		{"password over 72 bytes", "alice", "right" + strings.Repeat("!", 70), http.StatusUnauthorized, string(real)},
		{"stored hash not bcrypt", "broken", "not a bcrypt hash", http.StatusUnauthorized, dummyHash},
		{"right password", "alice", "right", http.StatusSeeOther, string(real)},
	} {
		hashes = nil
		rec := formLogin(t, e, "192.0.2.9:1", tc.user, tc.pw)
		if rec.Code != tc.want || len(hashes) != 1 || hashes[0] != tc.wantHash {
			t.Errorf("%s: login = %d with %d comparisons %q; want %d after one comparison with %q", tc.why, rec.Code, len(hashes), hashes, tc.want, tc.wantHash)
		}
	}
}

// TestQueryNULAndInvalidUTF8 sends ?org=%00 (and the other filters, and
// invalid UTF-8) to every GET route of the router: each answers 400 with a
// message naming the parameter, where /api/v1/reports?org=%00 answered 500
// (PostgreSQL text holds neither).
func TestQueryNULAndInvalidUTF8(t *testing.T) {
	e := newTestEnv(t, nil)
	admin := e.token(db.RoleAdmin)
	n := 0
	for _, rt := range e.s.echo.Routes() {
		if rt.Method != http.MethodGet {
			continue
		}
		for _, param := range []string{"org", "result", "mx", "ip", "q", "domain", "next"} {
			for _, bad := range []string{"%00", "%ff", "ok%00", "%c3%28"} {
				path := concretePath(rt.Path) + "?days=30&" + param + "=" + bad
				rec := e.do(admin, request{method: "GET", path: path})
				n++
				if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "query parameter "+param+" holds") {
					t.Errorf("GET %s = %d, want 400 naming %s: %.300s", path, rec.Code, param, rec.Body)
				}
			}
		}
	}
	for _, path := range []string{"/api/v1/reports?%00=1", "/api/v1/reports?org=%zz", "/reports?a=1;b=2"} {
		if rec := e.do(admin, request{method: "GET", path: path}); rec.Code != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400: %.300s", path, rec.Code, rec.Body)
		}
	}
	// Clean text, including non-ASCII, goes through.
	for _, path := range []string{"/api/v1/reports?org=Gm%C3%A4il&result=starttls-not-supported&mx=mx.example&ip=192.0.2.1", "/api/v1/domains?q=%C3%A9", "/reports?org=x"} {
		if rec := e.do(admin, request{method: "GET", path: path}); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200: %.300s", path, rec.Code, rec.Body)
		}
	}
	if n < 400 {
		t.Errorf("only %d requests tried", n)
	}
}

// TestLiveCheckLimitedPerUser: the live check (DNS and HTTPS to any name a
// viewer types) is limited per user and per API token, on the three ways
// to run it, with 429 and Retry-After beyond the limit; other users keep
// theirs, and the limit refills on the server's clock.
func TestLiveCheckLimitedPerUser(t *testing.T) {
	var now atomic.Int64 // the one clock of this test, from testNow
	now.Store(testNow.UnixNano())
	e := newTestEnv(t, func(c *Config) {
		c.Now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
		c.Inspector = &rollout.Inspector{Resolver: "127.0.0.1:9", Timeout: 300 * time.Millisecond}
		c.CheckRate = Rate{Per: 1, Every: time.Minute, Burst: 2}
	})
	if _, _, err := e.d.AddDomain(context.Background(), "example.com"); err != nil {
		t.Fatal(err)
	}
	tok, other := e.token(db.RoleViewer), e.login(db.RoleViewer)
	get := func(w who, path string, want int) {
		t.Helper()
		rec := e.do(w, request{method: "GET", path: path})
		if rec.Code != want {
			t.Fatalf("GET %s as %s = %d, want %d: %.300s", path, w.name, rec.Code, want, rec.Body)
		}
		if ra, _ := strconv.Atoi(rec.Header().Get("Retry-After")); want == http.StatusTooManyRequests && (ra < 1 || ra > 60 || !strings.Contains(rec.Body.String(), "too many live checks")) {
			t.Errorf("GET %s as %s: Retry-After %q, %.300s; want 1-60 s and the reason", path, w.name, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	get(tok, "/api/v1/domains/example.com/check", http.StatusOK)
	get(tok, "/api/v1/domains/example.com/verdict?check=1", http.StatusOK)
	get(tok, "/api/v1/domains/other.example/check", http.StatusTooManyRequests)
	get(tok, "/api/v1/domains/example.com/verdict?check=1", http.StatusTooManyRequests)
	get(tok, "/api/v1/domains/example.com/verdict", http.StatusOK) // no check, no limit
	// Another user has a bucket of its own, on the page too.
	get(other, "/domains/example.com?check=1", http.StatusOK)
	get(other, "/domains/example.com?check=1", http.StatusOK)
	get(other, "/domains/example.com?check=1", http.StatusTooManyRequests)
	get(other, "/domains/example.com", http.StatusOK)
	now.Add(int64(61 * time.Second))
	get(tok, "/api/v1/domains/example.com/check", http.StatusOK)
	get(tok, "/api/v1/domains/example.com/check", http.StatusTooManyRequests)
}

func TestCheckRateSetting(t *testing.T) {
	env := map[string]string{"TLSRPT_RATE_CHECK": "3/m,2"}
	s, err := LoadSettings(func(k string) string { return env[k] })
	if err != nil || s.CheckRate != (Rate{Per: 3, Every: time.Minute, Burst: 2}) {
		t.Errorf("LoadSettings(TLSRPT_RATE_CHECK=3/m,2) = %+v, %v", s.CheckRate, err)
	}
	var cfg Config
	s.ApplyTo(&cfg)
	if cfg.CheckRate != s.CheckRate {
		t.Errorf("ApplyTo: CheckRate %+v, want %+v", cfg.CheckRate, s.CheckRate)
	}
	env["TLSRPT_RATE_CHECK"] = "3/d"
	if _, err := LoadSettings(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), "TLSRPT_RATE_CHECK") {
		t.Errorf("LoadSettings(TLSRPT_RATE_CHECK=3/d) = %v, want an error naming it", err)
	}
	if s, _ := LoadSettings(func(string) string { return "" }); s.CheckRate != DefaultCheckRate {
		t.Errorf("default CheckRate = %+v, want %+v", s.CheckRate, DefaultCheckRate)
	}
}

// TestMetricsToken: /metrics lists every listed domain with its traffic
// only to a scraper with the bearer token TLSRPT_METRICS_TOKEN; anyone
// else gets the process-wide series, and a wrong token is refused.
func TestMetricsToken(t *testing.T) {
	const token = "0123456789abcdef-metrics"
	const domainSeries = `tlsrpt_sessions_total{domain="example.com"`
	for _, configured := range []string{"", token} {
		e := newTestEnv(t, func(c *Config) { c.MetricsToken = configured })
		e.verifyPoster("192.0.2.1", "mta.sender.example") // httptest's remote address
		rec := e.do(anonymous, request{method: "POST", path: "/tlsrpt", body: string(reportJSONBody(t, "sender.example", "r-1")), ctype: "application/tlsrpt+json"})
		if rec.Code != http.StatusOK {
			t.Fatalf("POST /tlsrpt = %d %s", rec.Code, rec.Body)
		}
		if _, _, err := e.d.AddDomain(context.Background(), "example.com"); err != nil {
			t.Fatal(err)
		}
		scrape := func(w who, wantCode int, wantDomains bool) {
			t.Helper()
			rec := e.do(w, request{method: "GET", path: "/metrics"})
			body := rec.Body.String()
			if rec.Code != wantCode {
				t.Fatalf("token configured %v, GET /metrics as %q = %d, want %d: %.300s", configured != "", w.bearer, rec.Code, wantCode, body)
			}
			if wantCode != http.StatusOK {
				if rec.Header().Get("WWW-Authenticate") == "" || strings.Contains(body, "example.com") {
					t.Errorf("refused scrape: WWW-Authenticate %q, body %.300s", rec.Header().Get("WWW-Authenticate"), body)
				}
				return
			}
			if got := strings.Contains(body, domainSeries); got != wantDomains || strings.Contains(body, "example.com") != wantDomains {
				t.Errorf("token configured %v, GET /metrics as %q: per-domain series %v, want %v", configured != "", w.bearer, got, wantDomains)
			}
			for _, want := range []string{`tlsrpt_reports_stored{source="https",trusted="true"} 1`, "tlsrpt_metrics_store_error 0", "go_goroutines", `tlsrpt_https_reports_total{outcome="stored"} 1`} {
				if !strings.Contains(body, want) {
					t.Errorf("token configured %v, GET /metrics as %q lacks %q", configured != "", w.bearer, want)
				}
			}
		}
		scrape(anonymous, http.StatusOK, false)
		if configured == "" {
			scrape(who{bearer: token}, http.StatusOK, false) // nothing to unlock
			continue
		}
		scrape(who{bearer: token}, http.StatusOK, true)
		scrape(who{bearer: token[:len(token)-1]}, http.StatusUnauthorized, false)
		scrape(who{bearer: token + "x"}, http.StatusUnauthorized, false)
		scrape(e.token(db.RoleAdmin), http.StatusUnauthorized, false) // an API token is not the metrics token
	}
}

func TestMetricsTokenSetting(t *testing.T) {
	file := filepath.Join(t.TempDir(), "metrics-token")
	if err := os.WriteFile(file, []byte("from-a-file-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env       map[string]string
		want, err string
	}{
		{map[string]string{}, "", ""},
		{map[string]string{"TLSRPT_METRICS_TOKEN": "from-the-env-0123456789"}, "from-the-env-0123456789", ""},
		{map[string]string{"TLSRPT_METRICS_TOKEN_FILE": file}, "from-a-file-0123456789", ""},
		{map[string]string{"TLSRPT_METRICS_TOKEN": "x-0123456789abcdef", "TLSRPT_METRICS_TOKEN_FILE": file}, "", "TLSRPT_METRICS_TOKEN_FILE are both set"},
		{map[string]string{"TLSRPT_METRICS_TOKEN_FILE": file + ".missing"}, "", "TLSRPT_METRICS_TOKEN_FILE"},
		{map[string]string{"TLSRPT_METRICS_TOKEN": "short"}, "", "TLSRPT_METRICS_TOKEN: shorter than 16"},
	} {
		s, err := LoadSettings(func(k string) string { return tc.env[k] })
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("LoadSettings(%v) = %v, want an error with %q", tc.env, err, tc.err)
			}
			continue
		}
		var cfg Config
		s.ApplyTo(&cfg)
		if err != nil || cfg.MetricsToken != tc.want {
			t.Errorf("LoadSettings(%v): MetricsToken %q, %v; want %q", tc.env, cfg.MetricsToken, err, tc.want)
		}
	}
}

// TestSignedInFormBodyBounded: a signed-in browser's state change (a
// viewer's POST /logout) reads at most maxJSONBody of its body, multipart
// or not, before the CSRF check parses it.
func TestSignedInFormBodyBounded(t *testing.T) {
	e := newTestEnv(t, nil)
	v := e.login(db.RoleViewer)
	for _, tc := range []struct{ ctype, head string }{
		// A file part that never ends: the parser would spool it to disk.
		{"multipart/form-data; boundary=x", "--x\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f\"\r\n\r\n"},
		{"application/x-www-form-urlencoded", "csrf="},
	} {
		ctype := tc.ctype
		body := &countingReader{fill: 'a'}
		req := httptest.NewRequest("POST", "/logout", io.MultiReader(strings.NewReader(tc.head), io.LimitReader(body, 300<<20)))
		req.ContentLength = -1
		req.Header.Set("Content-Type", ctype)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: v.cookie})
		rec := httptest.NewRecorder()
		e.s.Handler().ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || body.n > maxJSONBody+1 {
			t.Errorf("POST /logout, %s, endless: %d after reading %d bytes; want 403 after at most %d", ctype, rec.Code, body.n, maxJSONBody+1)
		}
	}
}
