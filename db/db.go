// Package db is tlsrpt's PostgreSQL store: one concrete type over a pgx
// pool, the schema in numbered embedded migrations, one file of queries per
// table group. Every method takes a context first.
package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when the row asked for does not exist.
var ErrNotFound = errors.New("db: not found")

// DB is the store. Sibling query files of this package use Pool directly.
type DB struct {
	Pool *pgxpool.Pool
	// Read is the pool of a read replica (DATABASE_READ_URL), nil when
	// there is none: the replica-safe reads then use Pool (replica.go).
	Read *pgxpool.Pool
	// Now is the clock that decides which report days are too far ahead
	// (partitions.go); nil means time.Now. A test that stores reports
	// dated by its own clock sets it to that clock.
	Now func() time.Time
	// QuarantineMaxBytes caps the bytes the quarantine keeps (0:
	// DefaultQuarantineMaxBytes); Quarantine documents what happens past it.
	QuarantineMaxBytes int64
	// parts caches the monthly partitions known to exist and the
	// retention cutoff (partitions.go).
	parts partitionCache
	// trust caches the operator's reporter rules (reporters.go).
	trust trustCache
	// resetter resets Pool when a server says it is gone or read-only
	// (failover.go).
	resetter *poolResetter
}

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string) and checks that it answers. It does not migrate. The
// URL may list several hosts, the primary and its standbys: the pool
// then connects to whichever is the primary and follows a failover
// (failover.go).
func Open(ctx context.Context, url string) (*DB, error) {
	r := &poolResetter{}
	pool, err := openPool(ctx, url, r)
	if err != nil {
		return nil, err
	}
	return &DB{Pool: pool, resetter: r}, nil
}

// openPool opens a pool on url; r, when not nil, makes it the pool of the
// primary (primaryConfig), else it is a read replica's.
func openPool(ctx context.Context, url string, r *poolResetter) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("db: parsing database url: %w", err)
	}
	if r != nil {
		primaryConfig(cfg, url, r)
	}
	// A vanished server ends its connections within seconds
	// (deadpeer.go); the connect timeout stays with the context.
	cfg.ConnConfig.DialFunc = deadPeerDialer().DialContext
	// PostgreSQL's JIT compiles a query whose estimated cost is high; over
	// the monthly partitions the estimates of the dashboard's queries cross
	// that threshold and a query of milliseconds paid half a second of
	// compilation (docs/store.md). The URL can still turn it on (?jit=on).
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("db: opening pool: %w", err)
	}
	if r != nil {
		r.pool.Store(pool)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("db: connecting to %s: %w", cfg.ConnConfig.Host, err)
	}
	return pool, nil
}

// Close closes every connection of the pools.
func (d *DB) Close() {
	d.Pool.Close()
	if d.Read != nil {
		d.Read.Close()
	}
}

// now is the store's clock (DB.Now, default time.Now).
func (d *DB) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}
