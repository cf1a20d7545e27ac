package reports_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/internal/torture"
	"github.com/tlsrpt/tlsrpt/reports"
)

var tortureCorpus = []string{filepath.Join("..", "testdata", "corpus"), "/work/shared/corpus/tlsrpt"}

// hangAfter is how long one input may take before the run counts it as a
// hang (with -race on a loaded 2-core machine; the slowest input, a 64 MiB
// bomb, takes well under a second without).
const hangAfter = 60 * time.Second

// reasonShape reduces an error message to its shape: numbers and quoted
// values out, so that the figures count kinds of refusal, not inputs.
var reasonShape = regexp.MustCompile(`"[^"]*"|'[^']*'|[0-9]+|\[[0-9]+\]`)

// saveCrasher writes an input that crashed or hung the parser to the
// seed corpus of target, where `go test` replays it from now on.
func saveCrasher(t *testing.T, target string, data []byte) string {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(dir, fmt.Sprintf("torture-%x", sha256.Sum256(data))[:len(dir)+1+8+16])
	if err := os.WriteFile(name, fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data), 0o644); err != nil {
		t.Fatal(err)
	}
	return name
}

// TestParseTorture sends mutated reports through ParseBytes and mutated
// mails through ReadMessage: no panic, no hang, bounded memory, and every
// refusal wraps a sentinel with a reason. TLSRPT_TORTURE=long sends
// 100,000 of each.
func TestParseTorture(t *testing.T) {
	c, err := torture.LoadCorpus(tortureCorpus...)
	if err != nil {
		t.Fatal(err)
	}
	seed := torture.Seed(t)
	n := torture.Count(400, 100000)
	t.Logf("seed %d (TLSRPT_TORTURE_SEED replays it), %d inputs of each kind from %d samples", seed, n, len(c.Names))
	torture.Bombs() // built before the heap watch: the generator's memory is not the parser's
	runtime.GC()
	m := torture.NewMutator(c, seed)
	lim := reports.DefaultLimits()

	type tally struct{ inputs, accepted, refused int }
	byKind := map[string]*tally{}
	reasons := map[string]int{}
	var crashes, violations, hangs int
	saved := map[string]bool{} // one crasher per kind of failure, not one per input
	var slowest time.Duration
	var slowestKind torture.Kind
	heap := torture.WatchHeap()
	start := time.Now()
	for i := range 2 * n {
		mail := i%2 == 1
		var in torture.Input
		target := "FuzzParse"
		if mail {
			in, target = m.Mail(), "FuzzReadMessage"
		} else {
			in = m.Report()
		}
		key := map[bool]string{false: "report ", true: "mail "}[mail] + string(in.Kind)
		if byKind[key] == nil {
			byKind[key] = &tally{}
		}
		tl := byKind[key]
		tl.inputs++
		watchdog := time.AfterFunc(hangAfter, func() {
			name := saveCrasher(t, target, in.Data)
			panic(fmt.Sprintf("input %d (%s) took over %s; saved to %s", i, key, hangAfter, name))
		})
		t0 := time.Now()
		accepted, reason, violation, panicked := parseOne(in.Data, mail, lim)
		d := time.Since(t0)
		watchdog.Stop()
		if d > slowest {
			slowest, slowestKind = d, in.Kind
		}
		if d > hangAfter/2 {
			hangs++
			t.Errorf("input %d (%s) took %s; saved to %s", i, key, d, saveCrasher(t, target, in.Data))
		}
		switch {
		case panicked != "":
			crashes++
			t.Errorf("input %d (%s) panicked: %s; saved to %s", i, key, panicked, saveCrasher(t, target, in.Data))
		case violation != "":
			violations++
			shape := reasonShape.ReplaceAllString(violation, "_")
			if !saved[shape] {
				saved[shape] = true
				t.Errorf("input %d (%s) breaks the parser's contract: %s; saved to %s", i, key, violation, saveCrasher(t, target, in.Data))
			}
		case accepted:
			tl.accepted++
		default:
			tl.refused++
			reasons[reasonShape.ReplaceAllString(reason, "_")]++
		}
	}
	elapsed := time.Since(start)
	peak := heap.Stop()
	// A report is at most 64 MiB decompressed; the parser holds it and its
	// decoded form. 512 MiB of heap would mean a bound does not hold.
	if peak > 512<<20 {
		t.Errorf("peak heap %s MiB, want under 512", torture.MiB(peak))
	}
	var accepted, refused int
	kinds := make([]string, 0, len(byKind))
	for k, tl := range byKind {
		accepted += tl.accepted
		refused += tl.refused
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		tl := byKind[k]
		t.Logf("%-28s %7d inputs %7d accepted %7d refused", k, tl.inputs, tl.accepted, tl.refused)
	}
	// Refusals must be the common case, acceptances must happen: a parser
	// that refuses everything or accepts everything fails here.
	if accepted == 0 || refused < accepted/4 {
		t.Errorf("accepted %d, refused %d: the mutations do not reach both outcomes", accepted, refused)
	}
	torture.Record(t, map[string]any{
		"seed": seed, "inputs": 2 * n, "accepted": accepted, "refused": refused, "refusal_kinds": len(reasons),
		"crashes": crashes, "contract_violations": violations, "hangs": hangs, "slowest_ms": slowest.Milliseconds(), "slowest_kind": slowestKind,
		"peak_heap_mib": torture.MiB(peak), "peak_rss_mib": torture.MiB(torture.PeakRSS()),
		"seconds": int(elapsed.Seconds()), "race": raceEnabled,
	})
}

