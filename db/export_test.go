package db

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// MakeLegacyTrusted turns stored report id into what a release before
// migration 085 left: trusted without a verified reporter, its totals on
// the trusted side of the rollups.
func (d *DB) MakeLegacyTrusted(ctx context.Context, id int64, day time.Time) error {
	return pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		if err := adjustRollups(ctx, tx, id, day, -1); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE reports SET trusted = true, reporter = '', reporter_method = '' WHERE id = $1 AND day = $2`, id, day); err != nil {
			return err
		}
		return adjustRollups(ctx, tx, id, day, 1)
	})
}

// The SQL of the overview's queries, for TestOverviewQueriesBounded.
var (
	UnlistedDomainsSQL = unlistedDomainsSQL
	UnlistedCountSQL   = unlistedCountSQL
	DomainsSeriesSQL   = domainsSeriesSQL
)

// PoolResets is how many times the primary's pool was reset because a
// server said it was gone or read-only (failover.go).
func (d *DB) PoolResets() int64 { return d.resetter.resets.Load() }

// PolicyMode is the store's reading of an sts policy's mode, for
// TestPolicyModeMatchesSQL.
var PolicyMode = policyMode

// AsyncCommit is what ImportBatch's transactions run first.
var AsyncCommit = asyncCommit
