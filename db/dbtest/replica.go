package dbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/pgembed"
)

// replicaDatabase is the database name on the private primary of
// NewReplicated.
const replicaDatabase = "tlsrpt"

// NewReplicated returns the store on a private primary with a streaming
// replica of it as DB.Read (a hot standby made with pg_basebackup -R), the
// schema migrated and replayed. Unlike New it starts its own two servers,
// in temporary directories, and stops them when the test ends: replay can
// be paused on the replica (pg_wal_replay_pause through d.Read) without
// touching any other test's database. Without the PostgreSQL server
// binaries it skips, or fails when TLSRPT_TEST_REQUIRE lists postgres.
func NewReplicated(t testing.TB) *db.DB {
	t.Helper()
	p := NewPair(t, false)
	d, err := db.Open(context.Background(), p.Primary.URL(p.Database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if err := d.OpenReplica(context.Background(), p.Standby.URL(p.Database)); err != nil {
		t.Fatal(err)
	}
	return d
}

// Pair is a private primary and its streaming standby (NewPair).
type Pair struct {
	Primary, Standby *pgembed.Server
	// Database is the name of the migrated database on both.
	Database string
}

// URL is the multi-host URL of the pair's database, the primary's host
// first, with the connection parameters params (such as
// "target_session_attrs=read-write") appended.
func (p *Pair) URL(params string) string {
	u := fmt.Sprintf("host=%s,%s port=5432,5432 user=postgres dbname=%s", p.Primary.Host(), p.Standby.Host(), p.Database)
	if params != "" {
		u += " " + params
	}
	return u
}

// NewPair starts a private primary, migrates a database on it, and starts
// a hot standby of it (pg_basebackup -R), both stopped when the test ends
// (Stop does nothing for a server the test killed). With sync the primary
// replicates synchronously (synchronous_standby_names '*', synchronous_commit
// on): a commit returns once the standby has its WAL, so a failover loses
// nothing that was acknowledged; the standby keeps the test servers'
// asynchronous settings, so that it takes writes alone once promoted.
// Without the PostgreSQL server binaries it skips, or fails when
// TLSRPT_TEST_REQUIRE lists postgres.
func NewPair(t testing.TB, sync bool) *Pair {
	t.Helper()
	ctx := context.Background()
	if _, err := pgembed.FindBinDir(ctx); err != nil {
		unavailable(t, err)
	}
	dir, err := os.MkdirTemp("", "tlsrpt-replica-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// The postgres user must traverse it when the tests run as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	primary, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "primary"), NoFsync: true})
	if err != nil {
		t.Fatalf("starting the primary: %v", err)
	}
	stop := func(s *pgembed.Server) {
		t.Cleanup(func() {
			if err := s.Stop(); err != nil {
				t.Errorf("dbtest: %v", err)
			}
		})
		// A test binary killed by a timeout must not leave its clusters.
		if err := s.WatchProcess(os.Getpid(), ""); err != nil {
			t.Logf("dbtest: %v", err)
		}
	}
	stop(primary)
	if err := primary.CreateDatabase(ctx, replicaDatabase); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(ctx, primary.URL(replicaDatabase))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Migrate(ctx); err != nil {
		t.Fatalf("migrating the primary: %v", err)
	}
	replica, err := pgembed.StartReplica(ctx, primary, pgembed.Config{Dir: filepath.Join(dir, "replica"), NoFsync: true})
	if err != nil {
		t.Fatalf("starting the replica: %v", err)
	}
	stop(replica)
	r, err := pgx.Connect(ctx, replica.URL(replicaDatabase))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	var inRecovery bool
	if err := r.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("the replica is not a standby: in recovery %v, %v", inRecovery, err)
	}
	if sync {
		// ALTER SYSTEM after the copy: postgresql.auto.conf of the
		// standby keeps only primary_conninfo.
		for _, q := range []string{`ALTER SYSTEM SET synchronous_standby_names = '*'`,
			`ALTER SYSTEM SET synchronous_commit = 'on'`, `SELECT pg_reload_conf()`} {
			if _, err := d.Pool.Exec(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		deadline := time.Now().Add(time.Minute)
		for {
			var state string
			err := d.Pool.QueryRow(ctx, `SELECT coalesce(max(sync_state), '') FROM pg_stat_replication`).Scan(&state)
			if err != nil {
				t.Fatal(err)
			}
			if state == "sync" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the standby is not synchronous within a minute: sync_state %q", state)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return &Pair{Primary: primary, Standby: replica, Database: replicaDatabase}
}

// WaitReplay waits until the replica of d (NewReplicated) has replayed
// everything the primary has written so far, failing the test after a
// minute.
func WaitReplay(t testing.TB, d *db.DB) {
	t.Helper()
	waitLSN(t, d, "pg_last_wal_replay_lsn()")
}

// WaitReceive waits until the replica of d (NewReplicated) has received,
// not necessarily replayed, everything the primary has written so far:
// with replay paused, the replica then knows what it is missing.
func WaitReceive(t testing.TB, d *db.DB) {
	t.Helper()
	waitLSN(t, d, "pg_last_wal_receive_lsn()")
}

// waitLSN waits until the replica's position (a pg_lsn expression) reaches
// the primary's current WAL position.
func waitLSN(t testing.TB, d *db.DB, position string) {
	t.Helper()
	ctx := context.Background()
	var lsn string
	// The insert position: with synchronous_commit off (NoFsync) a commit
	// returns before its WAL is written, and pg_current_wal_lsn, the
	// write position, lags behind it.
	if err := d.Pool.QueryRow(ctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&lsn); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var done bool
		if err := d.Read.QueryRow(ctx, `SELECT `+position+` >= $1::pg_lsn`, lsn).Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica's %s did not reach %s within a minute", position, lsn)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
