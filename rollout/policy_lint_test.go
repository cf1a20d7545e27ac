package rollout

import (
	"strings"
	"testing"
)

func TestLintPolicy(t *testing.T) {
	good := "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"
	if got := LintPolicy(good); len(got) != 0 {
		t.Errorf("LintPolicy(good) = %v, want nothing", got)
	}
	for _, tt := range []struct {
		name, body string
		want       []string // each a problem's String() must contain, in order
	}{
		{"LF line ends", strings.ReplaceAll(good, "\r\n", "\n"), []string{"warning: lines end in LF"}},
		{"mixed line ends", "version: STSv1\r\nmode: enforce\nmx: mx1.example.com\r\nmax_age: 604800\r\n", []string{"warning: mixed line ends: 3 CRLF and 1 LF"}},
		{"mode typo", "version: STSv1\r\nmode: enforced\r\nmx: mx1.example.com\r\nmax_age: 604800\r\n", []string{`line 2: error: mode "enforced", want none, testing or enforce (did you mean "enforce"?)`}},
		{"unknown key", "version: STSv1\r\nmode: testing\r\nmx: mx1.example.com\r\nmax-age: 86400\r\n", []string{`line 4: warning: unknown key "max-age": senders ignore it (did you mean "max_age"?)`, "error: no max_age line"}},
		{"bad mx and max_age", "version: STSv1\r\nmode: testing\r\nmx: *.*.example.com\r\nmax_age: 99999999999\r\n", []string{"line 3: error:", "line 4: error: max_age \"99999999999\" has more than 10 digits"}},
		{"max_age over a year", "version: STSv1\r\nmode: none\r\nmax_age: 31557601\r\n", []string{"line 3: error: max_age 31557601 is over 31557600"}},
		{"short max_age, enforce", "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmax_age: 3600\r\n", []string{"line 4: warning: max_age 3600 is under a day"}},
		{"no mx", "version: STSv1\r\nmode: testing\r\nmax_age: 86400\r\n", []string{"error: mode testing without any mx line"}},
		{"repeated mode", "version: STSv1\r\nmode: testing\r\nmode: enforce\r\nmx: a.example.com\r\nmax_age: 86400\r\n", []string{"line 3: warning: mode repeated (first on line 2)"}},
		{"version not first", "mode: testing\r\nversion: STSv1\r\nmx: a.example.com\r\nmax_age: 86400\r\n", []string{"line 1: warning: the first key is mode"}},
		{"no colon and bad version", "version: STSv2\r\nmode testing\r\n", []string{"line 1: error: version \"STSv2\"", "line 2: error: no colon", "error: no mode line", "error: no max_age line"}},
		{"byte order mark", "\ufeffversion: STSv1\r\nmode: none\r\nmax_age: 86400\r\n", []string{"line 1: error: starts with a byte order mark"}},
	} {
		got := LintPolicy(tt.body)
		var texts []string
		for _, p := range got {
			texts = append(texts, p.String())
		}
		joined := strings.Join(texts, "\n")
		for _, w := range tt.want {
			if !strings.Contains(joined, w) {
				t.Errorf("%s: LintPolicy() =\n%s\nwant a problem with %q", tt.name, joined, w)
			}
		}
		// Whatever ParsePolicy refuses has an error here.
		if _, err := ParsePolicy(tt.body); err != nil && !strings.Contains(joined, "error:") {
			t.Errorf("%s: ParsePolicy() = %v, but LintPolicy names no error:\n%s", tt.name, err, joined)
		}
	}
}

// FuzzLintPolicy: any file gets its problems named without a panic, and a
// file ParsePolicy refuses always has at least one error.
func FuzzLintPolicy(f *testing.F) {
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmax_age: 604800\r\n")
	f.Add("version: STSv1\nmode: enforced\nmx: *.*.x\nmax-age: 1\n")
	f.Add("\ufeffmode testing\r\r\n\x00")
	f.Fuzz(func(t *testing.T, body string) {
		problems := LintPolicy(body)
		if _, err := ParsePolicy(body); err != nil {
			for _, p := range problems {
				if p.Severity == SeverityError {
					return
				}
			}
			t.Errorf("ParsePolicy(%q) = %v, but LintPolicy names no error: %v", body, err, problems)
		}
	})
}

func TestLintPolicyRepeatedKeyStillChecked(t *testing.T) {
	body := "version: STSv1\r\nmode: testing\r\nmode: bogus\r\nmx: a.example.com\r\nmax_age: 86400\r\n"
	got := LintPolicy(body)
	var texts []string
	for _, p := range got {
		texts = append(texts, p.String())
	}
	if j := strings.Join(texts, "\n"); !strings.Contains(j, `line 3: error: mode "bogus"`) {
		t.Errorf("LintPolicy() =\n%s\nwant the repeated mode's bad value named (ParsePolicy refuses it)", j)
	}
}
