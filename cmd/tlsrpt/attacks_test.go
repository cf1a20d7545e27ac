package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/api"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

// servedApp starts `tlsrpt serve` in this process, configured from env
// as the command reads it, against a fresh private database, on a
// loopback port; it returns the base URL, the store and the log. The
// server stops when the test ends.
func servedApp(t *testing.T, env map[string]string) (base string, store *db.DB, log *syncBuilder) {
	t.Helper()
	store = dbtest.New(t)
	log = &syncBuilder{}
	e := &Env{Stdout: &strings.Builder{}, Stderr: log, Getenv: func(k string) string { return env[k] }}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	parse := parseServeFlags(fs, e)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:0", "--no-imap"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	a := &app{env: e, cfg: cfg, log: newLogger(e, cfg), store: store, ready: func(addr, _ string) { ready <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
	})
	select {
	case addr := <-ready:
		return "http://" + addr, store, log
	case err := <-done:
		t.Fatalf("run() = %v before it was ready; log:\n%s", err, log.String())
	case <-time.After(time.Minute):
		t.Fatal("server not ready within a minute")
	}
	return "", nil, nil
}

// endless is a request body of n bytes that counts what was read of it;
// the transport may still be reading it after the answer came.
type endless struct {
	n    int64
	read atomic.Int64
}

func (r *endless) Read(p []byte) (int, error) {
	read := r.read.Load()
	if read >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-read)]
	for i := range p {
		p[i] = 'a'
	}
	r.read.Add(int64(len(p)))
	return len(p), nil
}

