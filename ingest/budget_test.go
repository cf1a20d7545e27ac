package ingest

import (
	"errors"
	"testing"

	"github.com/tlsrpt/tlsrpt/reports"
)

func TestParseCost(t *testing.T) {
	lim := reports.Limits{MaxReportBytes: 64 << 20}
	tests := []struct {
		n, want int64
	}{
		{0, 0},
		{1000, 1000 + 1000*maxDeflateRatio},
		{10 << 20, 10<<20 + 64<<20}, // capped by the decompressed limit
		{100 << 20, 200 << 20},      // plain JSON larger than the limit
	}
	for _, tt := range tests {
		if got := ParseCost(tt.n, lim); got != tt.want {
			t.Errorf("ParseCost(%d) = %d, want %d", tt.n, got, tt.want)
		}
	}
}

// TestReserve: reservations add up to the budget, a shrunk one gives back
// the difference, a released one all of it, and a request over the whole
// budget is charged the budget.
func TestReserve(t *testing.T) {
	b := NewBatcher(&Pipeline{}, nil, BatcherOptions{ParseBytes: 100})
	r1, err := b.Reserve(60)
	if err != nil {
		t.Fatalf("Reserve(60) = %v", err)
	}
	if _, err := b.Reserve(50); !errors.Is(err, ErrRetryLater) {
		t.Fatalf("Reserve(50) with 40 free = %v, want a RetryError", err)
	}
	r1.Shrink(10)
	r2, err := b.Reserve(90)
	if err != nil {
		t.Fatalf("Reserve(90) after Shrink(10) = %v", err)
	}
	r1.Release()
	r1.Release() // twice gives back nothing more
	r2.Release()
	r3, err := b.Reserve(1 << 30)
	if err != nil {
		t.Fatalf("Reserve(over the budget) with all free = %v", err)
	}
	if _, err := b.Reserve(1); err == nil {
		t.Fatal("Reserve(1) with the budget spent = nil, want a RetryError")
	}
	r3.Release()
}
