package api

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/ui"
)

// TestSaturatingSums: the API's own additions of store sums stay at
// math.MaxInt64, and its rates stay in [0, 1] and encode to JSON.
func TestSaturatingSums(t *testing.T) {
	const max = math.MaxInt64
	for _, tc := range []struct{ a, b, want int64 }{
		{1, 2, 3}, {max, 1, max}, {max, max, max}, {max - 1, 1, max}, {0, max, max},
	} {
		if got := satAdd(tc.a, tc.b); got != tc.want {
			t.Errorf("satAdd(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	for _, tc := range []struct {
		a, b int64
		want float64
	}{{1, 4, 0.25}, {max, 1, 1}, {5, 0, 0}, {0, 0, 0}, {-1, 5, 0}, {max, max, 1}} {
		got := ratio(tc.a, tc.b)
		if got != tc.want {
			t.Errorf("ratio(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Errorf("json.Marshal(ratio(%d, %d)) error %v", tc.a, tc.b, err)
		}
	}
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	days := []ui.Day{{Day: day, Sessions: max, Failures: max}, {Day: day.AddDate(0, 0, 1), Sessions: max, Failures: 1}}
	if s, f := sumDays(days, 7); s != max || f != max {
		t.Errorf("sumDays() = %d, %d; want both %d", s, f, int64(max))
	}
}
