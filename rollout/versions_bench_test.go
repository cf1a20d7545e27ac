package rollout

import "testing"

// BenchmarkVerifySteps compares one live check with a version: what every
// verification poll adds to the check itself.
func BenchmarkVerifySteps(b *testing.B) {
	e := Expected{Domain: "example.com", ID: "20261130T120000Z", PreviousID: "20261101T000000Z",
		Policy: Policy{Mode: ModeEnforce, MX: []string{"mx1.example.com", "mx2.example.com", "*.example.net"}, MaxAge: 604800}}
	res := &CheckResult{Domain: "example.com",
		Record: RecordCheck{Valid: true, ID: "20261130T120000Z"},
		Policy: PolicyCheck{Valid: true, Mode: ModeEnforce, MX: []string{"*.EXAMPLE.net", "mx2.example.com", "mx1.example.com"}, MaxAge: 604800}}
	b.ReportAllocs()
	for b.Loop() {
		if s := VerifySteps(e, res); !StepsDone(s) {
			b.Fatal("not done")
		}
	}
}
