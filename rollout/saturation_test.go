package rollout

import (
	"encoding/json"
	"math"
	"testing"
)

// TestEvaluateSaturatedFacts: facts at the top of int64 (the store's sums
// saturate there) give totals that stay at math.MaxInt64 instead of
// wrapping negative, rates in [0, 1], and a verdict that encodes to JSON
// (NaN or Inf would not); the failures still block.
func TestEvaluateSaturatedFacts(t *testing.T) {
	const max = math.MaxInt64
	// Half each, so that the helper's own day sums stay below the top.
	f := cleanFacts(20, twoOrgs, max/2)
	fail(&f, 1, "Google Inc.", "certificate-expired", "mx1.example.com", "", max)
	fail(&f, 2, "Microsoft Corporation", "certificate-expired", "mx1.example.com", "198.51.100.7", max)
	v := Evaluate(f, DefaultThresholds())
	if _, err := json.Marshal(v); err != nil {
		t.Fatalf("json.Marshal(verdict) error %v", err)
	}
	ev := v.Evidence
	if ev.Sessions != max || ev.Failures != max || ev.Recent.Sessions != max || ev.Recent.Failures != max {
		t.Errorf("evidence sessions %d, failures %d, recent %+v; want all %d", ev.Sessions, ev.Failures, ev.Recent, int64(max))
	}
	for _, r := range ev.PerReporter {
		if r.Sessions != max || r.Failures < 0 {
			t.Errorf("reporter %+v: want sessions saturated", r)
		}
	}
	for _, d := range ev.PerDay {
		if d.Rate < 0 || d.Rate > 1 || d.Sessions < 0 {
			t.Errorf("day %+v: rate out of [0, 1] or negative sessions", d)
		}
	}
	if ev.Recent.Rate < 0 || ev.Recent.Rate > 1 {
		t.Errorf("recent rate %v out of [0, 1]", ev.Recent.Rate)
	}
	if v.Ready || finding(v.Blockers, BlockerTLSFailures) == nil {
		t.Errorf("Evaluate() ready %v, blockers %v; want the tls-failures blocker", v.Ready, codes(v.Blockers))
	}
	if got := satAdd(max, max); got != max {
		t.Errorf("satAdd(max, max) = %d", got)
	}
	if got := rate(max, 1); got != 1 {
		t.Errorf("rate(max, 1) = %v, want 1", got)
	}
}