// parseOne parses data as a report or a mail and says whether it was
// accepted, and if not why; a result that breaks the documented contract
// is returned as violation, a panic is caught and returned.
func parseOne(data []byte, mail bool, lim reports.Limits) (accepted bool, reason, violation, panicked string) {
	defer func() {
		if r := recover(); r != nil {
			panicked = fmt.Sprint(r)
		}
	}()
	if !mail {
		r, js, err := reports.ParseBytes(data, lim)
		if err != nil {
			if r != nil || js != nil {
				return false, "", "a report returned with an error", ""
			}
			return refusal(err, reports.ErrMalformed, reports.ErrTooLarge)
		}
		if r.OrganizationName == "" || r.ReportID == "" || r.DateRange.End.Before(r.DateRange.Start) {
			return false, "", fmt.Sprintf("accepted an invalid report %+v", r), ""
		}
		return true, "", "", ""
	}
	msg, err := reports.ReadMessage(bytes.NewReader(data), lim)
	if err != nil {
		return refusal(err, reports.ErrNoReport, reports.ErrMalformed, reports.ErrTooLarge)
	}
	good := false
	for _, a := range msg.Attachments {
		switch {
		case a.Report != nil && a.Err != nil:
			return false, "", "an attachment with both a report and an error", ""
		case a.Report != nil:
			good = true
		default:
			if sentinelReason(a.Err, reports.ErrMalformed, reports.ErrTooLarge) == "" {
				return false, "", fmt.Sprintf("attachment error without a sentinel: %v", a.Err), ""
			}
		}
	}
	if !good {
		return refusal(msg.Attachments[0].Err, reports.ErrMalformed, reports.ErrTooLarge)
	}
	return true, "", "", ""
}

// refusal is the result of parseOne for an error: its reason, or a
// violation when it wraps no sentinel.
func refusal(err error, sentinels ...error) (bool, string, string, string) {
	if r := sentinelReason(err, sentinels...); r != "" {
		return false, r, "", ""
	}
	return false, "", fmt.Sprintf("error without a sentinel: %v", err), ""
}

// sentinelReason returns err's message when it wraps one of sentinels and
// says more than the sentinel itself, else "" (a refusal without a reason).
func sentinelReason(err error, sentinels ...error) string {
	if err == nil {
		return ""
	}
	for _, s := range sentinels {
		if errors.Is(err, s) && err.Error() != s.Error() || err == reports.ErrNoReport {
			return err.Error()
		}
	}
	return ""
}