// TestServeAttacks repeats, against a real `tlsrpt serve`, the attacks of
// RELIABILITY.md "Attacks on intake and evidence" (api hardening): an
// unbounded login body, user enumeration by login time, a long user
// name in the log, NUL in a filter, the domain list in /metrics, and an
// unlimited live check. The figures are logged (go test -v).
func TestServeAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server and logs in with bcrypt")
	}
	adminPW, metricsToken := randomHex(12), randomHex(16)
	tokenFile := filepath.Join(t.TempDir(), "metrics-token")
	if err := os.WriteFile(tokenFile, []byte(metricsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The reports posted below come from loopback, whose reverse name
	// this DNS confirms under their reporter's contact-info domain:
	// verified posts, as a real reporter's would be.
	dns := dnstest.Start(t, "example.", "test-key.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	_, contact, _ := strings.Cut(reportgen.Reporters[3000%len(reportgen.Reporters)].Contact, "@")
	// From 127.0.0.2: /etc/hosts names 127.0.0.1 localhost, and the
	// resolver reads it first.
	dns.Add(t, "2.0.0.127.in-addr.arpa. 300 IN PTR mta.tlsrpt-test."+contact+".", "mta.tlsrpt-test."+contact+". 300 IN A 127.0.0.2")
	base, store, log := servedApp(t, map[string]string{
		"TLSRPT_ADMIN_PASSWORD":     adminPW,
		"TLSRPT_METRICS_TOKEN_FILE": tokenFile,
		"TLSRPT_RATE_LOGIN":         "off", // many logins from one address, for the timing figures
		"TLSRPT_RATE_CHECK":         "1/m,2",
		"TLSRPT_RESOLVER":           dns.Addr, // a DNS of the test's own: the live check fails fast, on loopback
	})
	ctx := context.Background()
	viewer := api.NewAPIToken()
	if _, err := store.CreateAPIToken(ctx, db.SecretHash(viewer), "attacks", db.RoleViewer); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Minute, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext}}
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, string(b)
	}

	// 1. The login body: 296 MiB of multipart announced, and an endless
	// URL-encoded body; the server answers without reading them.
	for _, tc := range []struct {
		ctype string
		size  int64
		chunk bool
		want  int
	}{
		{"multipart/form-data; boundary=x", 296 << 20, false, http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", 64 << 20, true, http.StatusRequestEntityTooLarge},
	} {
		body := &endless{n: tc.size}
		req, _ := http.NewRequest("POST", base+"/login", body)
		req.Header.Set("Content-Type", tc.ctype)
		req.ContentLength = tc.size
		if tc.chunk {
			req.ContentLength = -1
		}
		start := time.Now()
		resp, err := client.Do(req)
		took := time.Since(start)
		if err != nil {
			// The server may close the connection while the client still
			// writes: that is a refusal too, as long as little was sent.
			t.Logf("POST /login %s: %v after %d bytes sent", tc.ctype, err, body.read.Load())
		} else {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("POST /login %s of %d bytes = %d, want %d", tc.ctype, tc.size, resp.StatusCode, tc.want)
			}
		}
		sent := body.read.Load()
		if sent > 16<<20 {
			t.Errorf("POST /login %s: the client sent %d bytes before the answer; the server read on", tc.ctype, sent)
		}
		// What the client wrote includes what the kernel's socket buffers
		// took; the server itself reads at most 8 KiB (api TestLoginBodyBounded).
		t.Logf("figure: POST /login %s, %d MiB offered: answered %v in %v, the client had written %d KiB", tc.ctype, tc.size>>20, statusOf(resp), took.Round(time.Millisecond), sent>>10)
	}

	// 2 and 3. Logins: an unknown name, a known one with a wrong password,
	// a 7 KiB name; the times are figures, not assertions.
	login := func(user, pw string) (int, time.Duration) {
		t.Helper()
		resp, _ := do(mustRequest(t, "GET", base+"/login", nil))
		var tok string
		for _, c := range resp.Cookies() {
			if c.Name == "tlsrpt_login" {
				tok = c.Value
			}
		}
		f := url.Values{"username": {user}, "password": {pw}, "csrf": {tok}}
		req := mustRequest(t, "POST", base+"/login", strings.NewReader(f.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: "tlsrpt_login", Value: tok})
		start := time.Now()
		resp, _ = do(req)
		return resp.StatusCode, time.Since(start)
	}
	median := func(user string) time.Duration {
		var ds []time.Duration
		for range 7 {
			code, d := login(user, "wrong password")
			if code != http.StatusUnauthorized {
				t.Fatalf("login as %.20q with a wrong password = %d, want 401", user, code)
			}
			ds = append(ds, d)
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	unknown, known := median("no-such-user"), median(api.AdminUser)
	t.Logf("figure: failed login, median of 7: unknown user %v, known user %v", unknown.Round(time.Millisecond), known.Round(time.Millisecond))
	if code, _ := login(strings.Repeat("n", 7<<10), "x"); code != http.StatusUnauthorized {
		t.Errorf("login as a 7 KiB name = %d, want 401", code)
	}
	longest := 0
	for _, l := range strings.Split(log.String(), "\n") {
		if strings.Contains(l, "Login failed") {
			longest = max(longest, len(l))
		}
	}
	if longest == 0 || longest > 1024 {
		t.Errorf("longest \"Login failed\" log line: %d bytes, want 1-1024 after a 7 KiB name", longest)
	}
	t.Logf("figure: a 7 KiB user name: longest \"Login failed\" log line %d bytes", longest)

	// 4. NUL and invalid UTF-8 in filters.
	for _, q := range []string{"org=%00", "result=%ff", "mx=a%00b", "ip=%c3%28", "q=%00"} {
		for _, path := range []string{"/api/v1/reports", "/api/v1/domains"} {
			req := mustRequest(t, "GET", base+path+"?"+q, nil)
			req.Header.Set("Authorization", "Bearer "+viewer)
			resp, body := do(req)
			name, _, _ := strings.Cut(q, "=")
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "query parameter "+name) {
				t.Errorf("GET %s?%s = %d %.200s, want 400 naming %s", path, q, resp.StatusCode, body, name)
			}
		}
	}

	// 6. /metrics: the domain list only with the token from the file.
	_, jsons := instanceReports(3000, 1)
	req := mustRequest(t, "POST", base+"/tlsrpt", bytes.NewReader(jsons[0]))
	req.Header.Set("Content-Type", "application/tlsrpt+json")
	if resp, body := do(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /tlsrpt = %d %s", resp.StatusCode, body)
	}
	if _, _, err := store.AddDomain(ctx, "instances.example"); err != nil {
		t.Fatal(err)
	}
	var trusted bool
	var reporter, remoteName string
	if err := store.Pool.QueryRow(ctx, `SELECT trusted, reporter, remote_name FROM reports`).Scan(&trusted, &reporter, &remoteName); err != nil || !trusted {
		t.Errorf("the posted report: trusted %v, reporter %q, remote name %q (%v); want verified by its reverse name", trusted, reporter, remoteName, err)
	}
	scrape := func(bearer string) (int, string) {
		req := mustRequest(t, "GET", base+"/metrics", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, body := do(req)
		return resp.StatusCode, body
	}
	if code, body := scrape(""); code != http.StatusOK || strings.Contains(body, "instances.example") || !strings.Contains(body, "tlsrpt_reports_stored") {
		t.Errorf("GET /metrics anonymous = %d, domain listed %v; want 200 without the domain", code, strings.Contains(body, "instances.example"))
	}
	if code, _ := scrape(metricsToken + "x"); code != http.StatusUnauthorized {
		t.Errorf("GET /metrics with a wrong token = %d, want 401", code)
	}
	if code, body := scrape(metricsToken); code != http.StatusOK || !strings.Contains(body, `tlsrpt_sessions_total{domain="instances.example"`) {
		t.Errorf("GET /metrics with the token = %d, per-domain series %v; want 200 with them", code, strings.Contains(body, "instances.example"))
	}

	// 7. The live check: 2 for the token, then 429 with Retry-After.
	var codes []int
	var retry string
	for range 4 {
		req := mustRequest(t, "GET", base+"/api/v1/domains/instances.example/check", nil)
		req.Header.Set("Authorization", "Bearer "+viewer)
		resp, _ := do(req)
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			retry = resp.Header.Get("Retry-After")
		}
	}
	if !slices.Equal(codes, []int{200, 200, 429, 429}) || !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(retry) {
		t.Errorf("4 live checks by one token = %v, Retry-After %q; want 200 200 429 429 with Retry-After", codes, retry)
	}
	t.Logf("figure: 4 live checks by one viewer token with TLSRPT_RATE_CHECK=1/m,2: %v, Retry-After %s s", codes, retry)
}

func mustRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return "connection closed"
	}
	return fmt.Sprint(resp.StatusCode)
}
