package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
)

// addUnlisted adds unlisted policy domains first..first+n-1 with a rollup
// row each on day, as a flood of reports naming many policy domains
// leaves them (migration 071's triggers fill unlisted_domains), and
// refreshes the planner statistics as serve's daily maintenance does.
func addUnlisted(t testing.TB, e *testEnv, first, n int, day time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.d.Pool.Exec(ctx, `INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed)
		SELECT 'd' || g || '.flood.example', $1, 'flood.example', 'sts', false, 1, 10, 0 FROM generate_series($2::int, $3::int) g`,
		day, first, first+n-1); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.Pool.Exec(ctx, `VACUUM ANALYZE unlisted_domains, daily_policy_rollups`); err != nil {
		t.Fatal(err)
	}
}

// TestOverviewUnlistedFlood: with more unlisted domains than the overview
// counts, the page shows the 100 seen last and says there are more than
// the bound, and so does the JSON API.
func TestOverviewUnlistedFlood(t *testing.T) {
	e := newTestEnv(t, nil)
	addUnlisted(t, e, 1, 1200, testNow.Truncate(24*time.Hour).AddDate(0, 0, -1))
	rec := e.do(e.login(db.RoleViewer), request{method: "GET", path: "/"})
	if body := rec.Body.String(); rec.Code != http.StatusOK || !strings.Contains(body, "The 100 most recently seen of more than 1,000 domains are shown.") ||
		strings.Count(body, ".flood.example</td>") != 100 {
		t.Errorf("overview with 1,200 unlisted domains = %d, want 100 of them listed and \"more than 1,000\":\n%s", rec.Code, body)
	}
	rec = e.do(e.token(db.RoleViewer), request{method: "GET", path: "/api/v1/domains"})
	var out struct {
		Unlisted      []db.UnlistedDomain
		UnlistedCount int  `json:"unlisted_count"`
		UnlistedMore  bool `json:"unlisted_more"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Unlisted) != 100 || out.UnlistedCount != db.MaxUnlistedCount || !out.UnlistedMore {
		t.Errorf("GET /api/v1/domains = %d unlisted, count %d, more %v (%v); want 100, %d, true", len(out.Unlisted), out.UnlistedCount, out.UnlistedMore, err, db.MaxUnlistedCount)
	}
}

// BenchmarkOverviewUnlisted times the overview page (five listed domains
// with a year of reports, benchEnv) as unlisted domains pile up: the
// sizes are TLSRPT_BENCH_UNLISTED, comma-separated (default 0,100000;
// BENCHMARKS.md also has 1000000). Each size adds to the one before.
func BenchmarkOverviewUnlisted(b *testing.B) {
	sizes := "0,100000"
	if v := os.Getenv("TLSRPT_BENCH_UNLISTED"); v != "" {
		sizes = v
	}
	e, viewer, _ := benchEnv(b)
	day := testNow.Truncate(24*time.Hour).AddDate(0, 0, -1)
	have := 0
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < have {
			b.Fatalf("TLSRPT_BENCH_UNLISTED: %q is not a growing list of counts", sizes)
		}
		if n > have {
			addUnlisted(b, e, have+1, n-have, day)
			have = n
		}
		b.Run(fmt.Sprintf("unlisted=%d", n), func(b *testing.B) { benchGet(b, e, viewer, "/") })
	}
}
