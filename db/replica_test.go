package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// TestReplicaReads runs the store against a real streaming replica: with
// replay paused on the standby, a report stored on the primary is missing
// from the dashboard, overview and verdict reads (they read the replica)
// but present in the same reads marked db.Primary; writes and the reads of
// one's own writes (settings, sessions) work and see themselves; after
// resuming, the replica shows the report and its lag falls back to 0.
func TestReplicaReads(t *testing.T) {
	d := dbtest.NewReplicated(t)
	ctx := context.Background()
	today := rollout.UTCDay(time.Now())
	day := today.AddDate(0, 0, -3)
	if _, _, err := d.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	storeDashReport(t, d, "a.example", "example.com", day, 100, nil, reports.SourceFile)
	start := time.Now()
	dbtest.WaitReplay(t, d)
	// The delay from a commit to its replay, for SCALING.md; with
	// synchronous_commit off (the test servers) it includes the WAL
	// writer's delay of up to 200 ms.
	t.Logf("replayed %v after the commit returned", time.Since(start))
	if lag, err := d.ReplicaLag(ctx); err != nil || lag != 0 {
		t.Fatalf("ReplicaLag() after replay = %v, %v, want 0", lag, err)
	}

	// reads returns what the replica-safe reads see under ctx: the
	// sessions of the domain's series, the overview's series, the
	// verdict's successes and the reports listed.
	reads := func(ctx context.Context) (series, overview, facts int64, listed int) {
		t.Helper()
		days, err := d.DomainSeries(ctx, "example.com", day, today)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range days {
			series += x.Successful
		}
		all, err := d.DomainsSeries(ctx, []string{"example.com"}, day, today)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range all["example.com"] {
			overview += x.Successful
		}
		f, err := d.Facts(ctx, "example.com", time.Now(), 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range f.Reporters {
			facts += r.Successes
		}
		rows, err := d.DashboardReports(ctx, db.ReportListFilter{Domain: "example.com"})
		if err != nil {
			t.Fatal(err)
		}
		return series, overview, facts, len(rows)
	}
	if s, o, f, n := reads(ctx); s != 100 || o != 100 || f != 100 || n != 1 {
		t.Fatalf("replica reads = %d, %d, %d, %d reports, want 100, 100, 100, 1", s, o, f, n)
	}

	if _, err := d.Read.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_, _ = d.Read.Exec(ctx, `SELECT pg_wal_replay_resume()`)
		}
	}()
	storeDashReport(t, d, "b.example", "example.com", day, 50, nil, reports.SourceFile)
	if s, o, f, n := reads(ctx); s != 100 || o != 100 || f != 100 || n != 1 {
		t.Errorf("replica reads while replay is paused = %d, %d, %d, %d reports, want 100, 100, 100, 1 (the replica's)", s, o, f, n)
	}
	if s, o, f, n := reads(db.Primary(ctx)); s != 150 || o != 150 || f != 150 || n != 2 {
		t.Errorf("primary reads while replay is paused = %d, %d, %d, %d reports, want 150, 150, 150, 2", s, o, f, n)
	}
	dbtest.WaitReceive(t, d)
	if lag, err := d.ReplicaLag(ctx); err != nil || lag <= 0 {
		t.Errorf("ReplicaLag() with replay paused behind a write = %v, %v, want > 0", lag, err)
	}

	// Writes, and the reads of what was just written, use the primary:
	// the standby is read-only and has not replayed them.
	th := rollout.DefaultThresholds()
	th.MinDays++
	if err := d.SetDomainThresholds(ctx, "example.com", th); err != nil {
		t.Fatalf("SetDomainThresholds() = %v", err)
	}
	if got, err := d.DomainThresholds(ctx, "example.com"); err != nil || got != th {
		t.Errorf("DomainThresholds() after setting = %+v, %v, want %+v", got, err, th)
	}
	u, err := d.PutUser(ctx, "alice", "x", "viewer")
	if err != nil {
		t.Fatal(err)
	}
	hash := []byte("0123456789abcdef0123456789abcdef")
	if err := d.CreateSession(ctx, hash, u.ID, "csrf", time.Now().Add(time.Hour), "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	if s, err := d.SessionByHash(ctx, hash, time.Now()); err != nil || s.User.Username != "alice" {
		t.Errorf("SessionByHash() after login = %+v, %v, want alice's", s, err)
	}

	if _, err := d.Read.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	resumed = true
	dbtest.WaitReplay(t, d)
	if s, o, f, n := reads(ctx); s != 150 || o != 150 || f != 150 || n != 2 {
		t.Errorf("replica reads after resuming = %d, %d, %d, %d reports, want 150, 150, 150, 2", s, o, f, n)
	}
	if lag, err := d.ReplicaLag(ctx); err != nil || lag != 0 {
		t.Errorf("ReplicaLag() after resuming = %v, %v, want 0", lag, err)
	}
}

// TestReplicaLagWithout: without a replica the read pool is the primary
// and the lag is 0.
func TestReplicaLagWithout(t *testing.T) {
	d := dbtest.New(t)
	if d.HasReplica() {
		t.Fatal("HasReplica() = true without DB.Read")
	}
	if lag, err := d.ReplicaLag(context.Background()); err != nil || lag != 0 {
		t.Fatalf("ReplicaLag() = %v, %v, want 0", lag, err)
	}
}
