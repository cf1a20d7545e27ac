package ingest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/tlsrpt/tlsrpt/reports"
)

// Batcher is group commit for reports that arrive one per request (the
// HTTPS receiver, RFC 8460 §5.4): each request parses its body in its own
// goroutine, then waits while a worker stores the reports of many requests
// in one transaction (Pipeline.storeGroup, the path of import and the IMAP
// poller) and answers each request with its own outcome. A transaction per
// request costs about eight statements and a commit each; a batch costs
// them once.
//
// The queue is bounded: when it is full, or while the store is failing,
// Report answers at once with a *RetryError instead of waiting. An outcome
// without error means the report is committed. Workers start with the
// first report and stop when idle, so a Batcher needs no Run loop; Close
// drains it.
type Batcher struct {
	p     *Pipeline
	batch BatchStore
	o     BatcherOptions

	queue   chan *intakeJob
	budget  parseBudget  // bytes being read and parsed (Reserve)
	parsing atomic.Int64 // requests between entry and enqueue
	// downUntil (unix nanoseconds) is when the store may be tried again
	// after a failed batch; Report refuses at once until then.
	downUntil atomic.Int64
	batches   atomic.Int64
	stored    atomic.Int64
	waiting   atomic.Int64 // reports taken and not yet answered
	bytes     atomic.Int64 // their raw and JSON bytes

	mu      sync.Mutex
	workers int
	closed  bool
	quit    chan struct{} // closed by Close
	wg      sync.WaitGroup
}

// BatcherOptions tune a Batcher; zero values take the defaults.
type BatcherOptions struct {
	// MaxReports ends a batch (default 256): bigger batches save little
	// more and hold the rollup rows' locks longer.
	MaxReports int
	// MaxDelay is the longest the first report of a batch waits for
	// company while other requests are still being parsed (default 5 ms).
	// When nobody else is on the way, a batch goes at once.
	MaxDelay time.Duration
	// Queue bounds the reports waiting for a worker (default 4096): about
	// 10 MiB of parsed reports at the real senders' sizes.
	Queue int
	// QueueBytes bounds the bytes (body and decompressed JSON) of the
	// reports taken and not yet answered (default 256 MiB): a flood of
	// large reports is refused before it holds the memory. A report
	// larger than the bound alone is still taken when nothing waits.
	QueueBytes int64
	// ParseBytes bounds the bytes being read and parsed at once, each
	// request charged with its ParseCost before its body is read (default
	// 256 MiB; Reserve): 25 gzip bombs at once cost 25 times the
	// decompressed limit without it. A request over the budget is
	// refused with a *RetryError, before anything is acknowledged.
	ParseBytes int64
	// Workers is how many transactions may be in flight (default 2); the
	// second only when a full batch waits for the first (enqueue).
	Workers int
	// StoreTimeout bounds one batch's transaction (default 10 s).
	StoreTimeout time.Duration
	// MaxWait bounds how long a request waits for its answer (default
	// StoreTimeout + 5 s); past it the request gets a RetryError (the
	// batch may still commit: a sender's retry is then a duplicate).
	MaxWait time.Duration
	// DownFor is how long Report refuses at once after a batch failed for
	// the store's sake (default 5 s): the database is down, and queueing
	// requests behind it would only make them hang.
	DownFor time.Duration
	// Full is the Retry-After of a request refused because the queue is
	// full (default 2 s).
	Full time.Duration
}

func (o BatcherOptions) withDefaults() BatcherOptions {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if o.MaxReports <= 0 {
		o.MaxReports = 256
	}
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Workers <= 0 {
		o.Workers = 2
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 256 << 20
	}
	if o.ParseBytes <= 0 {
		o.ParseBytes = DefaultParseBytes
	}
	def(&o.MaxDelay, 5*time.Millisecond)
	def(&o.StoreTimeout, 10*time.Second)
	def(&o.MaxWait, o.StoreTimeout+5*time.Second)
	def(&o.DownFor, 5*time.Second)
	def(&o.Full, 2*time.Second)
	return o
}

// DefaultParseBytes is BatcherOptions.ParseBytes unless set: four
// unknown-length bodies of the default limits (10 MiB read, 64 MiB
// decompressed) at once, or hundreds of real reports.
const DefaultParseBytes = 256 << 20

// idleExit is how long a worker waits for work before it stops.
const idleExit = 2 * time.Second

