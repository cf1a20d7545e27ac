package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// claimReport is a report of org for day whose policies are given as
// JSON objects.
func claimReport(org, id string, day time.Time, policies []string) string {
	return fmt.Sprintf(`{"organization-name": %q, "report-id": %q, "contact-info": "tlsrpt@%s",
		"date-range": {"start-datetime": %q, "end-datetime": %q}, "policies": [%s]}`,
		org, id, org, day.Format(time.RFC3339), day.Add(24*time.Hour-time.Second).Format(time.RFC3339), strings.Join(policies, ","))
}

// claimPolicy is an sts policy entry of domain; details are failure
// detail objects.
func claimPolicy(domain string, ok, failed int64, details []string) string {
	return fmt.Sprintf(`{"policy": {"policy-type": "sts", "policy-domain": %q,
		"policy-string": ["version: STSv1", "mode: testing", "mx: mx1.%s", "max_age: 86400"]},
		"summary": {"total-successful-session-count": %d, "total-failure-session-count": %d},
		"failure-details": [%s]}`, domain, domain, ok, failed, strings.Join(details, ","))
}

func claimDetail(ip, mx string, n int64) string {
	return fmt.Sprintf(`{"result-type": "certificate-expired", "sending-mta-ip": %q, "receiving-mx-hostname": %q, "failed-session-count": %d}`, ip, mx, n)
}

func jsonList(prefix string, n int) string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf(`"%s%d"`, prefix, i)
	}
	return "[" + strings.Join(l, ",") + "]"
}

