package reports

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// limitReport builds a report of one org whose policies are given as JSON
// objects.
func limitReport(policies ...string) string {
	return `{"organization-name": "Example Org", "report-id": "r-1",
		"date-range": {"start-datetime": "2024-05-01T00:00:00Z", "end-datetime": "2024-05-01T23:59:59Z"},
		"policies": [` + strings.Join(policies, ",") + `]}`
}

// limitPolicy is one policy entry of domain with the given totals, extra
// policy fields (",\"mx-host\": [...]") and failure details.
func limitPolicy(domain string, ok, failed int64, extra string, details ...string) string {
	return fmt.Sprintf(`{"policy": {"policy-type": "sts", "policy-domain": %q%s},
		"summary": {"total-successful-session-count": %d, "total-failure-session-count": %d},
		"failure-details": [%s]}`, domain, extra, ok, failed, strings.Join(details, ","))
}

func limitDetail(n int64) string {
	return fmt.Sprintf(`{"result-type": "certificate-expired", "failed-session-count": %d}`, n)
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func quotedList(prefix string, n int) string {
	l := make([]string, n)
	for i := range l {
		l[i] = fmt.Sprintf("%q", fmt.Sprintf("%s%d", prefix, i))
	}
	return "[" + strings.Join(l, ",") + "]"
}

// TestParseClaimLimits: each bound on what a report claims accepts a
// report exactly at the limit and refuses one past it with ErrTooLarge,
// naming the field and the limit. Small limits keep the inputs small; the
// defaults are checked by TestDefaultClaimLimits.
func TestParseClaimLimits(t *testing.T) {
	lim := Limits{MaxSessions: 1000, MaxPolicies: 4, MaxFailureDetails: 5, MaxPolicyDomains: 2, MaxMXHosts: 3, MaxPolicyStrings: 3}
	policies := func(n int, domainOf func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = limitPolicy(domainOf(i), 1, 0, "")
		}
		return out
	}
	same := func(int) string { return "example.com" }
	for _, tc := range []struct {
		name     string
		at, over string // at the limit (accepted), one past it (refused)
		want     string // in the refusal
	}{
		{"successful sessions",
			limitReport(limitPolicy("example.com", 1000, 0, "")),
			limitReport(limitPolicy("example.com", 1001, 0, "")),
			"policies[0].summary.total-successful-session-count 1001 over the limit of 1000"},
		{"failed sessions",
			limitReport(limitPolicy("example.com", 0, 1000, "")),
			limitReport(limitPolicy("example.com", 0, 1001, "")),
			"policies[0].summary.total-failure-session-count 1001 over the limit of 1000"},
		{"failed-session-count of a detail",
			limitReport(limitPolicy("example.com", 0, 1, "", limitDetail(1), limitDetail(1000))),
			limitReport(limitPolicy("example.com", 0, 1, "", limitDetail(1), limitDetail(1001))),
			"policies[0].failure-details[1].failed-session-count 1001 over the limit of 1000"},
		{"policies",
			limitReport(policies(4, same)...),
			limitReport(policies(5, same)...),
			"policies: 5 entries, over the limit of 4"},
		{"failure details of one policy",
			limitReport(limitPolicy("example.com", 0, 5, "", repeat(limitDetail(1), 5)...)),
			limitReport(limitPolicy("example.com", 0, 6, "", repeat(limitDetail(1), 6)...)),
			"policies[0].failure-details: 6 entries, over the limit of 5"},
		{"failure details of the report",
			limitReport(limitPolicy("example.com", 0, 3, "", repeat(limitDetail(1), 3)...), limitPolicy("example.com", 0, 2, "", repeat(limitDetail(1), 2)...)),
			limitReport(limitPolicy("example.com", 0, 3, "", repeat(limitDetail(1), 3)...), limitPolicy("example.com", 0, 3, "", repeat(limitDetail(1), 3)...)),
			"failure-details: over 5 in all policies, the limit"},
		{"distinct policy domains",
			// Case and a final dot do not make a third domain.
			limitReport(limitPolicy("a.example", 1, 0, ""), limitPolicy("B.example.", 1, 0, ""), limitPolicy("b.example", 1, 0, "")),
			limitReport(policies(3, func(i int) string { return fmt.Sprintf("d%d.example", i) })...),
			"over 2 distinct domains, the limit"},
		{"mx-host entries",
			limitReport(limitPolicy("example.com", 1, 0, `, "mx-host": `+quotedList("mx", 3))),
			limitReport(limitPolicy("example.com", 1, 0, `, "mx-host": `+quotedList("mx", 4))),
			"policies[0].policy.mx-host: 4 entries, over the limit of 3"},
		{"policy-string lines",
			limitReport(limitPolicy("example.com", 1, 0, `, "policy-string": `+quotedList("mx: m", 3))),
			limitReport(limitPolicy("example.com", 1, 0, `, "policy-string": `+quotedList("mx: m", 4))),
			"policies[0].policy.policy-string: 4 lines, over the limit of 3"},
	} {
		if _, _, err := ParseBytes([]byte(tc.at), lim); err != nil {
			t.Errorf("%s: at the limit: ParseBytes() error %v, want nil", tc.name, err)
		}
		for _, in := range [][]byte{[]byte(tc.over), gz(t, tc.over)} {
			r, js, err := ParseBytes(in, lim)
			if r != nil || js != nil || !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: over the limit: ParseBytes() = %v, %v; want ErrTooLarge naming %q", tc.name, r != nil, err, tc.want)
			}
		}
	}
}

