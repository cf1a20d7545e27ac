package rollout

import (
	"strings"
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

// TestVerifyStepWords (review item 7): no advice to set the TXT record
// while the policy file is not live; an id of an earlier version tlsrpt
// published is named so, never "someone changed it"; a policy fetch that
// reached no host says so, one that reached a host names its address.
func TestVerifyStepWords(t *testing.T) {
	pol := Policy{Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 604800}
	e := Expected{Domain: "example.com", Policy: pol, ID: "20261120T120000Z", PreviousID: "20261101T000000Z",
		Known: []string{"20261101T000000Z", "20261001T000000Z"}}
	// DNS down: neither step done.
	res := &CheckResult{Domain: "example.com", Policy: PolicyCheck{Error: "lookup mta-sts.example.com: no such host"},
		Record: RecordCheck{Error: "lookup _mta-sts.example.com: server misbehaving"}}
	steps := VerifySteps(e, res)
	if strings.Contains(steps[1].Fix, "set the TXT record") || strings.Contains(steps[1].Fix, "publish exactly one TXT") {
		t.Errorf("record fix while the policy file is not live = %q, want no advice to set it", steps[1].Fix)
	}
	if !strings.Contains(steps[0].Fix, "could not be reached") || strings.Contains(steps[0].Fix, "serve exactly this file") {
		t.Errorf("policy fix with no host reached = %q, want it to say the host could not be reached", steps[0].Fix)
	}
	// Served by another host, the wrong policy.
	res.Policy = PolicyCheck{Valid: true, Mode: ModeTesting, MX: pol.MX, MaxAge: 86400, Address: "192.0.2.7:443"}
	steps = VerifySteps(e, res)
	if !strings.Contains(steps[0].Detail, "192.0.2.7:443") || !strings.Contains(steps[0].Fix, "192.0.2.7:443") {
		t.Errorf("policy step served elsewhere = %+v, want the address in the detail and the fix", steps[0])
	}
	// The file live; the record carries an older id of tlsrpt's after
	// the version was verified.
	res.Policy = PolicyCheck{Valid: true, Mode: pol.Mode, MX: pol.MX, MaxAge: pol.MaxAge}
	res.Record = RecordCheck{Valid: true, ID: "20261001T000000Z"}
	e.Verified = true
	steps = VerifySteps(e, res)
	if steps[1].State != StateDrifted || strings.Contains(steps[1].Fix, "someone") || !strings.Contains(steps[1].Detail, "earlier version tlsrpt published") {
		t.Errorf("record with an earlier id of tlsrpt's = %+v, want drifted, named as tlsrpt's own", steps[1])
	}
	// An id tlsrpt never published is someone else's change.
	res.Record = RecordCheck{Valid: true, ID: "handmade1"}
	if steps = VerifySteps(e, res); steps[1].State != StateDrifted || !strings.Contains(steps[1].Fix, "someone") {
		t.Errorf("record with a foreign id = %+v, want drifted, changed by someone", steps[1])
	}
}