// RetryError is a report not taken now: the queue is full, the store is
// down, or the Batcher is closing. errors.Is(err, ErrRetryLater) holds.
type RetryError struct {
	// After is how long the sender should wait (HTTP Retry-After).
	After  time.Duration
	Reason string
	Err    error // the store's error, if any
}

func (e *RetryError) Error() string {
	s := "ingest: retry later: " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrRetryLater) true.
func (e *RetryError) Is(target error) bool { return target == ErrRetryLater }

func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfterSeconds is After in whole seconds, at least 1, as the HTTP
// header wants it.
func (e *RetryError) RetryAfterSeconds() string {
	return strconv.Itoa(max(1, int(math.Ceil(e.After.Seconds()))))
}

// ErrClosed is the reason of a RetryError from a closed Batcher.
var ErrClosed = errors.New("ingest: intake closed")

// intakeJob is one request's report waiting for its batch; done has room
// for the answer, so a worker never blocks on a request that left.
type intakeJob struct {
	ctx  context.Context
	pr   *parsed
	done chan intakeAnswer
}

// size is what the job holds in memory, about.
func (j *intakeJob) size() int64 {
	n := int64(len(j.pr.raw))
	for _, r := range j.pr.received {
		n += int64(len(r.JSON))
	}
	return n
}

type intakeAnswer struct {
	out Outcome
	err error
}

// NewBatcher returns a Batcher storing through p, a batch of reports at a
// time with batch (nil stores one at a time, still in one worker).
func NewBatcher(p *Pipeline, batch BatchStore, o BatcherOptions) *Batcher {
	o = o.withDefaults()
	return &Batcher{p: p, batch: batch, o: o, queue: make(chan *intakeJob, o.Queue), quit: make(chan struct{}),
		budget: parseBudget{sem: semaphore.NewWeighted(o.ParseBytes), size: o.ParseBytes}}
}

// BatcherStats count what a Batcher stored.
type BatcherStats struct {
	Batches int64 // batches stored (one transaction each, unless the store refused one of its reports)
	Reports int64 // reports in them stored or found already stored
	// Waiting is the reports taken and not answered yet: queued, or in a
	// batch being stored.
	Waiting int64
}

// Stats returns the counts so far.
func (b *Batcher) Stats() BatcherStats {
	return BatcherStats{Batches: b.batches.Load(), Reports: b.stored.Load(), Waiting: b.waiting.Load()}
}

// Report handles a bare report (an HTTPS POST body) as Pipeline.Report
// does, stored together with the reports of concurrent calls. A broken
// body is quarantined at once, outside any batch. The error is a
// *RetryError when the report was not taken (nothing is committed then,
// or, after MaxWait, maybe later), or ctx's error when the caller left
// (the report is still stored).
func (b *Batcher) Report(ctx context.Context, body []byte, src reports.Source, ref string) (Outcome, error) {
	j, out, err := b.admit(ctx, body, src, ref)
	if err != nil || j == nil {
		return out, err
	}
	t := time.NewTimer(b.o.MaxWait)
	defer t.Stop()
	select {
	case a := <-j.done:
		return a.out, a.err
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("waiting for the report's batch: %w", ctx.Err())
	case <-t.C:
		return Outcome{}, &RetryError{After: b.o.DownFor, Reason: "the store did not answer in " + b.o.MaxWait.String()}
	}
}

// admit parses the body and queues its report (the job, whose answer will
// come on done), or answers at once (no job). While it runs, the request
// counts as parsing: a worker holds its batch open for it.
func (b *Batcher) admit(ctx context.Context, body []byte, src reports.Source, ref string) (*intakeJob, Outcome, error) {
	b.parsing.Add(1)
	if err := b.refusal(); err != nil {
		b.parsing.Add(-1)
		return nil, Outcome{}, err
	}
	pr := b.p.parseReport(body, src, ref, remoteOf(ctx))
	if len(pr.received) == 0 {
		b.parsing.Add(-1)
		// A broken body is quarantined from the request's goroutine: it
		// needs no batch, and must not hold one up.
		out, err := b.p.settle(ctx, pr, nil)
		return nil, out, err
	}
	j := &intakeJob{ctx: ctx, pr: pr, done: make(chan intakeAnswer, 1)}
	err := b.enqueue(j)
	b.parsing.Add(-1)
	if err != nil {
		return nil, Outcome{}, err
	}
	return j, Outcome{}, nil
}

