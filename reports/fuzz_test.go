package reports

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
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
var fuzzLimits = Limits{MaxMessageBytes: 1 << 20, MaxReportBytes: 1 << 20, MaxParts: 20, MaxDepth: 5, MaxJSONDepth: 16}

func FuzzParse(f *testing.F) {
	for _, s := range corpusSeeds(f) {
		f.Add(s)
	}
	f.Add(gz(f, validReport))
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
				r, err := Parse(bytes.NewReader(a.JSON))
				if err != nil || !reflect.DeepEqual(r, a.Report) {
					t.Fatalf("attachment JSON does not parse to its report: %v", err)
				}
			}
		}
	})
}
