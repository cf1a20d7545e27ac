package rollout

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestPolicyString(t *testing.T) {
	p := Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net"}, MaxAge: 604800}
	want := "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"
	if got := p.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	none := Policy{Mode: ModeNone, MaxAge: 86400}
	if got, want := none.String(), "version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name string
		body string
		want Policy
		err  bool
	}{
		{"rfc example LF", "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\nmax_age: 604800\n",
			Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800}, false},
		{"CRLF", "version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\nmax_age: 86400\r\n",
			Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 86400}, false},
		{"no final newline", "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 86400",
			Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 86400}, false},
		{"mixed endings, spaces and tabs", "version:STSv1\r\nmode:\t testing  \nmx:   mx.example.com\t\r\nmax_age: 86400\n\n",
			Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 86400}, false},
		{"version not first", "mode: enforce\nmax_age: 604800\nmx: mx.example.com\nversion: STSv1\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 604800}, false},
		{"unknown keys ignored", "version: STSv1\nmode: enforce\nx-comment: served by nginx 1.2\nmx: mx.example.com\nmax_age: 604800\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 604800}, false},
		{"first mode counts", "version: STSv1\nmode: testing\nmode: enforce\nmx: mx.example.com\nmax_age: 1\n",
			Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: 1}, false},
		{"none without mx", "version: STSv1\nmode: none\nmax_age: 0\n", Policy{Mode: ModeNone, MaxAge: 0}, false},
		{"max max_age", "version: STSv1\nmode: none\nmax_age: 31557600\n", Policy{Mode: ModeNone, MaxAge: 31557600}, false},
		{"ten digits", "version: STSv1\nmode: none\nmax_age: 0000086400\n", Policy{Mode: ModeNone, MaxAge: 86400}, false},

		{"empty", "", Policy{}, true},
		{"no version", "mode: enforce\nmx: mx.example.com\nmax_age: 604800\n", Policy{}, true},
		{"wrong version", "version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n", Policy{}, true},
		{"version lower case", "version: stsv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n", Policy{}, true},
		{"key upper case is unknown", "Version: STSv1\nmode: none\nmax_age: 1\n", Policy{}, true},
		{"no mode", "version: STSv1\nmx: mx.example.com\nmax_age: 604800\n", Policy{}, true},
		{"bad mode", "version: STSv1\nmode: Enforce\nmx: mx.example.com\nmax_age: 604800\n", Policy{}, true},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: mx.example.com\n", Policy{}, true},
		{"max_age too big", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 31557601\n", Policy{}, true},
		{"max_age 11 digits", "version: STSv1\nmode: none\nmax_age: 00000086400\n", Policy{}, true},
		{"max_age negative", "version: STSv1\nmode: none\nmax_age: -1\n", Policy{}, true},
		{"max_age with unit", "version: STSv1\nmode: none\nmax_age: 86400s\n", Policy{}, true},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 604800\n", Policy{}, true},
		{"testing without mx", "version: STSv1\nmode: testing\nmax_age: 604800\n", Policy{}, true},
		{"mx ip", "version: STSv1\nmode: enforce\nmx: 192.0.2.1\nmax_age: 604800\n", Policy{}, true},
		{"mx port", "version: STSv1\nmode: enforce\nmx: mx.example.com:25\nmax_age: 604800\n", Policy{}, true},
		{"mx inner wildcard", "version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 604800\n", Policy{}, true},
		{"mx trailing dot", "version: STSv1\nmode: enforce\nmx: mx.example.com.\nmax_age: 604800\n", Policy{}, true},
		{"line without colon", "version: STSv1\nmode enforce\nmx: mx.example.com\nmax_age: 604800\n", Policy{}, true},
		{"empty value", "version: STSv1\nmode: none\nmax_age: 1\nfoo:\n", Policy{}, true},
		{"html error page", "<html><body>Not Found</body></html>\n", Policy{}, true},
		{"space before colon", "version : STSv1\nmode: none\nmax_age: 1\n", Policy{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePolicy(tt.body)
			if tt.err {
				if err == nil {
					t.Fatalf("ParsePolicy(%q) = %+v, want an error", tt.body, got)
				}
				if !errors.Is(err, ErrInvalidPolicy) {
					t.Errorf("ParsePolicy(%q) error %v, want ErrInvalidPolicy", tt.body, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePolicy(%q): %v", tt.body, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParsePolicy(%q) = %+v, want %+v", tt.body, got, tt.want)
			}
		})
	}
}

func TestParsePolicyTooLarge(t *testing.T) {
	body := "version: STSv1\nmode: none\nmax_age: 1\n" + strings.Repeat("x: y\n", maxPolicySize/5+1)
	if _, err := ParsePolicy(body); err == nil {
		t.Errorf("ParsePolicy(%d bytes) succeeded, want an error", len(body))
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		p    Policy
		want error
	}{
		{Policy{Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 604800}, nil},
		{Policy{Mode: ModeNone, MaxAge: 0}, nil},
		{Policy{Mode: "strict", MX: []string{"mx.example.com"}, MaxAge: 1}, ErrInvalidMode},
		{Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: -1}, ErrInvalidMaxAge},
		{Policy{Mode: ModeTesting, MX: []string{"mx.example.com"}, MaxAge: MaxMaxAge + 1}, ErrInvalidMaxAge},
		{Policy{Mode: ModeTesting, MaxAge: 1}, ErrMXRequired},
		{Policy{Mode: ModeTesting, MX: []string{"[::1]"}, MaxAge: 1}, ErrInvalidMX},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%+v.Validate() = %v, want %v", tt.p, err, tt.want)
		}
	}
}

// corpusPolicies returns the sts policy-strings of the TLS-RPT reports in
// the repository's corpus, each joined with LF and with CRLF.
func corpusPolicies(t testing.TB) []string {
	t.Helper()
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			typ, _ := v["policy-type"].(string)
			if lines, ok := v["policy-string"].([]any); ok && strings.EqualFold(typ, "sts") {
				var ss []string
				for _, l := range lines {
					if s, ok := l.(string); ok {
						ss = append(ss, s)
					}
				}
				out = append(out, strings.Join(ss, "\n"), strings.Join(ss, "\r\n")+"\r\n")
			}
			for _, c := range v {
				walk(c)
			}
		case []any:
			for _, c := range v {
				walk(c)
			}
		}
	}
	err := filepath.WalkDir("../testdata/corpus", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil || len(b) > 1<<20 {
			return err
		}
		var v any
		if json.Unmarshal(b, &v) == nil {
			walk(v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the corpus: %v", err)
	}
	return out
}

func TestCorpusPolicies(t *testing.T) {
	bodies := corpusPolicies(t)
	if len(bodies) == 0 {
		t.Fatal("no policy-string in ../testdata/corpus")
	}
	for _, b := range bodies {
		p, err := ParsePolicy(b)
		if err != nil {
			t.Errorf("ParsePolicy(%q): %v", b, err)
			continue
		}
		if !p.Mode.Valid() {
			t.Errorf("ParsePolicy(%q) mode %q", b, p.Mode)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	for _, b := range corpusPolicies(f) {
		f.Add(b)
	}
	f.Add("version: STSv1\nmode: none\nmax_age: 0\n")
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: *.example.net\r\nmx: a.example.com\r\nmax_age: 31557600\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := ParsePolicy(body)
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("ParsePolicy(%q) = %+v, which does not validate: %v", body, p, err)
		}
		s := p.String()
		q, err := ParsePolicy(s)
		if err != nil {
			t.Fatalf("ParsePolicy(String() = %q): %v", s, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip of %q: %+v, then %+v", body, p, q)
		}
	})
}
