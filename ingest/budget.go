package ingest

import (
	"sync"

	"golang.org/x/sync/semaphore"

	"github.com/tlsrpt/tlsrpt/reports"
)

// maxDeflateRatio is the most a deflate stream can expand (RFC 1951: a
// 258-byte match costs at least two bits, about 1032:1). A gzip body of n
// bytes never inflates past n times this.
const maxDeflateRatio = 1032

// ParseCost is the most that reading and parsing a report body of n bytes
// holds at once in bytes of input: the body itself, and the JSON it may
// decompress to (lim.MaxReportBytes at most, whatever a gzip trailer
// says). The decoded report's own structures come on top, a small
// multiple of its JSON.
func ParseCost(n int64, lim reports.Limits) int64 {
	maxJSON := lim.MaxReportBytes
	if maxJSON <= 0 {
		maxJSON = reports.DefaultMaxReportBytes
	}
	out := maxJSON
	if n < maxJSON/maxDeflateRatio {
		out = n * maxDeflateRatio
	}
	return n + max(out, n)
}

// parseBudget bounds the bytes being read and parsed at once by the
// requests of a Batcher (BatcherOptions.ParseBytes): a weighted semaphore
// charged with each request's ParseCost before its body is read.
type parseBudget struct {
	sem  *semaphore.Weighted
	size int64
}

// Reservation is one request's share of the parse budget, held from
// before its body is read until its report is parsed and queued (then the
// queue's own bound, QueueBytes, takes over).
type Reservation struct {
	b    *parseBudget
	mu   sync.Mutex
	held int64
}

// Reserve takes n bytes of the parse budget, or answers a *RetryError at
// once when they are not free: a flood of large or compressed bodies is
// refused (HTTP 503 with Retry-After) before it holds the memory, and a
// refused request has had nothing acknowledged. A request costing more
// than the whole budget is charged the whole budget: it is taken when
// nothing else is being parsed. Release gives the bytes back.
func (b *Batcher) Reserve(n int64) (*Reservation, error) {
	n = min(max(n, 1), b.budget.size)
	if !b.budget.sem.TryAcquire(n) {
		return nil, &RetryError{After: b.o.Full, Reason: "too many report bytes are being parsed"}
	}
	return &Reservation{b: &b.budget, held: n}, nil
}

// Shrink keeps n bytes of the reservation and gives back the rest (once
// the body is read and shorter than feared). It never grows it.
func (r *Reservation) Shrink(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = max(n, 1)
	if n < r.held {
		r.b.sem.Release(r.held - n)
		r.held = n
	}
}

// Release gives the whole reservation back; calling it again does nothing.
func (r *Reservation) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held > 0 {
		r.b.sem.Release(r.held)
		r.held = 0
	}
}
