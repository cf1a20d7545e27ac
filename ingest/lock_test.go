package ingest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

var _ MailboxLocker = (*db.DB)(nil)

// TestPollerLockTwoInstances runs two pollers of one mailbox against one
// database, as two tlsrpt instances would: only one polls at a time; when
// the holder's lock session dies (its backend terminated, as when the
// process or its host dies), the other takes over, and every report is
// stored exactly once.
func TestPollerLockTwoInstances(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	cfg := memConfig(srv.addr)
	cfg.PollInterval = time.Second
	a := newTestPoller(t, cfg, d, reports.Limits{})
	b := newTestPoller(t, cfg, d, reports.Limits{})

	// Watch both: two sessions at once is the failure this lock prevents.
	var both atomic.Bool
	stopWatch := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if a.Status().Connected && b.Status().Connected {
				both.Store(true)
			}
		}
	}()

	ctx, cancel := context.WithCancel(t.Context())
	doneA, doneB := make(chan error, 1), make(chan error, 1)
	go func() { doneA <- a.Run(ctx) }()
	waitFor(t, 15*time.Second, "poller a to connect", func() bool { return a.Status().Connected })
	go func() { doneB <- b.Run(ctx) }()

	mb := buildMailbox(t, 12, false, 1<<20)
	appendMsgs(t, srv.addr, mb.msgs[:6])
	waitFor(t, 15*time.Second, "6 reports stored", func() bool { return countRows(t, d, "reports") == 6 })
	if b.Status().Connected || b.Status().Totals.Messages != 0 {
		t.Fatalf("poller b polled while a held the lock: %+v", b.Status())
	}

	// a's lock session dies.
	var killed int
	err := d.Pool.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND classid::bigint = $1 AND granted`, int64(db.MailboxLockClass)).Scan(&killed)
	if err != nil || killed != 1 {
		t.Fatalf("terminating the lock holder = %d, %v; want 1 backend", killed, err)
	}
	waitFor(t, 20*time.Second, "poller a to stop after losing the lock", func() bool { return !a.Status().Connected })
	// Whichever takes the lock next (a again, or b), the rest is polled.
	appendMsgs(t, srv.addr, mb.msgs[6:12])
	waitFor(t, 30*time.Second, "12 reports stored", func() bool { return countRows(t, d, "reports") == 12 })
	cancel()
	for _, done := range []chan error{doneA, doneB} {
		if err := <-done; err != nil {
			t.Errorf("Run() = %v after cancel, want nil", err)
		}
	}
	close(stopWatch)
	<-watched
	if both.Load() {
		t.Error("both pollers had an IMAP session at the same time")
	}
	sa, sb := a.Status().Totals, b.Status().Totals
	if sa.Stored+sb.Stored != 12 || sa.Duplicates+sb.Duplicates != 0 {
		t.Errorf("stored by a %+v, by b %+v: want 12 reports stored once in all", sa, sb)
	}
	// Releasing closes the lock's connection; its backend drops the lock
	// as it exits, a moment later.
	waitFor(t, 10*time.Second, "no advisory lock left after both stopped", func() bool {
		var locks int
		err := d.Pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = $1`,
			int64(db.MailboxLockClass)).Scan(&locks)
		if err != nil {
			t.Fatal(err)
		}
		return locks == 0
	})
}

// TestPollerLockWaits: a second poller started while the first holds the
// lock does not poll; it takes over when the first stops cleanly.
func TestPollerLockWaits(t *testing.T) {
	d := dbtest.New(t)
	srv := startMem(t, memOptions{})
	cfg := memConfig(srv.addr)
	cfg.PollInterval = time.Second
	a := newTestPoller(t, cfg, d, reports.Limits{})
	b := newTestPoller(t, cfg, d, reports.Limits{})
	ctxA, cancelA := context.WithCancel(t.Context())
	doneA := make(chan error, 1)
	go func() { doneA <- a.Run(ctxA) }()
	waitFor(t, 15*time.Second, "poller a to connect", func() bool { return a.Status().Connected })
	ctxB, cancelB := context.WithCancel(t.Context())
	defer cancelB()
	doneB := make(chan error, 1)
	go func() { doneB <- b.Run(ctxB) }()
	time.Sleep(lockRetry + lockGrace)
	if b.Status().Connected {
		t.Fatal("poller b connected while a held the lock")
	}
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatalf("a.Run() = %v", err)
	}
	waitFor(t, 2*(lockRetry+lockGrace)+5*time.Second, "poller b to take over", func() bool { return b.Status().Connected })
	mb := buildMailbox(t, 2, false, 1<<20)
	appendMsgs(t, srv.addr, mb.msgs[:2])
	waitFor(t, 15*time.Second, "2 reports stored by b", func() bool { return b.Status().Totals.Stored == 2 })
	cancelB()
	if err := <-doneB; err != nil {
		t.Errorf("b.Run() = %v", err)
	}
}
