package db_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// seedUnlisted adds n unlisted policy domains with a rollup row each on
// day, the way a flood of reports naming many policy domains leaves them
// (the rollup triggers of 071 fill unlisted_domains), and refreshes the
// planner statistics as serve's daily maintenance does.
func seedUnlisted(t testing.TB, pool *pgxpool.Pool, n int, day time.Time) {
	t.Helper()
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed)
		SELECT 'd' || g || '.flood.example', $1, 'flood.example', 'sts', false, 1, 10, 0 FROM generate_series(1, $2::int) g`, day, n); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE unlisted_domains, daily_policy_rollups`); err != nil {
		t.Fatal(err)
	}
}

// planNode is the part of EXPLAIN (FORMAT JSON) the shape test reads.
// The row counts are averages per loop.
type planNode struct {
	NodeType string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Rows     float64    `json:"Actual Rows"`
	Filtered float64    `json:"Rows Removed by Filter"`
	Rechecks float64    `json:"Rows Removed by Index Recheck"`
	Loops    float64    `json:"Actual Loops"`
	Plans    []planNode `json:"Plans"`
}

// rowsRead sums, per table, the rows its scans read (returned, or
// removed by a filter or a recheck), and lists the node types that read
// it.
func (p planNode) rowsRead(rows map[string]float64, kinds map[string][]string) {
	if p.Relation != "" {
		rows[p.Relation] += (p.Rows + p.Filtered + p.Rechecks) * p.Loops
		kinds[p.Relation] = append(kinds[p.Relation], p.NodeType)
	}
	for _, c := range p.Plans {
		c.rowsRead(rows, kinds)
	}
}

// TestOverviewQueriesBounded: with 100,000 unlisted domains on one day
// (10 reports of 10,000 policy domains each, the security issue's flood)
// and five listed domains with a year of rollups, the overview's queries
// (the listed domains' series, the unlisted list and count) read a
// bounded number of rows, by index, both as a one-off plan and as the
// generic plan a prepared statement switches to after five runs (pgx
// caches statements); nothing scans unlisted_domains or the window's
// rollups whole. Speed is measured by BenchmarkOverviewUnlisted (api),
// not here.
func TestOverviewQueriesBounded(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	now := time.Now().UTC() // the one clock of this test
	today := now.Truncate(24 * time.Hour)
	from := today.AddDate(0, 0, -29)
	// A year of three reporters a day for each listed domain.
	if _, err := d.Pool.Exec(ctx, `INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed)
		SELECT 'listed' || g || '.example', $1::date - k, 'org' || o || '.example', 'sts', true, 1, 100, 1
		FROM generate_series(1, 5) g, generate_series(1, 365) k, generate_series(1, 3) o`, today); err != nil {
		t.Fatal(err)
	}
	listed := []string{"listed1.example", "listed2.example", "listed3.example", "listed4.example", "listed5.example"}
	for _, n := range listed {
		if _, _, err := d.AddDomain(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	seedUnlisted(t, d.Pool, 100_000, today.AddDate(0, 0, -1))

	const limit = 100
	got, err := d.UnlistedDomains(ctx, from, limit)
	if err != nil || len(got) != limit || got[0].Domain != "d1.flood.example" || got[0].Sessions != 10 {
		t.Fatalf("UnlistedDomains() = %d rows, %v; want %d, d1.flood.example first with 10 sessions", len(got), err, limit)
	}
	if n, more, err := d.UnlistedCount(ctx, from); err != nil || n != db.MaxUnlistedCount || !more {
		t.Fatalf("UnlistedCount() = %d, %v, %v; want %d and more", n, more, err, db.MaxUnlistedCount)
	}
	series, err := d.DomainsSeries(ctx, listed, from, today)
	if err != nil || len(series) != 5 || len(series["listed3.example"]) != 29 || series["listed3.example"][0].Successful != 300 {
		t.Fatalf("DomainsSeries() = %d domains, %v; want 5 with 29 days each", len(series), err)
	}

	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	day := func(t time.Time) string { return "'" + t.Format(time.DateOnly) + "'" }
	queries := []struct {
		name, sql, types, args string
		bound                  map[string]float64 // most rows read per table
	}{
		{"series", db.DomainsSeriesSQL, "text[], date, date", "'{" + strings.Join(listed, ",") + "}', " + day(from) + ", " + day(today),
			map[string]float64{"daily_policy_rollups": 5 * 30 * 3}},
		{"unlisted list", db.UnlistedDomainsSQL(limit), "date", day(from),
			map[string]float64{"unlisted_domains": limit, "daily_policy_rollups": limit * 30, "domains": limit}},
		{"unlisted count", db.UnlistedCountSQL, "date", day(from),
			map[string]float64{"unlisted_domains": db.MaxUnlistedCount + 1}},
	}
	for _, q := range queries {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "PREPARE overview_q("+q.types+") AS "+q.sql); err != nil {
				t.Fatalf("%s: %v", q.name, err)
			}
			var out []byte
			err := conn.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE overview_q("+q.args+")").Scan(&out)
			if _, err := conn.Exec(ctx, "DEALLOCATE overview_q"); err != nil {
				t.Fatal(err)
			}
			if err != nil {
				t.Fatalf("%s %s: EXPLAIN: %v", q.name, mode, err)
			}
			var plans []struct{ Plan planNode }
			if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
				t.Fatalf("%s %s: EXPLAIN output %s: %v", q.name, mode, out, err)
			}
			rows, kinds := map[string]float64{}, map[string][]string{}
			plans[0].Plan.rowsRead(rows, kinds)
			for table, n := range rows {
				if bound, ok := q.bound[table]; !ok || n > bound {
					t.Errorf("%s (%s) read %.0f rows of %s, want at most %.0f:\n%s", q.name, mode, n, table, bound, out)
				}
			}
			for table, ks := range kinds {
				for _, k := range ks {
					if k == "Seq Scan" && table != "domains" {
						t.Errorf("%s (%s) scans %s whole:\n%s", q.name, mode, table, out)
					}
				}
			}
			for table := range q.bound {
				if table != "domains" && rows[table] == 0 {
					t.Errorf("%s (%s) read no rows of %s:\n%s", q.name, mode, table, out)
				}
			}
		}
	}
}
