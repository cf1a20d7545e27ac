package rollout

import (
	"fmt"
	"net/netip"
	"time"
)

// senderSide is the one sender whose failures are left out of the rate
// rules: one reporting organisation, one sending range.
type senderSide struct {
	org           string
	rng           netip.Prefix
	perDay        map[time.Time]int64 // failures left out per day
	total         int64
	others        int   // other reporters with successful sessions
	otherSessions int64 // their sessions
}

// findSenderSide applies the sender-side rule of docs/verdict.md over the span: every failure detail of the span comes from one
// sending range (SenderRange) of one reporter, no other reporter reported a
// failed session, and at least one other reporter reported successful
// sessions. Then that reporter's failures, up to what its details account
// for each day, are left out of the rate rules. Details without a sending
// address, or more ranges than the store returned, rule it out.
func findSenderSide(f Facts, span Window) *senderSide {
	if f.SendersTruncated {
		return nil
	}
	var s *senderSide
	for _, g := range f.Senders {
		if !span.Contains(g.Day) || g.Failures <= 0 {
			continue
		}
		if !g.Range.IsValid() {
			return nil
		}
		if s == nil {
			s = &senderSide{org: g.Organization, rng: g.Range, perDay: map[time.Time]int64{}}
		} else if s.org != g.Organization || s.rng != g.Range {
			return nil
		}
		s.perDay[g.Day] = satAdd(s.perDay[g.Day], g.Failures)
	}
	if s == nil {
		return nil
	}
	orgFailures := map[time.Time]int64{}
	others := map[string]bool{}
	for _, r := range f.Reporters {
		if !span.Contains(r.Day) {
			continue
		}
		if r.Organization == s.org {
			orgFailures[r.Day] = satAdd(orgFailures[r.Day], r.Failures)
			continue
		}
		if r.Failures > 0 {
			return nil
		}
		if r.Successes > 0 {
			others[r.Organization] = true
			s.otherSessions = satAdd(s.otherSessions, r.Successes)
		}
	}
	s.others = len(others)
	if s.others == 0 {
		return nil
	}
	// The summary totals are what the rates count; the details may say
	// more (Mail.ru) or less than them.
	for d, n := range s.perDay {
		s.perDay[d] = min(n, orgFailures[d])
		s.total = satAdd(s.total, s.perDay[d])
	}
	if s.total == 0 {
		return nil
	}
	return s
}

// excludedOn returns the sender-side failures left out on day d.
func (e *evaluation) excludedOn(d time.Time) int64 {
	if e.sender == nil {
		return 0
	}
	return e.sender.perDay[d]
}

// senderWarning returns the sender-side warning, if the rule applies.
func (e *evaluation) senderWarning() []Finding {
	s := e.sender
	if s == nil {
		return nil
	}
	w := e.ev.Windows.Span
	bits := s.rng.Bits()
	family := "IPv6"
	if s.rng.Addr().Is4() {
		family = "IPv4"
	}
	return []Finding{{Code: WarningSenderSide, Source: SourceReports, Window: &w,
		Message: fmt.Sprintf("%d failed sessions in %s come only from %s (an %s /%d) as reported by %s, while %d other reporter(s) saw %d sessions succeed: a problem of that sender, listed but not blocking and left out of the failure rates",
			s.total, w, s.rng, family, bits, s.org, s.others, s.otherSessions),
		Failures: ptr(s.total), Organization: s.org, Range: s.rng.String(), RangeBits: ptr(bits),
		Counts: e.tallies(w, nil), Example: e.example(w, nil)}}
}
