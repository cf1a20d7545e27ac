package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestBenchCommand runs the three parts of tlsrpt-bench small: the seed
// stores what it says (reports, details, rollups), the web timings go
// through the router with 200s, and every posted report is a stored row.
func TestBenchCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	code, out, errOut := runBench(t, "seed", "--db", url, "--domains", "3", "--years", "0.05", "--listed", "2", "--batch", "7")
	if code != 0 || !strings.Contains(out, "seeded 3 domains × 18 days: 54 reports (54 new)") {
		t.Fatalf("bench seed = %d, %q, %q", code, out, errOut)
	}
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	var reps, dets, listed, rollupReports int64
	err = d.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM failure_details),
		(SELECT count(*) FROM domains), (SELECT sum(reports) FROM daily_policy_rollups)`).Scan(&reps, &dets, &listed, &rollupReports)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`, (\d+) failure details`).FindStringSubmatch(out)
	if reps != 54 || rollupReports != 54 || listed != 2 || m == nil || m[1] != strconv.FormatInt(dets, 10) || dets == 0 {
		t.Errorf("after seed: %d reports, %d details (printed %v), %d listed, %d in rollups; want 54, as printed, 2, 54", reps, dets, m, listed, rollupReports)
	}
	// Seeding again stores nothing new: the same flags make the same reports.
	if code, out, _ := runBench(t, "seed", "--db", url, "--domains", "3", "--years", "0.05"); code != 0 || !strings.Contains(out, "54 reports (0 new)") {
		t.Errorf("bench seed again = %d, %q", code, out)
	}

	code, out, errOut = runBench(t, "web", "--db", url, "--requests", "3", "--warmup", "1", "--spread", "3")
	if code != 0 || !strings.Contains(out, "overview") || !strings.Contains(out, "domain page 365 days") || !strings.Contains(out, "verdict (API)") ||
		!strings.Contains(out, "failure_details") || !strings.Contains(out, "domains API") {
		t.Fatalf("bench web = %d, %q, %q", code, out, errOut)
	}
	// The three listed domains (the second seed listed them all) had no
	// verdict badge yet; the partitioned tables have a size.
	if !strings.Contains(out, "verdict badges: refreshed 3 in") || regexp.MustCompile(`(?m)^reports +54 +0 `).MatchString(out) {
		t.Errorf("bench web: badges or table sizes wrong: %q", out)
	}
	var badges int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM domain_verdicts`).Scan(&badges); err != nil || badges != 3 {
		t.Errorf("stored badges after bench web = %d, %v; want 3", badges, err)
	}
	if code, out, _ := runBench(t, "web", "--db", url, "--requests", "1", "--warmup", "0", "--only", "verdict"); code != 0 ||
		!strings.Contains(out, "verdict badges: refreshed 0 in") {
		t.Errorf("bench web again = %d, %q; want no badge to refresh", code, out)
	}

	code, out, errOut = runBench(t, "post", "--db", url, "--count", "40", "--concurrency", "4", "--domains", "3")
	if code != 0 || !strings.Contains(out, "answered 200: 40; errors: 0") || !strings.Contains(out, "rows stored: 40 (lost: 0; answered already stored: 0)") {
		t.Fatalf("bench post = %d, %q, %q", code, out, errOut)
	}
	// Keep-alive: one connection per client connection, not per report;
	// the batches hold the 40 reports.
	m = regexp.MustCompile(`server: (\d+) connections opened, (\d+) batches`).FindStringSubmatch(out)
	if m == nil || m[1] < "1" || m[1] > "4" || len(m[1]) != 1 || m[2] == "0" {
		t.Errorf("bench post: %q; want at most 4 connections and some batches", out)
	}
	// Over HTTPS, with reports of up to 20 failure details.
	code, out, errOut = runBench(t, "post", "--db", url, "--count", "30", "--concurrency", "3", "--domains", "3", "--details", "20", "--tls")
	if code != 0 || !strings.Contains(out, "(https,") || !strings.Contains(out, "0-20 failure details") ||
		!strings.Contains(out, "answered 200: 30; errors: 0") || !strings.Contains(out, "rows stored: 30 (lost: 0; answered already stored: 0)") {
		t.Fatalf("bench post --tls = %d, %q, %q", code, out, errOut)
	}
	var https int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE source = 'https'`).Scan(&https); err != nil || https != 70 {
		t.Errorf("https reports = %d, %v; want 70", https, err)
	}

	for _, args := range [][]string{
		{}, {"nope"}, {"seed", "extra"},
		{"seed", "--db", url, "--domains", "0"},
		{"seed", "--db", url, "--domains", "100000", "--years", "40"},
		{"web", "--db", url, "--requests", "0"},
		{"web", "--db", url, "--spread", "0"},
		{"post", "--db", url, "--count", "2000000"},
		{"post", "--db", url, "--max-time", (time.Hour).String()},
		{"post", "--db", url, "--details", "-1"},
		{"post", "--db", url, "--workers", "100"},
	} {
		if code, _, _ := runBench(t, args...); code != 2 {
			t.Errorf("%v = %d, want 2", args, code)
		}
	}
}

// runBench runs tlsrpt-bench with an empty environment (the tests give --db).
func runBench(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	code = Main(context.Background(), args, env)
	return code, out.String(), errOut.String()
}
