package rollout

import (
	"cmp"
	"slices"
	"time"
)

// Evidence is what the verdict rests on, in numbers a person can check
// against the reports: the windows, the totals and their breakdowns per
// day, result type, MX and reporter, an example failure per result type
// and MX, and the reports that were left out and why.
type Evidence struct {
	At time.Time `json:"at"`
	// Day is day(At): the windows end before it.
	Day        time.Time     `json:"day"`
	Windows    Windows       `json:"windows"`
	Thresholds Thresholds    `json:"thresholds"`
	Policy     CurrentPolicy `json:"policy"`

	// TestingSince is the first day of the current run of days in testing
	// (nil when there is none) and SinceFrom says how it was found:
	// "policy-string" or "first-report" (no report carried a
	// policy-string, the live policy is in testing).
	TestingSince *time.Time `json:"testing_since"`
	SinceFrom    string     `json:"since_from,omitempty"`
	ObservedDays int        `json:"observed_days"`
	// ReportDays are the days of the evaluation window in the testing
	// period that had trusted reports.
	ReportDays int `json:"report_days"`

	// Totals of the evaluation window.
	Reporters int   `json:"reporters"`
	Reports   int64 `json:"reports"`
	Sessions  int64 `json:"sessions"`
	Failures  int64 `json:"failures"`
	// Recent are the totals of the recent window with sender-side
	// failures left out (SenderSideFailures says how many).
	Recent             Totals `json:"recent"`
	SenderSideFailures int64  `json:"sender_side_failures"`

	PerDay        []DayEvidence      `json:"per_day"`
	PerResultType []ResultTypeTally  `json:"per_result_type"`
	PerMX         []MXTally          `json:"per_mx"`
	PerReporter   []ReporterEvidence `json:"per_reporter"`
	Examples      []FailureExample   `json:"examples"`
	// Excluded lists the untrusted reports of the span, never counted.
	Excluded        []ExcludedCount `json:"excluded"`
	ExcludedReports int64           `json:"excluded_reports"`
	// SendersTruncated says the sender-side rule could not apply: too
	// many sending ranges failed.
	SendersTruncated bool `json:"senders_truncated,omitempty"`
	// ProposalError says why there is no proposal, if so.
	ProposalError string `json:"proposal_error,omitempty"`
}

// Windows are the day ranges the rules read; see docs/verdict.md.
type Windows struct {
	// Evaluation: observation, reporters, sessions, mx names.
	Evaluation Window `json:"evaluation"`
	// Recent: failure rate, TLS failures, policy host failures.
	Recent Window `json:"recent"`
	// Trend and TrendBase: the rising rule; RegressionBase: the watch.
	Trend          Window `json:"trend"`
	TrendBase      Window `json:"trend_base"`
	RegressionBase Window `json:"regression_base"`
	// Span is every day the facts cover (sender-side analysis, excluded).
	Span Window `json:"span"`
}

// Totals are sessions and failures over a window and the failure rate.
type Totals struct {
	Sessions int64   `json:"sessions"`
	Failures int64   `json:"failures"`
	Rate     float64 `json:"rate"`
}

// DayEvidence is one day of the span.
type DayEvidence struct {
	Day        time.Time `json:"day"`
	Reports    int64     `json:"reports"`
	Reporters  int       `json:"reporters"`
	Sessions   int64     `json:"sessions"`
	Failures   int64     `json:"failures"`
	SenderSide int64     `json:"sender_side,omitempty"`
	Rate       float64   `json:"rate"`
	Modes      []Mode    `json:"modes,omitempty"`
}

// FailureTally is failed sessions of one result type at one MX in a window.
type FailureTally struct {
	ResultType string `json:"result_type"`
	MX         string `json:"mx,omitempty"`
	Failures   int64  `json:"failures"`
}

// ResultTypeTally is failed sessions of one result type, over the
// evaluation window and the recent window.
type ResultTypeTally struct {
	ResultType     string `json:"result_type"`
	Failures       int64  `json:"failures"`
	RecentFailures int64  `json:"recent_failures"`
}

// MXTally is failed sessions at one receiving MX (as the failure details
// name it), over the evaluation and the recent window, and whether the
// policy's mx list matches it.
type MXTally struct {
	MX             string `json:"mx"`
	Failures       int64  `json:"failures"`
	RecentFailures int64  `json:"recent_failures"`
	InPolicy       bool   `json:"in_policy"`
}

// ReporterEvidence is one reporting organisation over the evaluation
// window.
type ReporterEvidence struct {
	Organization string `json:"organization"`
	Reports      int64  `json:"reports"`
	Days         int    `json:"days"`
	Sessions     int64  `json:"sessions"`
	Failures     int64  `json:"failures"`
}

// evaluation holds the facts, the thresholds and what is derived from
// them once: the windows, the sender-side exclusion and the evidence.
type evaluation struct {
	f      Facts
	t      Thresholds
	day    time.Time
	sender *senderSide
	ev     Evidence
}

