package db_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestRollupIndexesCovering pins migration 105: each daily rollup keeps
// the indexes listed here and no more (every index is written once per
// rollup row a stored report adds, docs/bench-import.md), and a domain's
// window of the policy, failure and mode rollups is still read from the
// primary key alone (an index-only scan without heap fetches once vacuumed),
// as it was from the covering indexes of 072.
func TestRollupIndexesCovering(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	for i := range 30 {
		r := sample([]string{"google.com", "microsoft.com"}[i%2], "idx-"+string(rune('a'+i)), day1.AddDate(0, 0, i%10))
		if _, _, err := d.StoreReport(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]string{
		"daily_policy_rollups":  {"daily_policy_rollups_day", "daily_policy_rollups_pkey"},
		"daily_failure_rollups": {"daily_failure_rollups_pkey"},
		"daily_mode_rollups":    {"daily_mode_rollups_pkey"},
		"daily_sender_rollups":  {"daily_sender_rollups_pkey"},
		"daily_ip_rollups":      {"daily_ip_rollups_pkey"},
	}
	for table, names := range want {
		got := dumpRows(t, d, `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = '`+table+`' ORDER BY 1`)
		for i := range got {
			got[i] = strings.Trim(got[i], "[]")
		}
		if !slices.Equal(got, names) {
			t.Errorf("indexes of %s = %q, want %q", table, got, names)
		}
	}
	if _, err := d.Pool.Exec(ctx, `VACUUM ANALYZE daily_policy_rollups, daily_failure_rollups, daily_mode_rollups`); err != nil {
		t.Fatal(err)
	}
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	// The tables are tiny: without this the planner reads them whole.
	if _, err := conn.Exec(ctx, `SET enable_seqscan = off; SET enable_bitmapscan = off`); err != nil {
		t.Fatal(err)
	}
	// The columns the dashboard, the overview and the facts read of a
	// domain's window (db/dashboard.go, db/facts.go).
	reads := map[string]string{
		"daily_policy_rollups": `SELECT day, organization_name, reporter, policy_type, sum(reports), sum(successful), sum(failed)
			FROM daily_policy_rollups WHERE policy_domain = 'example.com' AND trusted AND day >= $1 AND day < $2
			GROUP BY 1, 2, 3, 4`,
		"daily_failure_rollups": `SELECT day, result_type, receiving_mx, failed FROM daily_failure_rollups
			WHERE policy_domain = 'example.com' AND trusted AND day >= $1 AND day < $2`,
		"daily_mode_rollups": `SELECT day, mode, last_policy_id FROM daily_mode_rollups
			WHERE policy_domain = 'example.com' AND trusted AND day >= $1 AND day < $2`,
	}
	for table, q := range reads {
		var out string
		if err := conn.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+q, day1, day1.AddDate(0, 0, 10)).Scan(&out); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		var plans []struct {
			Plan scanNode `json:"Plan"`
		}
		if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 1 {
			t.Fatalf("%s: EXPLAIN output %s: %v", table, out, err)
		}
		scan := plans[0].Plan.find(table)
		if scan == nil || scan.NodeType != "Index Only Scan" || scan.Index != table+"_pkey" || scan.HeapFetches != 0 || scan.Rows == 0 {
			t.Errorf("%s: read by %+v, want an index-only scan of %s_pkey returning rows without heap fetches\n%s", table, scan, table, out)
		}
	}
}

// TestUnlistedRollupsDoNotWait pins the unlisted-domains trigger of
// migration 105: a store whose reports are older than the newest day
// already recorded for their unlisted domain leaves that row alone
// without locking it, so it does not wait for another transaction that
// is adding to the same domain (the two stores of an import did, in turn,
// for every batch); a newer day still moves last_day on.
func TestUnlistedRollupsDoNotWait(t *testing.T) {
	ctx := context.Background()
	d := dbtest.New(t)
	lastDay := func() time.Time {
		t.Helper()
		var day time.Time
		if err := d.Pool.QueryRow(ctx, `SELECT last_day FROM unlisted_domains WHERE domain = 'example.com'`).Scan(&day); err != nil {
			t.Fatal(err)
		}
		return day.UTC()
	}
	if _, _, err := d.StoreReport(ctx, sample("google.com", "newest", day1.AddDate(0, 0, 10))); err != nil {
		t.Fatal(err)
	}
	// Another store in flight: it added an older day of example.com and
	// has not committed.
	tx, err := d.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO daily_policy_rollups (policy_domain, day, organization_name, policy_type, trusted, reports, successful, failed, reporter)
		VALUES ('example.com', $1, 'yahoo.com', 'sts', true, 1, 10, 0, 'yahoo.com')`, day1.AddDate(0, 0, 5)); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, _, err := d.StoreReport(wctx, sample("microsoft.com", "older", day1.AddDate(0, 0, 7))); err != nil {
		t.Fatalf("StoreReport of an older day beside an open store of the same unlisted domain: %v", err)
	}
	if got, want := lastDay(), day1.AddDate(0, 0, 10); !got.Equal(want) {
		t.Errorf("last_day = %s, want %s", got, want)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.StoreReport(ctx, sample("google.com", "newer", day1.AddDate(0, 0, 12))); err != nil {
		t.Fatal(err)
	}
	if got, want := lastDay(), day1.AddDate(0, 0, 12); !got.Equal(want) {
		t.Errorf("last_day after a newer day = %s, want %s", got, want)
	}
}

// scanNode is the part of EXPLAIN (FORMAT JSON) that says how a table
// was read.
type scanNode struct {
	NodeType    string     `json:"Node Type"`
	Relation    string     `json:"Relation Name"`
	Index       string     `json:"Index Name"`
	HeapFetches float64    `json:"Heap Fetches"`
	Rows        float64    `json:"Actual Rows"`
	Plans       []scanNode `json:"Plans"`
}

// find returns the node that reads table, nil when none does.
func (n *scanNode) find(table string) *scanNode {
	if n.Relation == table {
		return n
	}
	for i := range n.Plans {
		if f := n.Plans[i].find(table); f != nil {
			return f
		}
	}
	return nil
}
