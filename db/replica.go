package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Read replicas (SCALING.md, docs/store.md). DB.Read, when set, is a pool on a
// streaming replica of the primary (DATABASE_READ_URL); the read-only
// queries of the pages, the API and the verdict go to it through reader,
// every write and every read that must see a write just made stays on
// DB.Pool. A replica replays the primary's WAL a few seconds late at
// worst (ReplicaLag), and each method below is safe to answer from that
// past:
//
//   - the dashboard: DomainSeries, ListedSeries, DomainsSeries,
//     UnlistedDomains, UnlistedCount, Breakdown (and the sending-IP
//     breakdown), DomainMode, PolicyTypeTotals, DashboardReports: daily
//     rollups and report lists; a report arriving seconds later shows
//     seconds later, as it would had it been mailed later.
//   - the overview: OverviewDomains, OverviewDomain: stored badges, which
//     are already recomputed asynchronously (verdict_cache.go).
//   - the metrics: MetricsCounts, MetricsDomains: read at each scrape, tens
//     of seconds apart; a figure seconds old is what the next scrape
//     would have seen anyway.
//   - the verdict: Facts, a snapshot of days that are over (the current
//     UTC day is left out), so only reports of the last seconds can be
//     missing, and those are about closed days at most.
//
// What stays on the primary: every write; sessions, logins and API tokens
// (auth.go: a session just created must be found); settings, thresholds
// and reporter rules (a change is read back at once); policy versions and
// promotions; the audit log; StaleVerdicts and RefreshVerdict, whose
// compute reads the facts with Primary(ctx) because it deletes the
// invalidations it saw (a late read would store a badge missing a change
// whose invalidation is gone). A caller that must see its own write marks
// its context with Primary: api does so for every request that is not a
// GET or HEAD, for the page a form redirects to (?done=) and for the
// promotion watch.

// primaryKey marks a context whose reads go to the primary.
type primaryKey struct{}

// Primary returns ctx marked so that the store's replica reads use the
// primary instead: for a request or a loop that must see its own writes.
func Primary(ctx context.Context) context.Context {
	return context.WithValue(ctx, primaryKey{}, true)
}

// reader is the pool of a read that may lag behind the primary by the
// replica's lag: DB.Read when set and ctx is not marked with Primary, else
// DB.Pool.
func (d *DB) reader(ctx context.Context) *pgxpool.Pool {
	if d.Read == nil || ctx.Value(primaryKey{}) != nil {
		return d.Pool
	}
	return d.Read
}

// HasReplica reports whether reads go to a replica (DB.Read is set).
func (d *DB) HasReplica() bool { return d.Read != nil }

// OpenReplica opens the pool of the read replica at url (DATABASE_READ_URL)
// with Open's settings, except those for the primary's failover
// (failover.go: several hosts keep libpq's target_session_attrs there),
// and makes it DB.Read.
func (d *DB) OpenReplica(ctx context.Context, url string) error {
	r, err := openPool(ctx, url, nil)
	if err != nil {
		return fmt.Errorf("db: opening the read replica: %w", err)
	}
	if d.Read != nil {
		d.Read.Close()
	}
	d.Read = r
	return nil
}

// ReplicaLag is how far the read replica is behind the primary: the time
// since the last transaction it replayed was committed on the primary
// (now() - pg_last_xact_replay_timestamp() on the replica). It is 0
// without a replica, on a server that is not in recovery, and when no
// transaction was replayed since the replica started. PostgreSQL knows
// only the last replayed commit, so an idle primary would make that
// figure grow although nothing is missing: while the replica streams from
// the primary (a WAL receiver runs) and has replayed all it received, the
// lag is 0. A replica cut off from its primary has no WAL receiver, and
// its lag grows from its last replayed commit.
func (d *DB) ReplicaLag(ctx context.Context) (time.Duration, error) {
	if d.Read == nil {
		return 0, nil
	}
	var secs float64
	err := d.Read.QueryRow(ctx, `SELECT CASE
		WHEN NOT pg_is_in_recovery() OR pg_last_xact_replay_timestamp() IS NULL THEN 0
		WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()
			AND EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL) THEN 0
		ELSE greatest(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)::float8 END`).Scan(&secs)
	if err != nil {
		return 0, fmt.Errorf("reading the replica's lag: %w", err)
	}
	return time.Duration(secs * float64(time.Second)), nil
}
