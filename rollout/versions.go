package rollout

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// The policy versions tlsrpt publishes (docs/publishing.md, "What a
// promotion does"). A version is a policy with its id; publishing it is two
// steps in a fixed order, the policy file first and then the _mta-sts TXT
// record (a record pointing at a file that is not served yet is a
// misconfiguration), and verification compares what DNS and HTTPS serve
// with the version until both steps are done.

// Version kinds: why a version was made.
const (
	KindPromote  = "promote"  // testing → enforce
	KindRollback = "rollback" // back to testing with a new id
	KindRetire   = "retire"   // mode none, the way out (RFC 8461 §8.3)
	KindMXMove   = "mx-move"  // the same mode with a new mx list
	KindRamp     = "ramp"     // enforce → enforce with another max_age (the ramp)
)

// Publishing step names, in the order they are done.
const (
	StepPolicy = "policy" // the policy file at https://mta-sts.<domain>/.well-known/mta-sts.txt
	StepRecord = "record" // the _mta-sts.<domain> TXT record carrying the id
)

// Step states.
const (
	// StatePending: not live yet (not published, or caches still answer
	// the old state).
	StatePending = "pending"
	// StateDone: the live state equals the version.
	StateDone = "done"
	// StateDrifted: the live state differs from the version in a way
	// propagation does not explain: it was live and changed since, or it
	// carries a value tlsrpt never published.
	StateDrifted = "drifted"
)

// Step is one publishing step of a version as the last verification saw
// it, with the fix for a step that is not done.
type Step struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Expected is what verification compares the live state with: the version
// being published and what came before it.
type Expected struct {
	Domain string
	Policy Policy
	ID     string
	// PreviousID is the id of the version before; seeing it is
	// propagation, not drift. Empty for a domain's first version: then
	// any other id is the one published before tlsrpt.
	PreviousID string
	// Verified says the version was seen fully live once: any difference
	// from now on is drift.
	Verified bool
	// Known are the ids of every earlier version tlsrpt published: a
	// record carrying one of them is tlsrpt's own older record (not
	// pushed again yet, or put back by a restore), never "someone
	// changed it".
	Known []string
}

// SamePolicy reports whether a and b publish the same policy: mode,
// max_age and the mx patterns as a set, case-insensitively.
func SamePolicy(a, b Policy) bool {
	if a.Mode != b.Mode || a.MaxAge != b.MaxAge {
		return false
	}
	norm := func(mx []string) []string {
		out := make([]string, 0, len(mx))
		for _, m := range mx {
			out = append(out, strings.ToLower(strings.TrimSuffix(m, ".")))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a.MX), norm(b.MX))
}

// VerifySteps compares a live check with the expected version and returns
// the policy step and the record step, in publishing order.
func VerifySteps(e Expected, res *CheckResult) []Step {
	pol, rec := verifyPolicy(e, res), verifyRecord(e, res)
	if pol.State != StateDone && rec.State != StateDone {
		// The record must never name a policy that is not served: no
		// advice to set it while the file is not live.
		rec.Fix = "none yet: the TXT record follows once the policy file is live (step policy); setting it first would name a policy that is not served"
	}
	return []Step{pol, rec}
}

func verifyPolicy(e Expected, res *CheckResult) Step {
	s := Step{Name: StepPolicy}
	pc := res.Policy
	url := PolicyURL(e.Domain)
	live, ok := pc.Policy()
	switch {
	case ok && SamePolicy(live, e.Policy):
		s.State = StateDone
		s.Detail = fmt.Sprintf("%s serves mode %s, max_age %d", url, live.Mode, live.MaxAge)
		return s
	case ok:
		s.Detail = fmt.Sprintf("%s serves mode %s, max_age %d, mx %s; the version has mode %s, max_age %d, mx %s",
			url, live.Mode, live.MaxAge, strings.Join(live.MX, " "), e.Policy.Mode, e.Policy.MaxAge, strings.Join(e.Policy.MX, " "))
	case pc.Error != "":
		s.Detail = url + ": " + pc.Error
	default:
		s.Detail = url + ": no valid policy served"
	}
	host := "mta-sts." + e.Domain
	if pc.Address != "" {
		// Where the fetch went: a host other than the intended one is
		// the first thing to rule out.
		s.Detail += " (answered by " + pc.Address + ")"
		s.Fix = "make the host at " + pc.Address + " (where " + host + " points) serve this version's file at " + url +
			" (text/plain, status 200, no redirect, a Web PKI certificate for " + host + "), or point " + host + " at the host that does"
	} else {
		s.Fix = host + " could not be reached (DNS or the connection failed): point it (A/AAAA or CNAME) at the host that serves this version's file, " +
			"then check " + url + " answers 200 text/plain"
	}
	if e.Verified {
		s.State = StateDrifted
		s.Fix = "the policy file changed after it was live: " + s.Fix + "; if another tool edits it, stop it or make a new version here"
	} else {
		s.State = StatePending
	}
	return s
}

