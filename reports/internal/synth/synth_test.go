package synth_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/reports/internal/synth"
)

// TestReport checks that every generated shape is a valid report of about
// the size asked for.
func TestReport(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range synth.Senders {
		for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
			js := synth.Report(rng, s, size)
			if d := max(size/10, 300); len(js) < size-d || len(js) > size+d {
				t.Errorf("Report(%v, %d) = %d bytes", s, size, len(js))
			}
			r, err := reports.Parse(bytes.NewReader(js))
			if err != nil {
				t.Fatalf("Report(%v, %d) does not parse: %v", s, size, err)
			}
			if len(r.Policies) == 0 || len(r.Policies[0].FailureDetails) == 0 {
				t.Errorf("Report(%v, %d) = %+v, want failure details", s, size, r)
			}
		}
	}
}
