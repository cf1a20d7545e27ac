package ingest

import (
	"context"
	"time"
)

// MailboxLocker keeps one poller per mailbox when several tlsrpt instances
// share one database (docs/imap.md, "Several instances"). *db.DB satisfies
// it with a PostgreSQL session-level advisory lock; a StateStore that does
// not implement it gets no locking (a single instance).
type MailboxLocker interface {
	// TryLockMailbox takes the lock of mailbox if it is free; held says
	// whether it did. alive reports an error once the lock is lost;
	// release gives it up.
	TryLockMailbox(ctx context.Context, mailbox string) (held bool, alive func(context.Context) error, release func(), err error)
}

// Timing of the mailbox lock. A poller whose lock connection died notices
// within lockCheck and stops its session; a new holder waits lockGrace
// (longer) before its first session, so that the two never poll together
// unless the old one's IMAP session takes longer than that to stop.
const (
	lockRetry = 3 * time.Second
	lockCheck = 2 * time.Second
	lockGrace = lockCheck + time.Second
)

// Run polls the mailbox until ctx is done (see runSessions), holding the
// mailbox's lock when the state store can lock: an instance that finds the
// mailbox locked waits, trying again every lockRetry, and takes over when
// the holder stops or dies. Run returns nil when ctx is cancelled.
func (p *Poller) Run(ctx context.Context) error {
	l, ok := p.state.(MailboxLocker)
	if !ok {
		return p.runSessions(ctx)
	}
	key := p.cfg.MailboxKey()
	waiting := false
	for {
		held, alive, release, err := l.TryLockMailbox(ctx, key)
		if ctx.Err() != nil {
			if held {
				release()
			}
			return nil
		}
		switch {
		case err != nil:
			p.log.Warn("Locking the mailbox failed, retrying", "error", err, "retry_in", lockRetry)
		case !held:
			if !waiting {
				p.log.Info("Mailbox polled by another instance, waiting to take over")
				waiting = true
			}
		default:
			waiting = false
			p.log.Info("Mailbox lock taken")
			err := p.runHolding(ctx, alive)
			release()
			if ctx.Err() != nil {
				return nil
			}
			p.log.Warn("Mailbox lock lost, stopped polling", "error", err)
		}
		t := time.NewTimer(lockRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// runHolding runs the sessions while alive says the lock is held: after
// lockGrace, and until ctx is done or the lock is lost (its error).
func (p *Poller) runHolding(ctx context.Context, alive func(context.Context) error) error {
	t := time.NewTimer(lockGrace)
	select {
	case <-ctx.Done():
		t.Stop()
		return nil
	case <-t.C:
	}
	if err := alive(ctx); err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.runSessions(sctx) }()
	tick := time.NewTicker(lockCheck)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			cctx, ccancel := context.WithTimeout(ctx, lockCheck)
			err := alive(cctx)
			ccancel()
			if err != nil {
				cancel()
				<-done
				return err
			}
		}
	}
}
