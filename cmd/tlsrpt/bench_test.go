package main

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestBenchCommand runs the three parts of "tlsrpt bench" small: the seed
// stores what it says (reports, details, rollups), the web timings go
// through the router with 200s, and every posted report is a stored row.
func TestBenchCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	code, out, errOut := runStoreCmd(t, "bench", "seed", "--db", url, "--domains", "3", "--years", "0.05", "--listed", "2", "--batch", "7")
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
	if code, out, _ := runStoreCmd(t, "bench", "seed", "--db", url, "--domains", "3", "--years", "0.05"); code != 0 || !strings.Contains(out, "54 reports (0 new)") {
		t.Errorf("bench seed again = %d, %q", code, out)
	}

	code, out, errOut = runStoreCmd(t, "bench", "web", "--db", url, "--requests", "3", "--warmup", "1")
	if code != 0 || !strings.Contains(out, "overview") || !strings.Contains(out, "domain page 365 days") || !strings.Contains(out, "verdict (API)") ||
		!strings.Contains(out, "failure_details") {
		t.Fatalf("bench web = %d, %q, %q", code, out, errOut)
	}

	code, out, errOut = runStoreCmd(t, "bench", "post", "--db", url, "--count", "40", "--concurrency", "4", "--domains", "3")
	if code != 0 || !strings.Contains(out, "answered 200: 40; errors: 0") || !strings.Contains(out, "rows stored: 40 (lost: 0)") {
		t.Fatalf("bench post = %d, %q, %q", code, out, errOut)
	}
	var https int64
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM reports WHERE source = 'https'`).Scan(&https); err != nil || https != 40 {
		t.Errorf("https reports = %d, %v; want 40", https, err)
	}

	for _, args := range [][]string{
		{"bench"}, {"bench", "nope"},
		{"bench", "seed", "--db", url, "--domains", "0"},
		{"bench", "seed", "--db", url, "--domains", "100000", "--years", "40"},
		{"bench", "web", "--db", url, "--requests", "0"},
		{"bench", "post", "--db", url, "--count", "2000000"},
		{"bench", "post", "--db", url, "--max-time", (time.Hour).String()},
	} {
		if code, _, _ := runStoreCmd(t, args...); code != 2 {
			t.Errorf("%v = %d, want 2", args, code)
		}
	}
}