func verifyRecord(e Expected, res *CheckResult) Step {
	s := Step{Name: StepRecord}
	name := "_mta-sts." + e.Domain
	want := Record{ID: e.ID}.String()
	rc := res.Record
	switch {
	case rc.Valid && rc.ID == e.ID:
		s.State = StateDone
		s.Detail = fmt.Sprintf("%s TXT carries id %s", name, rc.ID)
		return s
	case rc.Valid && !e.Verified && (rc.ID == e.PreviousID || e.PreviousID == ""):
		// The old record, still cached or not replaced yet. With no
		// version before, any id is the one published before tlsrpt.
		s.State = StatePending
		s.Detail = fmt.Sprintf("%s TXT still carries the previous id %s", name, rc.ID)
		s.Fix = fmt.Sprintf("set the TXT record to %q; resolvers answer the old value until its TTL runs out", want)
		return s
	case rc.Valid && slices.Contains(e.Known, rc.ID):
		// An id tlsrpt published itself: an older version of its own.
		s.State = StatePending
		if e.Verified {
			s.State = StateDrifted
		}
		s.Detail = fmt.Sprintf("%s TXT carries id %s of an earlier version tlsrpt published, not this version's (%s)", name, rc.ID, e.ID)
		s.Fix = fmt.Sprintf("push the record again (the domain page's \"Push the record again\", or tlsrpt status %s --push); by hand: set it to %q", e.Domain, want)
		return s
	case rc.Valid:
		s.State = StateDrifted
		s.Detail = fmt.Sprintf("%s TXT carries id %s, which is not the id of this version (%s)", name, rc.ID, e.ID)
		s.Fix = fmt.Sprintf("set the TXT record back to %q (someone or something changed it), or make a new version here", want)
		return s
	case len(rc.Found) > 1:
		s.Detail = fmt.Sprintf("%s has %d v=STSv1 records: senders ignore them all", name, len(rc.Found))
	case rc.Error != "":
		s.Detail = name + ": " + rc.Error
	default:
		s.Detail = name + ": no v=STSv1 TXT record"
	}
	s.Fix = fmt.Sprintf("publish exactly one TXT record at %s with the value %q", name, want)
	if e.Verified {
		s.State = StateDrifted
	} else {
		s.State = StatePending
	}
	return s
}

// StepsDone reports whether every step is done.
func StepsDone(steps []Step) bool {
	if len(steps) == 0 {
		return false
	}
	for _, s := range steps {
		if s.State != StateDone {
			return false
		}
	}
	return true
}

// StepState returns the state of the named step, "" when it is missing.
func StepState(steps []Step, name string) string {
	for _, s := range steps {
		if s.Name == name {
			return s.State
		}
	}
	return ""
}

// NextID returns the id for a version made at t: NewID(t), moved on by a
// second while it equals one of taken (the previous version's id, the id
// live in DNS), so a new version never reuses an id.
func NextID(t time.Time, taken ...string) string {
	id := NewID(t)
	for i := 0; i < 1000 && slices.Contains(taken, id); i++ {
		t = t.Add(time.Second)
		id = NewID(t)
	}
	return id
}

// SafeAfter returns when a change that depends on senders having dropped
// the previous policy becomes safe: from the moment the new version is
// live, senders may hold the old policy for up to its max_age (RFC 8461
// §5.1). It is when a retired domain's records may be removed, and when
// the MX records may change after an mx move.
func SafeAfter(live time.Time, prevMaxAge int64) time.Time {
	return live.Add(time.Duration(prevMaxAge) * time.Second)
}