// TestDefaultClaimLimits: the defaults accept the corpus (TestCorpus) and
// refuse what the probe of a running server sent: 20,000 policy domains,
// and totals that sum past int64.
func TestDefaultClaimLimits(t *testing.T) {
	var b strings.Builder
	pols := make([]string, 20000)
	for i := range pols {
		pols[i] = limitPolicy(fmt.Sprintf("d%d.example", i), 1, 0, "")
	}
	b.WriteString(limitReport(pols...))
	for _, tc := range []struct {
		name, in, want string
	}{
		{"20,000 policy domains", b.String(), "over the limit of 1000"},
		// 18 digits: five policies of it summed past int64 in one report
		// before the limits.
		{"18 digits", limitReport(limitPolicy("example.com", 999_999_999_999_999_999, 0, "")), "over the limit of 1000000000000"},
		{"one past the default", limitReport(limitPolicy("example.com", 0, DefaultMaxSessions+1, "")), "total-failure-session-count 1000000000001 over the limit"},
		// 19 digits and more are integers too, over any limit.
		{"int64 max + 1", limitReport(limitPolicy("example.com", 0, 0, "", `{"result-type": "x", "failed-session-count": 9223372036854775808}`)),
			"policies[0].failure-details[0].failed-session-count of 19 or more digits over the limit of 1000000000000"},
		{"40 digits", limitReport(strings.Replace(limitPolicy("example.com", 1, 0, ""),
			`"total-successful-session-count": 1,`, `"total-successful-session-count": 1`+strings.Repeat("0", 39)+`,`, 1)),
			"policies[0].summary.total-successful-session-count of 19 or more digits over the limit"},
	} {
		_, err := Parse(strings.NewReader(tc.in))
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Parse() error %v, want ErrTooLarge naming %q", tc.name, err, tc.want)
		}
	}
	// 100 domains pass the domain limit (1,000 policies is the bound
	// that 20,000 hits first); 101 do not.
	for n, ok := range map[int]bool{DefaultMaxPolicyDomains: true, DefaultMaxPolicyDomains + 1: false} {
		pols := make([]string, n)
		for i := range pols {
			pols[i] = limitPolicy(fmt.Sprintf("d%d.example", i), DefaultMaxSessions, DefaultMaxSessions, "")
		}
		_, err := Parse(bytes.NewReader([]byte(limitReport(pols...))))
		if (err == nil) != ok || !ok && !strings.Contains(err.Error(), "over 100 distinct domains") {
			t.Errorf("%d policy domains: Parse() error %v, want accepted %v", n, err, ok)
		}
	}
}
