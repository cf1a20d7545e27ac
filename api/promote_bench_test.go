package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// BenchmarkHostedPolicy is one sender fetching the hosted policy through
// the whole router (security headers, the Host lookup, one indexed query
// of policy_versions) against the real PostgreSQL, among 1,000 hosted
// domains.
func BenchmarkHostedPolicy(b *testing.B) {
	d := dbtest.New(b)
	ctx := context.Background()
	for i := range 1000 {
		v, err := d.AddPolicyVersion(ctx, db.PolicyVersion{Domain: "d" + itoa(i) + ".example", Kind: rollout.KindPromote,
			Policy: rollout.Policy{Mode: rollout.ModeEnforce, MX: []string{"mx1.example.net", "*.example.org"}, MaxAge: 604800},
			ID:     "20261130T120000Z", CreatedBy: "bench", PolicyMethod: rollout.PolicyHosted, RecordMethod: rollout.RecordManual})
		if err != nil {
			b.Fatal(err)
		}
		if err := d.MarkPolicyPublished(ctx, v.Seq, testNow); err != nil {
			b.Fatal(err)
		}
	}
	s, err := New(Config{DB: d})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/.well-known/mta-sts.txt", nil)
		req.Host = "mta-sts.d" + itoa(i%1000) + ".example"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
		i++
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var buf [20]byte
	n := len(buf)
	for i > 0 {
		n--
		buf[n] = byte('0' + i%10)
		i /= 10
	}
	return string(buf[n:])
}
