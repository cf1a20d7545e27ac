package db

import (
	"context"
	"fmt"
	"time"
)

// publishLockRetry is how often WithPublishLock tries again while another
// holds the lock. A waiter holds no connection between tries: waiters
// blocking inside PostgreSQL would each hold one, and could take the whole
// pool from the holder that needs one to finish.
const publishLockRetry = 100 * time.Millisecond

// WithPublishLock runs fn while holding the publishing lock of domain: a
// transaction-level advisory lock on the primary, so tlsrpt serve's
// reconciler, a page request and a CLI run in another process never
// publish the same domain at once. With wait it tries until it gets the
// lock (ctx bounds the wait); without, it returns false at once when
// another holds it, and fn does not run. The lock ends with the
// transaction, also when the process dies. fn does its reads and writes
// through the pool: the transaction only holds the lock.
func (d *DB) WithPublishLock(ctx context.Context, domain string, wait bool, fn func() error) (bool, error) {
	for {
		ok, err := d.withPublishLock(ctx, domain, fn)
		if ok || err != nil || !wait {
			return ok, err
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("waiting for the publishing lock of %s: %w", domain, ctx.Err())
		case <-time.After(publishLockRetry):
		}
	}
}

func (d *DB) withPublishLock(ctx context.Context, domain string, fn func() error) (bool, error) {
	tx, err := d.Pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("locking %s for publishing: %w", domain, err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	var ok bool
	err = tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))`,
		"tlsrpt.publish:"+normDomain(domain)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("locking %s for publishing: %w", domain, err)
	}
	if !ok {
		return false, nil
	}
	return true, fn()
}
