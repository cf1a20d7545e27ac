package rollout

import (
	"context"
	"testing"
)

// BenchmarkCheck runs a whole inspection of a healthy domain against the
// loopback DNS and HTTPS servers: five DNS queries, one TLS handshake and
// fetch (no connection reuse, as for a real check).
func BenchmarkCheck(b *testing.B) {
	e := newInspectEnv(b)
	e.site(b, "good.example", nil)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := e.in.Check(ctx, "good.example"); len(r.Problems) != 0 {
			b.Fatalf("Check = %+v", r.Problems)
		}
	}
}