func newEvaluation(f Facts, t Thresholds) *evaluation {
	day := UTCDay(f.At)
	span := t.SpanDays()
	e := &evaluation{f: f, t: t, day: day}
	e.ev = Evidence{At: f.At, Day: day, Thresholds: t, Policy: f.Policy,
		Windows: Windows{
			Evaluation:     daysBefore(day, t.MinDays, 0),
			Recent:         daysBefore(day, t.RecentDays, 0),
			Trend:          daysBefore(day, t.RisingDays, 0),
			TrendBase:      daysBefore(day, t.RisingDays+t.RisingBaseDays, t.RisingDays),
			RegressionBase: daysBefore(day, t.RisingDays+t.RegressionBaseDays, t.RisingDays),
			Span:           daysBefore(day, span, 0),
		},
		SendersTruncated: f.SendersTruncated,
	}
	e.sender = findSenderSide(f, e.ev.Windows.Span)
	e.observe()
	e.count()
	return e
}

// observe finds the start of the testing period and the report days.
func (e *evaluation) observe() {
	since, from := testingSince(e.f, e.day)
	if since.IsZero() {
		return
	}
	e.ev.TestingSince, e.ev.SinceFrom = &since, from
	e.ev.ObservedDays = int(e.day.Sub(since).Hours() / 24)
	w := e.ev.Windows.Evaluation
	for _, d := range e.f.Days {
		if w.Contains(d.Day) && !d.Day.Before(since) && d.Reports > 0 {
			e.ev.ReportDays++
		}
	}
}

// testingSince walks the mode history back from day: days whose
// policy-strings show only testing extend the run, days without a
// policy-string neither extend nor break it, any other mode ends it. When
// no report of the history carries a policy-string and the live policy is
// in testing, the run starts at the first day with reports.
func testingSince(f Facts, day time.Time) (time.Time, string) {
	var since time.Time
	anyMode := false
	for i := len(f.ModeHistory) - 1; i >= 0; i-- {
		m := f.ModeHistory[i]
		if !m.Day.Before(day) || len(m.Modes) == 0 {
			continue
		}
		anyMode = true
		if slices.ContainsFunc(m.Modes, func(x Mode) bool { return x != ModeTesting }) {
			break
		}
		since = m.Day
	}
	if !since.IsZero() {
		return since, "policy-string"
	}
	if anyMode || f.Policy.Mode != ModeTesting || f.Policy.Source != PolicySourceLive {
		return time.Time{}, ""
	}
	for _, m := range f.ModeHistory {
		if m.Day.Before(day) {
			return m.Day, "first-report"
		}
	}
	return time.Time{}, ""
}

// count fills the totals and breakdowns of the evidence.
func (e *evaluation) count() {
	ev := &e.ev
	w, recent := ev.Windows.Evaluation, ev.Windows.Recent
	reporters := map[time.Time]map[string]bool{}
	perOrg := map[string]*ReporterEvidence{}
	for _, r := range e.f.Reporters {
		if !ev.Windows.Span.Contains(r.Day) {
			continue
		}
		if reporters[r.Day] == nil {
			reporters[r.Day] = map[string]bool{}
		}
		reporters[r.Day][r.Organization] = true
		if !w.Contains(r.Day) {
			continue
		}
		o := perOrg[r.Organization]
		if o == nil {
			o = &ReporterEvidence{Organization: r.Organization}
			perOrg[r.Organization] = o
		}
		o.Reports = satAdd(o.Reports, r.Reports)
		o.Days++
		o.Sessions = satAdd(o.Sessions, satAdd(r.Successes, r.Failures))
		o.Failures = satAdd(o.Failures, r.Failures)
	}
	for _, o := range perOrg {
		ev.PerReporter = append(ev.PerReporter, *o)
	}
	slices.SortFunc(ev.PerReporter, func(a, b ReporterEvidence) int {
		return cmp.Or(cmp.Compare(b.Sessions, a.Sessions), cmp.Compare(a.Organization, b.Organization))
	})
	ev.Reporters = len(ev.PerReporter)
	modes := map[time.Time][]Mode{}
	for _, m := range e.f.ModeHistory {
		modes[m.Day] = m.Modes
	}
	for _, d := range e.f.Days {
		if !ev.Windows.Span.Contains(d.Day) {
			continue
		}
		x := e.excludedOn(d.Day)
		de := DayEvidence{Day: d.Day, Reports: d.Reports, Reporters: len(reporters[d.Day]),
			Sessions: d.Sessions(), Failures: d.Failures, SenderSide: x, Modes: modes[d.Day]}
		de.Rate = rate(de.Failures-x, de.Sessions-x)
		ev.PerDay = append(ev.PerDay, de)
		if w.Contains(d.Day) {
			ev.Reports = satAdd(ev.Reports, d.Reports)
			ev.Sessions = satAdd(ev.Sessions, d.Sessions())
			ev.Failures = satAdd(ev.Failures, d.Failures)
		}
		if recent.Contains(d.Day) {
			ev.SenderSideFailures = satAdd(ev.SenderSideFailures, x)
		}
	}
	slices.SortFunc(ev.PerDay, func(a, b DayEvidence) int { return a.Day.Compare(b.Day) })
	ev.Recent = e.totals(recent)

	types := map[string]*ResultTypeTally{}
	mxs := map[string]*MXTally{}
	pol := Policy{MX: e.f.Policy.MX}
	for _, c := range e.f.Failures {
		if !w.Contains(c.Day) {
			continue
		}
		rt := types[c.ResultType]
		if rt == nil {
			rt = &ResultTypeTally{ResultType: c.ResultType}
			types[c.ResultType] = rt
		}
		rt.Failures = satAdd(rt.Failures, c.Failures)
		if recent.Contains(c.Day) {
			rt.RecentFailures = satAdd(rt.RecentFailures, c.Failures)
		}
		if c.MX == "" {
			continue
		}
		m := mxs[c.MX]
		if m == nil {
			_, in := pol.Matches(c.MX)
			m = &MXTally{MX: c.MX, InPolicy: in}
			mxs[c.MX] = m
		}
		m.Failures = satAdd(m.Failures, c.Failures)
		if recent.Contains(c.Day) {
			m.RecentFailures = satAdd(m.RecentFailures, c.Failures)
		}
	}
	for _, rt := range types {
		ev.PerResultType = append(ev.PerResultType, *rt)
	}
	slices.SortFunc(ev.PerResultType, func(a, b ResultTypeTally) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.ResultType, b.ResultType))
	})
	for _, m := range mxs {
		ev.PerMX = append(ev.PerMX, *m)
	}
	slices.SortFunc(ev.PerMX, func(a, b MXTally) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.MX, b.MX))
	})
	ev.Examples = e.f.Examples
	for _, x := range e.f.Excluded {
		ev.Excluded = append(ev.Excluded, x)
		ev.ExcludedReports = satAdd(ev.ExcludedReports, x.Reports)
	}
}

