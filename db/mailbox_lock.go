package db

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// MailboxLockClass is the first key of the two-key advisory locks that
// keep one IMAP poller per mailbox (the second key is hashtext of the
// mailbox). PostgreSQL keeps the two-key space apart from the one-key
// space of migrationLock.
const MailboxLockClass = 0x7470 // "tp"

// TryLockMailbox takes the session-level advisory lock of mailbox on a
// connection of its own, taken out of the pool so that nothing else runs
// on it, and returns at once: held is false when another session (another
// tlsrpt instance) has it. While held, alive checks that the connection,
// and so the lock, still exists; release closes the connection, which
// drops the lock. PostgreSQL drops it too when the holder dies and its
// connection closes, so another instance can take over.
//
// Two mailboxes whose hashtext collides share a lock: they are then
// polled one after the other, never wrongly at the same time.
func (d *DB) TryLockMailbox(ctx context.Context, mailbox string) (held bool, alive func(context.Context) error, release func(), err error) {
	c, err := d.Pool.Acquire(ctx)
	if err != nil {
		return false, nil, nil, fmt.Errorf("locking mailbox %s: %w", mailbox, err)
	}
	if err := c.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, MailboxLockClass, mailbox).Scan(&held); err != nil {
		c.Release()
		return false, nil, nil, fmt.Errorf("locking mailbox %s: %w", mailbox, err)
	}
	if !held {
		c.Release()
		return false, nil, nil, nil
	}
	conn := c.Hijack()
	var mu sync.Mutex // a pgx connection runs one command at a time
	closed := false
	alive = func(ctx context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return fmt.Errorf("checking the lock of mailbox %s: released", mailbox)
		}
		if err := conn.Ping(ctx); err != nil {
			return fmt.Errorf("checking the lock of mailbox %s: %w", mailbox, err)
		}
		return nil
	}
	release = func() {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		closed = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(ctx) // closing the session drops its advisory locks
	}
	return true, alive, release, nil
}
