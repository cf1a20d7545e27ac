package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestFailoverPool runs the primary's pool against a real primary and
// streaming standby (docs/store.md, "Failover"): with several hosts it
// connects to the primary whichever is listed first, with
// target_session_attrs=read-write and without it (tlsrpt's default for
// several hosts), while an explicit "any" is respected; a pool that holds
// connections to a read-only server drops all of them at the first
// 25006; when the primary is killed (SIGKILL) the pool's errors say the
// database is unavailable, and once the standby is promoted the same
// pool writes to it.
func TestFailoverPool(t *testing.T) {
	ctx := context.Background()
	p := dbtest.NewPair(t, false)
	standbyFirst := func(params string) string {
		return fmt.Sprintf("host=%s,%s port=5432 user=postgres dbname=%s %s", p.Standby.Host(), p.Primary.Host(), p.Database, params)
	}
	inRecovery := func(d *db.DB) bool {
		t.Helper()
		var r bool
		if err := d.Pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	open := func(url string) *db.DB {
		t.Helper()
		d, err := db.Open(ctx, url)
		if err != nil {
			t.Fatalf("Open(%q) = %v", url, err)
		}
		t.Cleanup(d.Close)
		return d
	}

	for _, c := range []struct {
		params  string
		standby bool
	}{
		{"target_session_attrs=read-write", false},
		{"", false}, // several hosts: read-write unless said otherwise
		{"target_session_attrs=any", true},
	} {
		d := open(standbyFirst(c.params))
		if got := inRecovery(d); got != c.standby {
			t.Errorf("standby listed first, %q: connected to the standby %v, want %v", c.params, got, c.standby)
		}
	}

	// A pool that reached a read-only server (a single host, the
	// standby) holds three connections; the first write refused with
	// 25006 closes all of them.
	ro := open(p.Standby.URL(p.Database))
	var held []*pgxpool.Conn
	for range 3 {
		c, err := ro.Pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.Release()
	}
	if got := ro.Pool.Stat().TotalConns(); got != 3 {
		t.Fatalf("the read-only pool holds %d connections, want 3", got)
	}
	_, err := ro.Pool.Exec(ctx, `INSERT INTO domains (name) VALUES ('readonly.example')`)
	if !db.Unavailable(err) {
		t.Errorf("a write on the standby: Unavailable(%v) = false, want true", err)
	}
	waitFor(t, "the read-only pool to drop its connections", func() bool { return ro.Pool.Stat().TotalConns() == 0 })
	if n := ro.PoolResets(); n != 1 {
		t.Errorf("pool resets after 25006 = %d, want 1", n)
	}

	// Kill the primary; the pool of the multi-host URL, primary first,
	// fails with errors that say so until the standby is promoted.
	d := open(p.URL("target_session_attrs=read-write"))
	if inRecovery(d) {
		t.Fatal("the pool of the pair's URL reached the standby")
	}
	if err := p.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pool to notice that the primary is gone", func() bool {
		_, err := d.Pool.Exec(ctx, `SELECT 1`)
		if err != nil && !db.Unavailable(err) {
			t.Fatalf("query with the primary gone: Unavailable(%v) = false", err)
		}
		return err != nil
	})
	// No primary now: the standby refuses (read-only), the dead host
	// refuses the connection.
	if err := d.Pool.Ping(ctx); !db.Unavailable(err) {
		t.Errorf("ping with no primary: Unavailable(%v) = false, want true", err)
	}
	if _, err := db.Open(ctx, p.URL("target_session_attrs=read-write")); !db.Unavailable(err) {
		t.Errorf("Open with no primary: Unavailable(%v) = false, want true", err)
	}
	promoted := time.Now()
	if err := p.Standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a write on the promoted standby", func() bool {
		_, err := d.Pool.Exec(ctx, `INSERT INTO domains (name) VALUES ('failover.example')`)
		return err == nil
	})
	t.Logf("first write %v after the promotion started; pool resets %d", time.Since(promoted).Round(time.Millisecond), d.PoolResets())
	if inRecovery(d) {
		t.Error("after the promotion the pool still reaches a server in recovery")
	}
}

// waitFor polls cond every 20 ms for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
