package rollout

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		txt  string
		want Record
		err  error
	}{
		{"v=STSv1; id=20160831085700Z;", Record{ID: "20160831085700Z"}, nil},
		{"v=STSv1; id=20160831085700Z", Record{ID: "20160831085700Z"}, nil},
		{"v=STSv1;id=1", Record{ID: "1"}, nil},
		{"v=STSv1 ;\tid=abc ; ", Record{ID: "abc"}, nil},
		{"v=STSv1; x-ext=a.b/c; id=abc", Record{ID: "abc", Extensions: []Extension{{"x-ext", "a.b/c"}}}, nil},
		{"v=STSv1; id=first; id=second", Record{ID: "first"}, nil},

		{"", Record{}, ErrNotSTSRecord},
		{"v=spf1 -all", Record{}, ErrNotSTSRecord},
		{"v=STSv10; id=1", Record{}, ErrNotSTSRecord},
		{"V=STSv1; id=1", Record{}, ErrNotSTSRecord},
		{" v=STSv1; id=1", Record{}, ErrNotSTSRecord},
		{"v=STSv1", Record{}, ErrInvalidRecord},
		{"v=STSv1;", Record{}, ErrInvalidRecord},
		{"v=STSv1; x=1", Record{}, ErrInvalidRecord},
		{"v=STSv1 id=1", Record{}, ErrInvalidRecord},
		{"v=STSv1; id=", Record{}, ErrInvalidRecord},
		{"v=STSv1; id=2016-08-31", Record{}, ErrInvalidRecord},
		{"v=STSv1; id=123456789012345678901234567890123", Record{}, ErrInvalidRecord},
		{"v=STSv1; id=1;; x=2", Record{}, ErrInvalidRecord},
		{"v=STSv1; id=1; x=a=b", Record{}, ErrInvalidRecord},
		{"v=STSv1; id=1; _x=a", Record{}, ErrInvalidRecord},
		{"v=STSv1; id=1 2", Record{}, ErrInvalidRecord},
	}
	for _, tt := range tests {
		got, err := ParseRecord(tt.txt)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("ParseRecord(%q) = %+v, %v, want %v", tt.txt, got, err, tt.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseRecord(%q) = %+v, %v, want %+v", tt.txt, got, err, tt.want)
		}
	}
}

func TestRecordString(t *testing.T) {
	r := Record{ID: "20260701T120509Z", Extensions: []Extension{{"x", "y"}}}
	if got, want := r.String(), "v=STSv1; id=20260701T120509Z; x=y"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=STSv1; id=20160831085700Z;", "v=STSv1;id=1", "v=STSv1; x-ext=a.b/c; id=abc", "v=STSv1 ;\tid=abc ; ", "v=STSv1; id=1; id=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			return
		}
		if err := ValidID(r.ID); err != nil {
			t.Fatalf("ParseRecord(%q) id %q: %v", txt, r.ID, err)
		}
		s := r.String()
		q, err := ParseRecord(s)
		if err != nil {
			t.Fatalf("ParseRecord(String() = %q): %v", s, err)
		}
		if !reflect.DeepEqual(r, q) {
			t.Fatalf("round trip of %q: %+v, then %+v", txt, r, q)
		}
	})
}
