package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// StateStore keeps the IMAP position per mailbox: UIDVALIDITY and the
// highest UID whose message is in its final folder. *db.DB satisfies it.
type StateStore interface {
	IngestState(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, err error)
	SetIngestState(ctx context.Context, mailbox string, uidValidity, lastUID uint32) error
}

// Stats counts what one pass (or, from Status, the poller's life) did.
type Stats struct {
	Messages    int // messages read from the mailbox
	Stored      int // reports stored for the first time
	Duplicates  int // reports already stored (a resent report, or a retry after a crash)
	Quarantined int // messages with no valid report, moved to the quarantine folder
	Refused     int // broken report parts (in quarantined or in processed messages)
	Deferred    int // messages left in the mailbox for a later pass (store down, DKIM key not fetchable now)
}

func (s *Stats) add(o Stats) {
	s.Messages += o.Messages
	s.Stored += o.Stored
	s.Duplicates += o.Duplicates
	s.Quarantined += o.Quarantined
	s.Refused += o.Refused
	s.Deferred += o.Deferred
}

// PollerStatus is the poller's health for /healthz and the metrics.
type PollerStatus struct {
	Connected   bool
	LastSuccess time.Time // end of the last pass that completed
	LastError   string    // "" after a pass that completed
	Reconnects  int64
	Totals      Stats
}

// Backoff bounds of reconnecting.
const (
	minBackoff = time.Second
	maxBackoff = 5 * time.Minute
)

// Poller moves the reports of one IMAP mailbox into the store: every
// message is read, its reports stored, and only after the commit moved to
// the processed folder (or the quarantine folder). A crash at any moment
// loses nothing: an unmoved message is read again and its reports are
// found to be duplicates.
type Poller struct {
	cfg   IMAPConfig
	state StateStore
	log   *slog.Logger
	token tokenFunc
	pipe  messageProcessor

	messages, stored, duplicates, quarantined, refused, deferred, reconnects atomic.Int64

	mu          sync.Mutex
	connected   bool
	lastSuccess time.Time
	lastErr     string

	// warned keeps one-time warnings (no UIDPLUS) from repeating.
	warnedNoUIDPlus atomic.Bool
}

// newPoller builds a poller around any processor; NewPoller binds the
// pipeline.
func newPoller(cfg IMAPConfig, pipe messageProcessor, state StateStore, log *slog.Logger) (*Poller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	p := &Poller{cfg: cfg, state: state, log: log.With("mailbox", cfg.MailboxKey()), pipe: pipe}
	p.token = newTokenFunc(&p.cfg)
	return p, nil
}

// Config returns the validated configuration.
func (p *Poller) Config() IMAPConfig { return p.cfg }

// Status returns the health and the counters.
func (p *Poller) Status() PollerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PollerStatus{
		Connected:   p.connected,
		LastSuccess: p.lastSuccess,
		LastError:   p.lastErr,
		Reconnects:  p.reconnects.Load(),
		Totals: Stats{
			Messages:    int(p.messages.Load()),
			Stored:      int(p.stored.Load()),
			Duplicates:  int(p.duplicates.Load()),
			Quarantined: int(p.quarantined.Load()),
			Refused:     int(p.refused.Load()),
			Deferred:    int(p.deferred.Load()),
		},
	}
}

func (p *Poller) count(st Stats) {
	p.messages.Add(int64(st.Messages))
	p.stored.Add(int64(st.Stored))
	p.duplicates.Add(int64(st.Duplicates))
	p.quarantined.Add(int64(st.Quarantined))
	p.refused.Add(int64(st.Refused))
	p.deferred.Add(int64(st.Deferred))
}

func (p *Poller) setConnected(c bool) {
	p.mu.Lock()
	p.connected = c
	p.mu.Unlock()
}

func (p *Poller) recordPass(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.lastErr = err.Error()
		return
	}
	p.lastErr = ""
	p.lastSuccess = time.Now()
}

// Once connects, makes one full pass over the mailbox and logs out.
func (p *Poller) Once(ctx context.Context) (Stats, error) {
	s, err := p.dial(ctx)
	if err != nil {
		p.recordPass(err)
		return Stats{}, err
	}
	p.setConnected(true)
	defer func() {
		s.close()
		p.setConnected(false)
	}()
	st, err := p.sync(ctx, s)
	p.recordPass(err)
	return st, err
}

// runSessions polls until ctx is done: a full pass after every
// (re)connect, then IDLE where the server has it (polling otherwise) and a
// pass whenever mail arrives or the poll interval passes. Errors (a
// dropped connection, the database being down) end the session; it is
// retried with exponential backoff and jitter. It returns nil when ctx is
// cancelled. Run (lock.go) calls it while holding the mailbox's lock.
func (p *Poller) runSessions(ctx context.Context) error {
	failures := 0
	for {
		progressed, err := p.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if progressed {
			failures = 0
		}
		failures++
		wait := backoff(failures)
		p.log.Warn("IMAP session ended, reconnecting", "error", err, "retry_in", wait.Round(time.Millisecond))
		p.reconnects.Add(1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// backoff is the wait before attempt n (1-based): doubling from
// minBackoff up to maxBackoff, with "equal jitter" so that many pollers
// restarted together do not reconnect together.
func backoff(n int) time.Duration {
	d := maxBackoff
	if n < 20 {
		d = min(minBackoff<<(n-1), maxBackoff)
	}
	return d/2 + rand.N(d/2+1)
}

// session runs one connection until it fails or ctx is done. progressed
// says whether at least one pass completed, which resets the backoff.
func (p *Poller) session(ctx context.Context) (progressed bool, err error) {
	s, err := p.dial(ctx)
	if err != nil {
		p.recordPass(err)
		return false, err
	}
	p.setConnected(true)
	p.log.Info("IMAP connected", "idle", s.canIdle(), "processed_folder", s.processed, "quarantine_folder", s.quarantine)
	defer func() {
		s.close()
		p.setConnected(false)
	}()
	for {
		st, err := p.sync(ctx, s)
		p.recordPass(err)
		if err != nil {
			return progressed, err
		}
		progressed = true
		if st.Messages > 0 {
			p.log.Info("IMAP pass done", "messages", st.Messages, "stored", st.Stored, "duplicates", st.Duplicates, "quarantined", st.Quarantined)
		}
		if err := p.wait(ctx, s); err != nil {
			return progressed, err
		}
		if ctx.Err() != nil {
			return progressed, nil
		}
	}
}

// wait returns when new mail may have arrived: the server said so during
// IDLE, or the poll interval passed.
func (p *Poller) wait(ctx context.Context, s *session) error {
	t := time.NewTimer(p.cfg.PollInterval)
	defer t.Stop()
	if !s.canIdle() {
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-s.newMail:
		}
		return nil
	}
	s.deadline(idleTimeout)
	idle, err := s.c.Idle()
	if err != nil {
		return fmt.Errorf("starting IDLE: %w", err)
	}
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-s.newMail:
	case <-s.c.Closed():
	}
	s.deadline(commandTimeout)
	if err := idle.Close(); err != nil {
		return fmt.Errorf("stopping IDLE: %w", err)
	}
	if err := idle.Wait(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	return nil
}

// errStore marks a failure of the store (the database), as opposed to the
// IMAP server: nothing is moved, and the pass is retried later.
var errStore = errors.New("ingest: store unavailable")
