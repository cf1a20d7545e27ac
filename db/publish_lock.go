package db

import (
	"context"
	"fmt"
)

// WithPublishLock runs fn while holding the publishing lock of domain: a
// transaction-level advisory lock on the primary, so tlsrpt serve's
// reconciler, a page request and a CLI run in another process never
// publish the same domain at once. With wait it waits for the lock (ctx
// bounds the wait); without, it returns false at once when another holds
// it and fn does not run. The lock ends with the transaction, also when
// the process dies. fn does its reads and writes through the pool: the
// transaction only holds the lock.
func (d *DB) WithPublishLock(ctx context.Context, domain string, wait bool, fn func() error) (bool, error) {
	tx, err := d.Pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("locking %s for publishing: %w", domain, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	key := "tlsrpt.publish:" + normDomain(domain)
	if wait {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
			return false, fmt.Errorf("locking %s for publishing: %w", domain, err)
		}
	} else {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`, key).Scan(&ok); err != nil {
			return false, fmt.Errorf("locking %s for publishing: %w", domain, err)
		}
		if !ok {
			return false, nil
		}
	}
	return true, fn()
}