// refusal is the RetryError of a Batcher that takes nothing now.
func (b *Batcher) refusal() error {
	if until := b.downUntil.Load(); until != 0 {
		if wait := time.Until(time.Unix(0, until)); wait > 0 {
			return &RetryError{After: wait, Reason: "the store is unavailable"}
		}
	}
	return nil
}

// enqueue puts j in the queue and makes sure a worker will take it.
func (b *Batcher) enqueue(j *intakeJob) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return &RetryError{After: b.o.DownFor, Reason: "the server is shutting down", Err: ErrClosed}
	}
	size := j.size()
	if b.waiting.Load() > 0 && b.bytes.Load()+size > b.o.QueueBytes {
		return &RetryError{After: b.o.Full, Reason: "too many report bytes are waiting to be stored"}
	}
	select {
	case b.queue <- j:
		b.waiting.Add(1)
		b.bytes.Add(size)
	default:
		return &RetryError{After: b.o.Full, Reason: "too many reports are waiting to be stored"}
	}
	// One worker while it keeps up: on two cores a transaction of 60
	// reports costs PostgreSQL half the CPU per report of two of 15. Another
	// starts only when a full batch is waiting behind the running ones.
	if b.workers == 0 || (b.workers < b.o.Workers && len(b.queue) >= b.o.MaxReports) {
		b.workers++
		b.wg.Add(1)
		go b.work(j.ctx)
	}
	return nil
}

// work stores batches until it has been idle for idleExit, or until the
// Batcher is closed and the queue is empty.
func (b *Batcher) work(ctx context.Context) {
	defer b.wg.Done()
	// The worker outlives the request that started it; it keeps only its
	// values (logging).
	ctx = context.WithoutCancel(ctx)
	idle := time.NewTimer(idleExit)
	defer idle.Stop()
	for {
		select {
		case j := <-b.queue:
			b.store(ctx, b.collect(j))
			idle.Reset(idleExit)
			continue
		case <-idle.C:
		case <-b.quit:
		}
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.workers--
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		idle.Reset(idleExit)
	}
}

// collect makes a batch starting with first: what is queued, and, while
// other requests are still parsing, what arrives within MaxDelay.
func (b *Batcher) collect(first *intakeJob) []*intakeJob {
	group := []*intakeJob{first}
	n := len(first.pr.received)
	var deadline <-chan time.Time
	for n < b.o.MaxReports {
		select {
		case j := <-b.queue:
			group = append(group, j)
			n += len(j.pr.received)
			continue
		default:
		}
		if b.parsing.Load() == 0 {
			return group
		}
		if deadline == nil {
			t := time.NewTimer(b.o.MaxDelay)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case j := <-b.queue:
			group = append(group, j)
			n += len(j.pr.received)
		case <-deadline:
			return group
		}
	}
	return group
}

// store commits a batch and answers each of its requests.
func (b *Batcher) store(ctx context.Context, group []*intakeJob) {
	ctx, cancel := context.WithTimeout(ctx, b.o.StoreTimeout)
	defer cancel()
	prs := make([]*parsed, len(group))
	n := 0
	for i, j := range group {
		prs[i] = j.pr
		n += len(j.pr.received)
	}
	outs, err := b.p.storeGroup(ctx, b.batch, prs)
	if err != nil {
		b.downUntil.Store(time.Now().Add(b.o.DownFor).UnixNano())
		b.p.log().ErrorContext(ctx, "Storing a batch of posted reports failed", "reports", n, "retry_in", b.o.DownFor, "error", err)
		re := &RetryError{After: b.o.DownFor, Reason: "the store is unavailable", Err: err}
		b.answered(group)
		for _, j := range group {
			j.done <- intakeAnswer{err: re}
		}
		return
	}
	b.downUntil.Store(0)
	b.batches.Add(1)
	b.answered(group)
	for i, j := range group {
		b.stored.Add(int64(outs[i].Reports))
		j.done <- intakeAnswer{out: outs[i]}
	}
}

// answered takes a stored group out of the waiting counts.
func (b *Batcher) answered(group []*intakeJob) {
	var size int64
	for _, j := range group {
		size += j.size()
	}
	b.bytes.Add(-size)
	b.waiting.Add(-int64(len(group)))
}

// Close stops taking reports and waits until every queued one is stored
// and answered, or ctx ends.
func (b *Batcher) Close(ctx context.Context) error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.quit)
	}
	b.mu.Unlock()
	done := make(chan struct{})
	go func() {
		b.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("draining the intake queue: %w", ctx.Err())
	}
}
