package rollout

import (
	"encoding/json"
	"net/netip"
	"testing"
)

// FuzzEvaluate builds consistent facts from the fuzzer's bytes (per day and
// reporter totals, failure details with result types, MX hosts and sending
// addresses, a mode history) and checks what must hold for every input:
// no panic, ready exactly when a domain in testing has no blocker, rates
// between 0 and 1, and a verdict that encodes as JSON.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{0}, uint8(0), uint8(14))
	f.Add([]byte("clean three weeks of reports from two reporters"), uint8(0), uint8(21))
	f.Add([]byte{1, 200, 3, 7, 9, 250, 4, 4, 4, 1, 0, 0, 99, 17, 23}, uint8(1), uint8(30))
	f.Add([]byte{2, 255, 255, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(2), uint8(5))
	types := append(append([]string{"dnssec-invalid", "unknown-type"}, TLSFailureTypes...), PolicyHostFailureTypes...)
	mxs := []string{"", "mx1.example.com", "a.mx.example.net", "mx3.example.org"}
	orgs := []string{"google.com", "microsoft.com", "mail.ru"}
	modes := []Mode{ModeTesting, ModeEnforce, ModeNone, ""}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, days uint8) {
		next := func() int {
			if len(data) == 0 {
				return 0
			}
			b := data[0]
			data = data[1:]
			return int(b)
		}
		fa := cleanFacts(int(days%40), orgs[:1+next()%3], int64(next()*next()))
		fa.Policy.Mode = modes[int(mode)%len(modes)]
		for len(data) > 0 {
			ago, org := 1+next()%25, orgs[next()%3]
			ip := ""
			if b := next(); b%3 != 0 {
				ip = netip.AddrFrom4([4]byte{byte(b), byte(next()), 1, byte(next())}).String()
			}
			fail(&fa, ago, org, types[next()%len(types)], mxs[next()%len(mxs)], ip, int64(1+next()))
		}
		for i := range fa.ModeHistory {
			if fa.ModeHistory[i].Day.Day()%5 == int(mode)%5 {
				fa.ModeHistory[i].Modes = []Mode{modes[i%len(modes)]}
			}
		}
		v := Evaluate(fa, DefaultThresholds())
		if v.Ready != (v.Mode == ModeTesting && len(v.Blockers) == 0) {
			t.Errorf("ready = %v with mode %q and blockers %v", v.Ready, v.Mode, codes(v.Blockers))
		}
		for _, r := range []float64{v.Evidence.Recent.Rate} {
			if r < 0 || r > 1 {
				t.Errorf("recent rate %g outside 0..1", r)
			}
		}
		for _, d := range v.Evidence.PerDay {
			if d.Rate < 0 || d.Rate > 1 || d.SenderSide > d.Failures {
				t.Errorf("day %+v: rate outside 0..1 or more left out than failed", d)
			}
		}
		if _, err := json.Marshal(v); err != nil {
			t.Errorf("encoding the verdict: %v", err)
		}
	})
}
