package db_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// TestAsyncCommitLocal: ImportBatch's setting holds for its own
// transaction only; the connection goes back to the pool as it was.
func TestAsyncCommitLocal(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	conn, err := d.Pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	setting := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) string {
		t.Helper()
		var v string
		if err := q.QueryRow(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := conn.Exec(ctx, `SET synchronous_commit = on`); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AsyncCommit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	if got := setting(tx); got != "off" {
		t.Errorf("synchronous_commit in the import's transaction = %q, want off", got)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := setting(conn); got != "on" {
		t.Errorf("synchronous_commit after the transaction = %q, want on again", got)
	}
}

// TestImportBatch: ImportBatch stores what StoreBatch stores, once, and
// Durable returns with the server's WAL flushed past the import's last
// commit, on a connection whose default is a synchronous commit.
func TestImportBatch(t *testing.T) {
	ctx := context.Background()
	url := dbtest.NewURL(t, true)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	d, err := db.Open(ctx, url+sep+"synchronous_commit=on")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ref := dbtest.New(t)
	var rs []reports.Received
	for i := range 40 {
		rs = append(rs, sample("google.com", fmt.Sprintf("imp-%d", i), day1.AddDate(0, 0, i%3)))
	}
	rs = append(rs, rs[5]) // the same report twice in a batch
	ids, dup, err := d.ImportBatch(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	refIDs, refDup, err := ref.StoreBatch(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(rs) || fmt.Sprint(dup) != fmt.Sprint(refDup) || ids[40] != ids[5] {
		t.Fatalf("ImportBatch() = %v, %v; StoreBatch() = %v, %v", ids, dup, refIDs, refDup)
	}
	_, dup, err = d.ImportBatch(ctx, rs[:3])
	if err != nil || !dup[0] || !dup[1] || !dup[2] {
		t.Fatalf("ImportBatch() again = %v, %v, want duplicates", dup, err)
	}
	const rollups = `SELECT string_agg(x, ';' ORDER BY x) FROM (SELECT format('%s %s %s %s %s %s',
		policy_domain, day, organization_name, policy_type, reports, failed) AS x FROM daily_policy_rollups) r`
	var got, want string
	if err := d.Pool.QueryRow(ctx, rollups).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if err := ref.Pool.QueryRow(ctx, rollups).Scan(&want); err != nil {
		t.Fatal(err)
	}
	if got != want || got == "" {
		t.Errorf("rollups after ImportBatch:\n%s\nafter StoreBatch:\n%s", got, want)
	}
	var before string
	if err := d.Pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	if err := d.Durable(ctx); err != nil {
		t.Fatalf("Durable() = %v", err)
	}
	var flushed bool
	if err := d.Pool.QueryRow(ctx, `SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn`, before).Scan(&flushed); err != nil {
		t.Fatal(err)
	}
	if !flushed {
		t.Errorf("WAL flushed to before %s after Durable()", before)
	}
}
