package dbtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

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
	t.Cleanup(d.Close)
	if err := d.Migrate(ctx); err != nil {
		t.Fatalf("migrating the primary: %v", err)
	}
	replica, err := pgembed.StartReplica(ctx, primary, pgembed.Config{Dir: filepath.Join(dir, "replica"), NoFsync: true})
	if err != nil {
		t.Fatalf("starting the replica: %v", err)
	}
	stop(replica)
	if err := d.OpenReplica(ctx, replica.URL(replicaDatabase)); err != nil {
		t.Fatal(err)
	}
	var inRecovery bool
	if err := d.Read.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("the replica is not a standby: in recovery %v, %v", inRecovery, err)
	}
	return d
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
