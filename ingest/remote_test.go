package ingest

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/tlsrpt/tlsrpt/internal/dnsserver"
	"github.com/tlsrpt/tlsrpt/rollout/dnstest"
)

func TestConfirmedName(t *testing.T) {
	dns := dnstest.Start(t, "example.", "test-key.", "c2VjcmV0c2VjcmV0c2VjcmV0")
	dns.Add(t,
		// Confirmed: the name resolves back to the address.
		"7.2.0.192.in-addr.arpa. 300 IN PTR mta1.sender.example.",
		"mta1.sender.example. 300 IN A 192.0.2.7",
		// A PTR anyone can set: the name does not resolve back.
		"8.2.0.192.in-addr.arpa. 300 IN PTR mail-a.google.com.",
		"mail-a.google.com. 300 IN A 203.0.113.1",
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6.sender.example.",
		"v6.sender.example. 300 IN AAAA 2001:db8::1",
	)
	r := dns.Resolver()
	ctx := context.Background()
	for _, tt := range []struct {
		addr, want string
	}{
		{"192.0.2.7", "mta1.sender.example"},
		{"::ffff:192.0.2.7", "mta1.sender.example"},
		{"192.0.2.8", ""},
		{"192.0.2.9", ""}, // no PTR at all
		{"2001:db8::1", "v6.sender.example"},
	} {
		got, err := ConfirmedName(ctx, r, netip.MustParseAddr(tt.addr))
		if err != nil || got != tt.want {
			t.Errorf("ConfirmedName(%s) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
	// A DNS that cannot be reached is no verdict on the poster.
	down := &dnsserver.Server{Addr: "127.0.0.1:1"}
	if _, err := ConfirmedName(ctx, down.Resolver(), netip.MustParseAddr("192.0.2.7")); !errors.Is(err, ErrReverseDNSTemporary) {
		t.Errorf("ConfirmedName with the DNS down = %v, want ErrReverseDNSTemporary", err)
	}
}
