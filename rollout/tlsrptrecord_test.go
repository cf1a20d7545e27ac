package rollout

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseTLSRPTRecord(t *testing.T) {
	tests := []struct {
		txt  string
		want TLSRPTRecord
		err  error
	}{
		{"v=TLSRPTv1; rua=mailto:reports@example.com", TLSRPTRecord{RUA: []string{"mailto:reports@example.com"}}, nil},
		{"v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt;", TLSRPTRecord{RUA: []string{"https://reporting.example.com/v1/tlsrpt"}}, nil},
		{"v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.net/x ,mailto:b@example.org",
			TLSRPTRecord{RUA: []string{"mailto:a@example.com", "https://r.example.net/x", "mailto:b@example.org"}}, nil},
		{"v=TLSRPTv1; rua=mailto:tls%2Creports@example.com", TLSRPTRecord{RUA: []string{"mailto:tls%2Creports@example.com"}}, nil},
		{"v=TLSRPTv1; rua=mailto:a@example.com; x-ext=1", TLSRPTRecord{RUA: []string{"mailto:a@example.com"}, Extensions: []Extension{{"x-ext", "1"}}}, nil},
		{"v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", TLSRPTRecord{RUA: []string{"mailto:a@example.com"}}, nil},

		{"v=STSv1; id=1", TLSRPTRecord{}, ErrNotTLSRPTRecord},
		{"v=TLSRPTv10; rua=mailto:a@example.com", TLSRPTRecord{}, ErrNotTLSRPTRecord},
		{"v=TLSRPTv1", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1;", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1 rua=mailto:a@example.com", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=reports@example.com", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=http://r.example.com/x", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=mailto:a!b@example.com", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=mailto:a%zz@example.com", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=mailto:example.com", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=mailto:a@example.com,", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=https:no-host", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; rua=mailto:a@example.com;; x=1", TLSRPTRecord{}, ErrInvalidTLSRPT},
		{"v=TLSRPTv1; x=1", TLSRPTRecord{}, ErrInvalidTLSRPT},
	}
	for _, tt := range tests {
		got, err := ParseTLSRPTRecord(tt.txt)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("ParseTLSRPTRecord(%q) = %+v, %v, want %v", tt.txt, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseTLSRPTRecord(%q) = %+v, %v, want %+v", tt.txt, got, err, tt.want)
		}
	}
}

func TestTLSRPTRecordString(t *testing.T) {
	r := TLSRPTRecord{RUA: []string{"mailto:a@example.com", "https://r.example.com/x"}}
	if got, want := r.String(), "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func FuzzParseTLSRPTRecord(f *testing.F) {
	for _, s := range []string{"v=TLSRPTv1; rua=mailto:reports@example.com", "v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt;",
		"v=TLSRPTv1; rua=mailto:a@example.com, https://r.example.net/x ,mailto:b@example.org", "v=TLSRPTv1; rua=mailto:a@example.com; x-ext=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseTLSRPTRecord(txt)
		if err != nil {
			return
		}
		if len(r.RUA) == 0 || len(r.RUA) > maxRUA {
			t.Fatalf("ParseTLSRPTRecord(%q) has %d uris", txt, len(r.RUA))
		}
		s := r.String()
		q, err := ParseTLSRPTRecord(s)
		if err != nil {
			t.Fatalf("ParseTLSRPTRecord(String() = %q): %v", s, err)
		}
		if !reflect.DeepEqual(r, q) {
			t.Fatalf("round trip of %q: %+v, then %+v", txt, r, q)
		}
	})
}