// evidence returns the evidence with nil lists made empty, so the JSON
// shows [] rather than null.
func (e *evaluation) evidence() Evidence {
	ev := e.ev
	ev.PerDay = orEmpty(ev.PerDay)
	ev.PerResultType = orEmpty(ev.PerResultType)
	ev.PerMX = orEmpty(ev.PerMX)
	ev.PerReporter = orEmpty(ev.PerReporter)
	ev.Examples = orEmpty(ev.Examples)
	ev.Excluded = orEmpty(ev.Excluded)
	if ev.Policy.MX == nil {
		ev.Policy.MX = []string{}
	}
	return ev
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// totals sums the days of a window, sender-side failures left out of both
// the failures and the sessions.
func (e *evaluation) totals(w Window) Totals {
	var t Totals
	for _, d := range e.f.Days {
		if !w.Contains(d.Day) {
			continue
		}
		x := e.excludedOn(d.Day)
		t.Sessions = satAdd(t.Sessions, d.Sessions()-x)
		t.Failures = satAdd(t.Failures, d.Failures-x)
	}
	t.Rate = rate(t.Failures, t.Sessions)
	return t
}

func rate(failures, sessions int64) float64 {
	if sessions <= 0 || failures <= 0 {
		return 0
	}
	// Saturated sums can leave failures above sessions; a rate stays a
	// rate.
	return min(float64(failures)/float64(sessions), 1)
}

// tallies sums the failures of a window per result type and MX, only of
// the given types when types is not nil, largest first.
func (e *evaluation) tallies(w Window, types []string) []FailureTally {
	type key struct{ rt, mx string }
	sums := map[key]int64{}
	for _, c := range e.f.Failures {
		if w.Contains(c.Day) && (types == nil || slices.Contains(types, c.ResultType)) && c.Failures > 0 {
			k := key{c.ResultType, c.MX}
			sums[k] = satAdd(sums[k], c.Failures)
		}
	}
	out := make([]FailureTally, 0, len(sums))
	for k, n := range sums {
		out = append(out, FailureTally{ResultType: k.rt, MX: k.mx, Failures: n})
	}
	slices.SortFunc(out, func(a, b FailureTally) int {
		return cmp.Or(cmp.Compare(b.Failures, a.Failures), cmp.Compare(a.ResultType, b.ResultType), cmp.Compare(a.MX, b.MX))
	})
	return out
}

// example returns the example failure of the window (of the given types
// when types is not nil) from the newest day, the largest of that day.
func (e *evaluation) example(w Window, types []string) *FailureExample {
	var best *FailureExample
	for i := range e.f.Examples {
		x := &e.f.Examples[i]
		if !w.Contains(x.Day) || (types != nil && !slices.Contains(types, x.ResultType)) {
			continue
		}
		if best == nil || x.Day.After(best.Day) || x.Day.Equal(best.Day) && x.FailedSessionCount > best.FailedSessionCount {
			best = x
		}
	}
	if best == nil {
		return nil
	}
	c := *best
	return &c
}

// organizations lists the reporting organisations of a window.
func (e *evaluation) organizations(w Window) []string {
	var out []string
	for _, r := range e.f.Reporters {
		if w.Contains(r.Day) && !slices.Contains(out, r.Organization) {
			out = append(out, r.Organization)
		}
	}
	slices.Sort(out)
	return out
}
