package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db/pgembed"
	"github.com/tlsrpt/tlsrpt/internal/testreq"
	"github.com/tlsrpt/tlsrpt/reports/reportgen"
)

// TestDemo runs the README's first command the way a newcomer does (as a
// built binary), waits for the dashboard, checks through the API that the
// demo domains have the verdicts their story promises, and stops it with
// Ctrl-C.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the whole product")
	}
	if _, err := pgembed.FindBinDir(context.Background()); err != nil {
		if testreq.Required("postgres") {
			t.Fatalf("PostgreSQL server binaries: %v", err)
		}
		t.Skipf("PostgreSQL server binaries: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "tlsrpt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1:0")
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "DATABASE_URL=", "TLSRPT_ADMIN_PASSWORD=", "TLSRPT_ADMIN_PASSWORD_FILE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	// The demo prints the dashboard's address and the login.
	urlRE := regexp.MustCompile(`Dashboard: (http://\S+)/`)
	loginRE := regexp.MustCompile(`Login:\s+(\S+) / (\S+)`)
	var base, user, password string
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(2 * time.Minute)
	for base == "" || password == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("demo ended before printing its address; stderr:\n%s", stderr.String())
			}
			if m := urlRE.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
			if m := loginRE.FindStringSubmatch(l); m != nil {
				user, password = m[1], m[2]
			}
		case <-timeout:
			t.Fatalf("demo printed no address within 2 minutes; stderr:\n%s", stderr.String())
		}
	}
	go io.Copy(io.Discard, stdout) // keep the pipe drained

	c := login(t, base, user, password)

	waitDemoVerdicts(t, c, base)

	// The stranger's domain shows up apart, as unlisted.
	var domains struct {
		Unlisted []struct {
			Domain string `json:"domain"`
		} `json:"unlisted"`
	}
	getJSON(t, c, base+"/api/v1/domains", &domains)
	found := false
	for _, u := range domains.Unlisted {
		found = found || u.Domain == reportgen.DemoStranger
	}
	if !found {
		t.Errorf("unlisted domains = %+v, want %s among them", domains.Unlisted, reportgen.DemoStranger)
	}

	// Promote the ready domain; the demo hosts its policy, so the new
	// enforce policy answers on loopback at once.
	page := getBody(t, c, base+"/")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the overview page")
	}
	// Switch the autopilot on for the ready domain: its panel shows the
	// plan at once (today's dry-run evaluation).
	resp, err := c.PostForm(base+"/domains/"+reportgen.DemoReady+"/autopilot", url.Values{"csrf": {m[1]}, "enabled": {"on"}})
	if err != nil {
		t.Fatal(err)
	}
	panel, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	plan := regexp.MustCompile(`class="autopilot-plan">([^<]*)`).FindStringSubmatch(string(panel))
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(panel), `data-enabled="true"`) || plan == nil {
		t.Fatalf("switching the autopilot on for %s: %s, want the page with the autopilot on and its plan", reportgen.DemoReady, resp.Status)
	}
	t.Logf("autopilot plan of %s: %s", reportgen.DemoReady, plan[1])
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/domains/"+reportgen.DemoReady+"/promote",
		strings.NewReader(`{"reason":"the demo test promotes the ready domain"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", m[1])
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var version struct {
		Mode string `json:"mode"`
		ID   string `json:"id"`
	}
	if resp.StatusCode/100 != 2 || json.Unmarshal(body, &version) != nil || version.Mode != "enforce" || version.ID == "" {
		t.Fatalf("promote %s: %s\n%s", reportgen.DemoReady, resp.Status, body)
	}
	// The verdict now watches the domain in enforce.
	var after struct {
		Mode string `json:"mode"`
	}
	getJSON(t, c, base+"/api/v1/domains/"+reportgen.DemoReady+"/verdict", &after)
	if after.Mode != "enforce" {
		t.Errorf("verdict mode after promote = %q, want enforce", after.Mode)
	}
	req, _ = http.NewRequest(http.MethodGet, base+"/.well-known/mta-sts.txt", nil)
	req.Host = "mta-sts." + reportgen.DemoReady
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") ||
		!strings.Contains(string(policy), "mode: enforce\r\n") {
		t.Errorf("hosted policy after promote: %s %q\n%s", resp.Status, resp.Header.Get("Content-Type"), policy)
	}

	// Ctrl-C stops everything cleanly.
	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("demo exited with %v after Ctrl-C; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("demo still running 30s after Ctrl-C")
	}
}

// waitDemoVerdicts waits until ingestion over IMAP, which runs in the
// background, has given every demo domain the verdict its story promises.
func waitDemoVerdicts(t *testing.T, c *http.Client, base string) {
	t.Helper()
	want := map[string]string{
		reportgen.DemoReady:      "",
		reportgen.DemoExpired:    "tls-failures",
		reportgen.DemoUnlistedMX: "mx-not-in-policy",
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok := true
		var state []string
		for d, blocker := range want {
			var v struct {
				Ready    bool `json:"ready"`
				Blockers []struct {
					Code string `json:"code"`
				} `json:"blockers"`
			}
			getJSON(t, c, base+"/api/v1/domains/"+d+"/verdict", &v)
			var codes []string
			for _, b := range v.Blockers {
				codes = append(codes, b.Code)
			}
			state = append(state, fmt.Sprintf("%s ready=%v blockers=%v", d, v.Ready, codes))
			if blocker == "" {
				ok = ok && v.Ready
			} else {
				ok = ok && !v.Ready && contains(codes, blocker)
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo verdicts after 90s:\n%s\nwant %s ready, %s blocked by tls-failures, %s blocked by mx-not-in-policy",
				strings.Join(state, "\n"), reportgen.DemoReady, reportgen.DemoExpired, reportgen.DemoUnlistedMX)
		}
		time.Sleep(time.Second)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// login signs in through the login form, as a browser does.
func login(t *testing.T, base, user, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	u, _ := url.Parse(base)
	var csrf string
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "tlsrpt_login" {
			csrf = ck.Value
		}
	}
	resp, err = c.PostForm(base+"/login", url.Values{"username": {user}, "password": {password}, "csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.Contains(resp.Request.URL.Path, "login") {
		t.Fatalf("login: %s at %s\n%s", resp.Status, resp.Request.URL, body)
	}
	return c
}

func getBody(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	return string(body)
}

func getJSON(t *testing.T, c *http.Client, u string, v any) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 10<<20))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
}
