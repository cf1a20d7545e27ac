package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// corpusSeeds returns every sample of testdata/corpus (and of the shared
// corpus when present) as fuzz seeds.
func corpusSeeds(t testing.TB) [][]byte {
	var seeds [][]byte
	for _, dir := range []string{filepath.Join("..", "testdata", "corpus"), sharedCorpusDir} {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() == "SOURCES.md" {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, data)
			return nil
		})
	}
	return seeds
}

// fuzzLimits keeps fuzzing fast and checks the limits on the way.
var fuzzLimits = Limits{MaxMessageBytes: 1 << 20, MaxReportBytes: 1 << 20, MaxParts: 20, MaxDepth: 5, MaxJSONDepth: 16,
	MaxSessions: 1_000_000, MaxPolicies: 8, MaxFailureDetails: 16, MaxPolicyDomains: 3, MaxMXHosts: 4, MaxPolicyStrings: 6}

// claimSeeds are reports at and past the claim limits of fuzzLimits.
func claimSeeds() []string {
	return []string{
		limitReport(limitPolicy("example.com", 1_000_000, 1_000_000, "", limitDetail(1_000_000))),
		limitReport(limitPolicy("example.com", 1_000_001, 0, "")),
		limitReport(limitPolicy("example.com", 0, 1, "", limitDetail(999_999_999_999_999_999))),
		limitReport(limitPolicy("a.example", 1, 0, `, "mx-host": `+quotedList("mx", 5)), limitPolicy("b.example", 1, 0, ""),
			limitPolicy("c.example", 1, 0, ""), limitPolicy("d.example", 1, 0, "")),
		limitReport(limitPolicy("example.com", 0, 17, `, "policy-string": `+quotedList("mx: m", 7), repeat(limitDetail(1), 17)...)),
	}
}

// checkClaims fails t when an accepted report claims more than lim allows.
func checkClaims(t *testing.T, r *Report, lim Limits) {
	t.Helper()
	if len(r.Policies) > lim.MaxPolicies {
		t.Fatalf("accepted %d policies over the limit", len(r.Policies))
	}
	details, domains := 0, map[string]bool{}
	for _, p := range r.Policies {
		domains[strings.ToLower(strings.TrimSuffix(strings.TrimSpace(p.Policy.Domain), "."))] = true
		details += len(p.FailureDetails)
		if p.Summary.TotalSuccessfulSessionCount > lim.MaxSessions || p.Summary.TotalFailureSessionCount > lim.MaxSessions {
			t.Fatalf("accepted totals %+v over the limit", p.Summary)
		}
		if len(p.Policy.MXHosts) > lim.MaxMXHosts || len(p.Policy.Strings) > lim.MaxPolicyStrings {
			t.Fatalf("accepted %d mx-host, %d policy-string over the limits", len(p.Policy.MXHosts), len(p.Policy.Strings))
		}
		for _, d := range p.FailureDetails {
			if d.FailedSessionCount > lim.MaxSessions {
				t.Fatalf("accepted a failed-session-count of %d over the limit", d.FailedSessionCount)
			}
		}
	}
	if details > lim.MaxFailureDetails || len(domains) > lim.MaxPolicyDomains {
		t.Fatalf("accepted %d failure details, %d domains over the limits", details, len(domains))
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range corpusSeeds(f) {
		f.Add(s)
	}
	f.Add(gz(f, validReport))
	for _, s := range claimSeeds() {
		f.Add([]byte(s))
	}
	// A bomb whose gzip trailer claims 100 bytes (fuzzLimits: 1 MiB).
	f.Add(lyingBomb(f, 2<<20))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, js, err := ParseLimited(bytes.NewReader(data), fuzzLimits)
		if err != nil {
			if r != nil || js != nil {
				t.Fatalf("ParseLimited() returned a report with error %v", err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ParseLimited() error %v wraps no sentinel", err)
			}
			return
		}
		if int64(len(js)) > fuzzLimits.MaxReportBytes {
			t.Fatalf("ParseLimited() json of %d bytes over the limit", len(js))
		}
		checkClaims(t, r, fuzzLimits)
		// The normalised form is a valid report that reads back the same.
		norm, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := Parse(bytes.NewReader(norm))
		if err != nil {
			t.Fatalf("Parse(normalised %s) error %v", norm, err)
		}
		norm2, _ := json.Marshal(r2)
		if !bytes.Equal(norm, norm2) {
			t.Fatalf("normalised form not stable:\n%s\n%s", norm, norm2)
		}
		if r.DateRange.End.Before(r.DateRange.Start) || r.ReportID == "" || r.OrganizationName == "" {
			t.Fatalf("ParseLimited() accepted an invalid report %+v", r)
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	for _, s := range corpusSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadMessage(bytes.NewReader(data), fuzzLimits)
		if err != nil {
			if !errors.Is(err, ErrNoReport) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("ReadMessage() error %v wraps no sentinel", err)
			}
			return
		}
		if len(m.Attachments) == 0 {
			t.Fatal("ReadMessage() = no attachments and no error")
		}
		if len(m.Attachments) > fuzzLimits.MaxParts {
			t.Fatalf("ReadMessage() = %d attachments over MaxParts", len(m.Attachments))
		}
		for _, a := range m.Attachments {
			if (a.Report == nil) == (a.Err == nil) {
				t.Fatalf("attachment %+v: want a report or an error", a)
			}
			if a.Report != nil {
				checkClaims(t, a.Report, fuzzLimits)
				r, err := Parse(bytes.NewReader(a.JSON))
				if err != nil || !reflect.DeepEqual(r, a.Report) {
					t.Fatalf("attachment JSON does not parse to its report: %v", err)
				}
			}
		}
	})
}
