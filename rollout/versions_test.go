package rollout

import (
	"testing"
	"time"
)

func TestVerifySteps(t *testing.T) {
	enforce := Policy{Mode: ModeEnforce, MX: []string{"mx1.example.com", "*.example.net"}, MaxAge: 604800}
	live := func(p Policy, id string) *CheckResult {
		res := &CheckResult{Domain: "example.com"}
		if id != "" {
			res.Record = RecordCheck{Valid: true, ID: id, Found: []string{Record{ID: id}.String()}}
		}
		if p.Mode != "" {
			res.Policy = PolicyCheck{Valid: true, Mode: p.Mode, MX: p.MX, MaxAge: p.MaxAge}
		} else {
			res.Policy = PolicyCheck{Error: "connection refused"}
		}
		return res
	}
	testing1 := Policy{Mode: ModeTesting, MX: enforce.MX, MaxAge: 86400}
	reordered := Policy{Mode: ModeEnforce, MX: []string{"*.EXAMPLE.net", "mx1.example.com."}, MaxAge: 604800}
	for _, tc := range []struct {
		name           string
		verified       bool
		res            *CheckResult
		policy, record string
	}{
		{"nothing live yet", false, live(testing1, "old"), StatePending, StatePending},
		{"policy live, old id cached", false, live(enforce, "old"), StateDone, StatePending},
		{"both live", false, live(reordered, "new"), StateDone, StateDone},
		{"an id nobody published", false, live(enforce, "other"), StateDone, StateDrifted},
		{"record removed before verification", false, live(enforce, ""), StateDone, StatePending},
		{"policy host down before verification", false, live(Policy{}, "new"), StatePending, StateDone},
		{"after verification the old id is drift", true, live(enforce, "old"), StateDone, StateDrifted},
		{"after verification a changed file is drift", true, live(testing1, "new"), StateDrifted, StateDone},
		{"after verification a missing record is drift", true, live(enforce, ""), StateDone, StateDrifted},
	} {
		steps := VerifySteps(Expected{Domain: "example.com", Policy: enforce, ID: "new", PreviousID: "old", Verified: tc.verified}, tc.res)
		if len(steps) != 2 || steps[0].Name != StepPolicy || steps[1].Name != StepRecord {
			t.Fatalf("%s: VerifySteps = %+v, want the policy step then the record step", tc.name, steps)
		}
		if steps[0].State != tc.policy || steps[1].State != tc.record {
			t.Errorf("%s: states = %s/%s, want %s/%s (%+v)", tc.name, steps[0].State, steps[1].State, tc.policy, tc.record, steps)
		}
		for _, s := range steps {
			if s.State != StateDone && s.Fix == "" {
				t.Errorf("%s: step %s is %s without a fix", tc.name, s.Name, s.State)
			}
		}
		if got := StepsDone(steps); got != (tc.policy == StateDone && tc.record == StateDone) {
			t.Errorf("%s: StepsDone = %v", tc.name, got)
		}
	}
	if StepsDone(nil) {
		t.Error("StepsDone(nil) = true, want false: nothing was verified")
	}
}

func TestNextID(t *testing.T) {
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	if got := NextID(at); got != "20260701T120000Z" {
		t.Errorf("NextID = %s", got)
	}
	if got := NextID(at, "20260701T120000Z", "20260701T120001Z"); got != "20260701T120002Z" {
		t.Errorf("NextID past two taken ids = %s, want 20260701T120002Z", got)
	}
}

func TestSafeAfter(t *testing.T) {
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	if got, want := SafeAfter(at, 604800), at.AddDate(0, 0, 7); !got.Equal(want) {
		t.Errorf("SafeAfter = %v, want %v", got, want)
	}
}
