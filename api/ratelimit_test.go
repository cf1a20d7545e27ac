package api

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiterPerIPv4AndIPv6Prefix(t *testing.T) {
	now := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	l := newLimiter(Rate{Per: 1, Every: time.Minute, Burst: 2}, 100, func() time.Time { return now })
	a := netip.MustParseAddr("192.0.2.1")
	for i := range 2 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("allow #%d = false, want true within the burst", i)
		}
	}
	ok, d := l.allow(a)
	if ok || d <= 0 || d > time.Minute {
		t.Fatalf("allow after burst = %v, %v; want false with a wait up to a minute", ok, d)
	}
	if ok, _ := l.allow(netip.MustParseAddr("192.0.2.2")); !ok {
		t.Errorf("another IPv4 address is limited by the first one's bucket")
	}
	if ok, _ := l.allow(netip.MustParseAddr("::ffff:192.0.2.1")); ok {
		t.Errorf("an IPv4-mapped address escapes the IPv4 bucket")
	}
	// Two addresses of one /64 share a bucket; another /64 does not.
	x := netip.MustParseAddr("2001:db8:1:2::1")
	y := netip.MustParseAddr("2001:db8:1:2:ffff::9")
	l.allow(x)
	l.allow(x)
	if ok, _ := l.allow(y); ok {
		t.Errorf("a second address of the same /64 got its own bucket")
	}
	if ok, _ := l.allow(netip.MustParseAddr("2001:db8:1:3::1")); !ok {
		t.Errorf("another /64 is limited")
	}
	now = now.Add(time.Minute)
	if ok, _ := l.allow(a); !ok {
		t.Errorf("allow a minute later = false, want a refilled token")
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Now()
	l := newLimiter(Rate{Per: 1, Every: time.Hour, Burst: 1}, 50, func() time.Time { return now })
	first := netip.MustParseAddr("198.51.100.1")
	l.allow(first)
	for i := range 200 {
		l.allow(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
	}
	if got := l.size(); got != 50 {
		t.Errorf("size() = %d after 201 addresses, want the bound 50", got)
	}
	// The first address was evicted, so it starts with a fresh bucket.
	if ok, _ := l.allow(first); !ok {
		t.Errorf("evicted address still limited")
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {1500 * time.Millisecond, 2}, {time.Minute, 60}} {
		if got := retryAfter(tc.d); got != tc.want {
			t.Errorf("retryAfter(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
