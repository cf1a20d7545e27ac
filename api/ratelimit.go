package api

import (
	"container/list"
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Rate is a token-bucket limit: Per requests each Every, with bursts of
// Burst. The zero Rate means the default of its setting; RateOff means no
// limit.
type Rate struct {
	Per   float64       // requests
	Every time.Duration // per this period
	Burst int
	Off   bool // no limit at all (TLSRPT_RATE_*=off)
}

// RateOff is the Rate that does not limit.
var RateOff = Rate{Off: true}

func (r Rate) limit() rate.Limit {
	if r.Off || r.Every <= 0 || r.Per <= 0 {
		return rate.Inf
	}
	return rate.Limit(r.Per / r.Every.Seconds())
}

// maxLimiterKeys bounds the addresses a limiter remembers; the least
// recently seen is forgotten first, so a flood from many addresses costs
// memory in proportion to this constant, not to the flood.
const maxLimiterKeys = 10000

// limiter rate-limits per client: one bucket per IPv4 address and per
// IPv6 /64 (a single host usually owns a whole /64, so per-address
// buckets would be trivial to evade), or per key of allowKey (a user).
type limiter struct {
	rate Rate
	max  int
	now  func() time.Time

	mu    sync.Mutex
	byKey map[string]*list.Element
	lru   *list.List // of *bucket, most recent at the front
}

type bucket struct {
	key string
	lim *rate.Limiter
}

func newLimiter(r Rate, maxKeys int, now func() time.Time) *limiter {
	if maxKeys <= 0 {
		maxKeys = maxLimiterKeys
	}
	return &limiter{rate: r, max: maxKeys, now: now, byKey: map[string]*list.Element{}, lru: list.New()}
}

// limiterKey maps an address to its bucket: the address itself for IPv4
// (and IPv4-mapped IPv6), the /64 for IPv6.
func limiterKey(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a
	}
	return p.Addr()
}

// allow takes one token for addr. When none is left it returns false and
// how long until one is.
func (l *limiter) allow(addr netip.Addr) (bool, time.Duration) {
	return l.allowKey(limiterKey(addr).String())
}

// allowKey is allow for a bucket named by key.
func (l *limiter) allowKey(key string) (bool, time.Duration) {
	if l.rate.limit() == rate.Inf {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if el, ok := l.byKey[key]; ok {
		l.lru.MoveToFront(el)
		b = el.Value.(*bucket)
	} else {
		if l.lru.Len() >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.byKey, old.Value.(*bucket).key)
		}
		b = &bucket{key: key, lim: rate.NewLimiter(l.rate.limit(), max(l.rate.Burst, 1))}
		l.byKey[key] = l.lru.PushFront(b)
	}
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, l.rate.Every
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// size is the number of buckets held (for tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

// retryAfter is the Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