// TestServeImplausibleNumbers runs the real `tlsrpt serve` binary on a
// fresh database and attacks its numbers (docs/reporters.md, "Plausible numbers only"): first the probe that made pages answer 500 (two reports of one
// domain and day whose sessions add up to int64's maximum + 1, for a
// listed and an unlisted domain: both are refused now, naming the limit),
// then reports at the per-report limits from several reporters, then
// rollups and report policies raised to int64's maximum with SQL (the
// numbers some 9,200 reports at the limits reach). After each step every
// page and API route an admin can GET answers without a 5xx, and the
// totals read saturated, not negative. Report days follow the real
// clock, which the server runs on.
func TestServeImplausibleNumbers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a server")
	}
	const max = math.MaxInt64
	const listed, unlisted = "listed.example", "unlisted.example"
	url := dbtest.NewURL(t, true)
	bin := filepath.Join(t.TempDir(), "tlsrpt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stderr strings.Builder
	env := &Env{Stdout: &strings.Builder{}, Stderr: &stderr, Getenv: func(string) string { return "" }}
	if code := Main(context.Background(), []string{"domain", "add", listed, "--db", url}, env); code != 0 {
		t.Fatalf("domain add = %d: %s", code, stderr.String())
	}
	password := randomHex(12)
	in := startInstance(t, bin, "serve", []string{
		"DATABASE_URL=" + url,
		"TLSRPT_LISTEN=127.0.0.1:0",
		"TLSRPT_ADMIN_PASSWORD=" + password,
		"TLSRPT_ADMIN_PASSWORD_FILE=",
		"TLSRPT_IMAP_URL=",
		// No DNS: the live check fails fast instead of asking the world.
		"TLSRPT_RESOLVER=127.0.0.1:1",
		"TLSRPT_LOG_LEVEL=info",
	})
	c := login(t, in.base, "admin", password)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sqlExec := func(q string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(in.base+"/tlsrpt", "application/tlsrpt+json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp.StatusCode, string(b)
	}
	yesterday := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)

	// 1. The probe: int64 max + 1 sessions in two reports of one day, each
	// report's own total within int64 (5 policies of at most 18 digits).
	for _, dom := range []string{listed, unlisted} {
		for _, org := range []string{"a.example", "b.example"} {
			pols := make([]string, 5)
			for i := range pols {
				n := int64(922337203685477580)
				if i == 4 {
					n += 4
				}
				pols[i] = claimPolicy(dom, n, 0, nil)
			}
			code, body := post(claimReport(org, "probe-"+dom, yesterday, pols))
			if code != http.StatusBadRequest || !strings.Contains(body, "over the limit of 1000000000000") {
				t.Errorf("POST of half of int64 for %s from %s = %d %s; want 400 naming the limit", dom, org, code, body)
			}
		}
	}
	getAll(t, c, in, conn, "after the probe")

	// 2. Reports at the per-report limits, from three reporters.
	big := int64(reports.DefaultMaxSessions)
	for _, org := range []string{"a.example", "b.example", "c.example"} {
		// The most policies, each at the session limits, with a detail
		// at the limit each (many sending IPs).
		pols := make([]string, reports.DefaultMaxPolicies)
		for i := range pols {
			pols[i] = claimPolicy(listed, big, big, []string{claimDetail(fmt.Sprintf("192.0.2.%d", i%250), "mx1."+listed, big)})
		}
		if code, body := post(claimReport(org, "policies-"+org, yesterday, pols)); code != http.StatusOK {
			t.Fatalf("POST of %d policies at the limits = %d %s", len(pols), code, body)
		}
		// The most mx-host entries and policy-string lines.
		pol := fmt.Sprintf(`{"policy": {"policy-type": "sts", "policy-domain": %q, "policy-string": %s, "mx-host": %s},
			"summary": {"total-successful-session-count": %d, "total-failure-session-count": %d}}`,
			listed, jsonList("mx: m", reports.DefaultMaxPolicyStrings), jsonList("mx.", reports.DefaultMaxMXHosts), big, big)
		if code, body := post(claimReport(org, "mx-"+org, yesterday, []string{pol})); code != http.StatusOK {
			t.Fatalf("POST of a policy with the most mx-host and policy-string = %d %s", code, body)
		}
		// The most policy domains, the unlisted one among them.
		pols = make([]string, reports.DefaultMaxPolicyDomains)
		for i := range pols {
			d := fmt.Sprintf("d%d.example", i)
			if i == 0 {
				d = unlisted
			}
			pols[i] = claimPolicy(d, big, big, []string{claimDetail("2001:db8::1", "mx1."+d, big)})
		}
		if code, body := post(claimReport(org, "domains-"+org, yesterday, pols)); code != http.StatusOK {
			t.Fatalf("POST of %d policy domains = %d %s", len(pols), code, body)
		}
		// Many failure details, each at the limit.
		dets := make([]string, 5000)
		for i := range dets {
			dets[i] = claimDetail(fmt.Sprintf("198.51.%d.%d", i/250, i%250), fmt.Sprintf("mx%d.%s", i%7, listed), big)
		}
		if code, body := post(claimReport(org, "details-"+org, yesterday, []string{claimPolicy(listed, big, big, dets)})); code != http.StatusOK {
			t.Fatalf("POST of %d failure details = %d %s", len(dets), code, body)
		}
	}
	getAll(t, c, in, conn, "after reports at the limits")

	// 3. What some 9,200 such reports sum to (10^15 sessions each, one
	// domain and day): every rollup row of both domains at int64's
	// maximum, plus rows of two more reporters, and every report's
	// policies at the maximum.
	for _, dom := range []string{listed, unlisted} {
		sqlExec(`UPDATE daily_policy_rollups SET reports = $2, successful = $2, failed = $2 WHERE policy_domain = $1`, dom, int64(max))
		// Rows of two more reporters, trusted and not, at the maximum: the
		// verdict sums them per reporter and lists the excluded ones.
		for _, org := range []string{"x.example", "y.example"} {
			sqlExec(`INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed, reporter)
				VALUES ($1, $2, $3, 'sts', true, $4, $4, $4, $3), ($1, $2, $3, 'sts', false, $4, $4, $4, '')`, dom, yesterday, org, int64(max))
		}
		sqlExec(`UPDATE daily_failure_rollups SET failed = $2 WHERE policy_domain = $1`, dom, int64(max))
		sqlExec(`INSERT INTO daily_failure_rollups (policy_domain, day, result_type, receiving_mx, trusted, failed)
			VALUES ($1, $2, 'certificate-expired', 'mx1.' || $1, true, $3) ON CONFLICT (policy_domain, day, result_type, receiving_mx, trusted) DO NOTHING`,
			dom, yesterday.AddDate(0, 0, -1), int64(max))
		sqlExec(`UPDATE daily_ip_rollups SET failed = $2 WHERE policy_domain = $1`, dom, int64(max))
		sqlExec(`UPDATE daily_sender_rollups SET failed = $2 WHERE policy_domain = $1`, dom, int64(max))
		sqlExec(`INSERT INTO daily_ip_rollups (policy_domain, day, trusted, sending_ip, failed)
			SELECT policy_domain, day - 1, trusted, sending_ip, failed FROM daily_ip_rollups WHERE policy_domain = $1 AND day = $2
			ON CONFLICT (policy_domain, day, trusted, sending_ip) DO NOTHING`, dom, yesterday)
	}
	sqlExec(`UPDATE report_policies SET successful = $1, failed = $1`, int64(max))
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM reports`).Scan(&n); err != nil || n != 12 {
		t.Errorf("%d reports stored (%v), want 12", n, err)
	}
	getAll(t, c, in, conn, "with rollups at int64's maximum")

	var sum struct {
		Sessions    int64   `json:"sessions"`
		Failures    int64   `json:"failures"`
		FailureRate float64 `json:"failure_rate"`
	}
	getJSON(t, c, in.base+"/api/v1/domains/"+listed+"/summary", &sum)
	if sum.Sessions != max || sum.Failures != max || sum.FailureRate < 0 || sum.FailureRate > 1 {
		t.Errorf("summary of %s = %+v; want sessions and failures %d, a rate in [0, 1]", listed, sum, int64(max))
	}
	body := getBody(t, c, in.base+"/")
	if !strings.Contains(body, unlisted) || strings.Contains(body, "-9,223") || strings.Contains(body, "-9223") {
		t.Errorf("overview does not list %s with saturated numbers:\n%s", unlisted, body)
	}
}

// getAll requests every page and API route an admin can GET (api/server.go
// routes()), for the listed and the unlisted domain and every stored
// report and quarantined input, and fails on any 5xx.
func getAll(t *testing.T, c *http.Client, in *instance, conn *pgx.Conn, when string) {
	t.Helper()
	ctx := context.Background()
	var reportIDs, quarantineIDs []int64
	for q, dst := range map[string]*[]int64{`SELECT id FROM reports ORDER BY id`: &reportIDs, `SELECT id FROM quarantine ORDER BY id`: &quarantineIDs} {
		rows, _ := conn.Query(ctx, q)
		l, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		*dst = l
	}
	paths := []string{"/", "/?kind=blocked", "/reports", "/quarantine", "/settings", "/healthz", "/metrics",
		"/api/v1/openapi.json", "/api/v1/domains", "/api/v1/reports", "/api/v1/quarantine"}
	for _, d := range []string{"listed.example", "unlisted.example"} {
		paths = append(paths, "/domains/"+d, "/domains/"+d+"?check=1", "/domains/"+d+"/mta-sts.txt",
			"/reports?domain="+d, "/reports?domain="+d+"&mx=mx1."+d, "/reports?domain="+d+"&ip=192.0.2.1",
			"/api/v1/reports?domain="+d,
			"/api/v1/domains/"+d+"/summary", "/api/v1/domains/"+d+"/series", "/api/v1/domains/"+d+"/verdict",
			"/api/v1/domains/"+d+"/check", "/api/v1/domains/"+d+"/settings", "/api/v1/domains/"+d+"/promote",
			"/api/v1/domains/"+d+"/versions")
		for _, by := range []string{"result-type", "mx", "org", "ip"} {
			paths = append(paths, "/api/v1/domains/"+d+"/breakdown/"+by)
		}
	}
	for _, id := range reportIDs {
		s := fmt.Sprint(id)
		paths = append(paths, "/reports/"+s, "/reports/"+s+"/raw", "/api/v1/reports/"+s, "/api/v1/reports/"+s+"/raw")
	}
	for _, id := range quarantineIDs {
		paths = append(paths, fmt.Sprintf("/quarantine/%d/raw", id))
	}
	t.Logf("%s: GET of %d routes", when, len(paths))
	for _, p := range paths {
		resp, err := c.Get(in.base + p)
		if err != nil {
			t.Fatalf("%s: GET %s: %v", when, p, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Errorf("%s: GET %s = %s\n%.300s\nserver errors:\n%s", when, p, resp.Status, body, errorLines(in.log()))
			continue
		}
		if strings.HasPrefix(p, "/api/v1/") && resp.StatusCode == http.StatusOK && !strings.HasSuffix(p, "/raw") && !json.Valid(body) {
			t.Errorf("%s: GET %s: not JSON: %.300s", when, p, body)
		}
	}
}

// errorLines keeps the last error lines of a server log.
func errorLines(log string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return strings.Join(out[max(0, len(out)-3):], "\n")
}
