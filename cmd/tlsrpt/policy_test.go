package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// goldenPolicy compares out with testdata/NAME.
func goldenPolicy(t *testing.T, name, out string) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("output differs from testdata/%s:\n%q\nwant\n%q", name, out, want)
	}
}

func TestPolicyCommandGolden(t *testing.T) {
	stdout, stderr, code := runCmd(t, "", "policy", "--domain", "Example.com", "--mode", "enforce", "--mx", "mx1.example.com",
		"--mx", "*.example.net,mx2.example.com.", "--id", "20260701T120000Z", "--rua", "mailto:tlsrpt@example.com")
	if code != 0 || stderr != "" {
		t.Fatalf("policy exit %d, stderr %q", code, stderr)
	}
	goldenPolicy(t, "policy-enforce.golden", stdout)

	stdout, stderr, code = runCmd(t, "", "policy", "--domain", "example.com", "--mode", "testing", "--preset", "microsoft-365",
		"--id", "20260701T120000Z", "--json")
	if code != 0 || stderr != "" {
		t.Fatalf("policy --json exit %d, stderr %q", code, stderr)
	}
	goldenPolicy(t, "policy-testing.json.golden", stdout)
	var g map[string]string
	if err := json.Unmarshal([]byte(stdout), &g); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"policy", "id", "record_name", "record_value", "policy_url"} {
		if g[k] == "" {
			t.Errorf("JSON lacks %q: %s", k, stdout)
		}
	}
	if _, err := rollout.ParsePolicy(g["policy"]); err != nil {
		t.Errorf("the JSON policy does not parse: %v", err)
	}
}

func TestPolicyCommandDefaultID(t *testing.T) {
	stdout, _, code := runCmd(t, "", "policy", "--domain", "example.com", "--mode", "none", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var g rollout.Generated
	if err := json.Unmarshal([]byte(stdout), &g); err != nil {
		t.Fatal(err)
	}
	if len(g.ID) != len("20260701T120000Z") || !strings.HasSuffix(g.ID, "Z") || rollout.ValidID(g.ID) != nil {
		t.Errorf("default id = %q, want a UTC YYYYMMDDTHHMMSSZ", g.ID)
	}
	if !strings.Contains(g.Policy, "max_age: 86400\r\n") {
		t.Errorf("none policy = %q, want the default max_age 86400", g.Policy)
	}
}

func TestPolicyCommandWarnings(t *testing.T) {
	_, stderr, code := runCmd(t, "", "policy", "--domain", "example.com", "--mode", "enforce", "--mx", "mx.example.com", "--max-age", "3600", "--id", "1")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n := strings.Count(stderr, "warning: "); n != 2 || !strings.Contains(stderr, "under 86400") || !strings.Contains(stderr, "under 604800") {
		t.Errorf("stderr = %q, want the two max_age warnings", stderr)
	}
	stdout, stderr, code := runCmd(t, "", "policy", "--domain", "example.com", "--mode", "none", "--max-age", "0", "--id", "1")
	if code != 0 || !strings.Contains(stdout, "max_age: 0\r\n") || !strings.Contains(stderr, "under 86400") {
		t.Errorf("--max-age 0: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestPolicyCommandRefuses(t *testing.T) {
	base := []string{"policy", "--domain", "example.com", "--id", "1"}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--mode", "strict", "--mx", "mx.example.com"}, 1, "mode"},
		{[]string{"--mode", "enforce", "--mx", "mx.example.com", "--max-age", "31557601"}, 1, "max_age"},
		{[]string{"--mode", "enforce", "--mx", "mx.example.com", "--max-age", "-1"}, 1, "max_age"},
		{[]string{"--mode", "enforce", "--mx", "mx.example.com", "--id", "2026-07-01"}, 1, "id"},
		{[]string{"--mode", "enforce", "--mx", "mx.example.com", "--id", strings.Repeat("a", 33)}, 1, "id"},
		{[]string{"--mode", "enforce", "--mx", "192.0.2.1"}, 1, "mx pattern"},
		{[]string{"--mode", "enforce", "--mx", "mx.example.com:25"}, 1, "mx pattern"},
		{[]string{"--mode", "enforce", "--mx", "mx.*.example.com"}, 1, "mx pattern"},
		{[]string{"--mode", "enforce"}, 1, "mx required"},
		{[]string{"--mode", "testing"}, 1, "mx required"},
		{[]string{"--mode", "enforce", "--preset", "yahoo"}, 1, "preset"},
		{[]string{"--mode", "enforce", "--mx", "mx.example.com", "--rua", "tlsrpt@example.com"}, 1, "report uri"},
		{[]string{"--mx", "mx.example.com"}, 2, "--mode"},
		{[]string{"--mode", "enforce", "--mx", "mx.example.com", "extra"}, 2, "unexpected"},
	}
	for _, tt := range tests {
		stdout, stderr, code := runCmd(t, "", append(base, tt.args...)...)
		if code != tt.code || !strings.Contains(stderr, tt.want) || stdout != "" {
			t.Errorf("policy %q: exit %d, stdout %q, stderr %q; want exit %d naming %q", tt.args, code, stdout, stderr, tt.code, tt.want)
		}
	}
}

// TestPolicyCheck: "tlsrpt policy --check" names every problem of a policy
// file with its line and exits 1 on an error, 0 on a clean file or only
// warnings; the file it generated itself checks clean.
func TestPolicyCheck(t *testing.T) {
	// The file tlsrpt policy writes (--json gives it alone) checks clean.
	generated, _, code := runCmd(t, "", "policy", "--domain", "example.com", "--mode", "enforce", "--mx", "mx1.example.com", "--id", "20260701T120000Z", "--json")
	var g struct{ Policy string }
	if err := json.Unmarshal([]byte(generated), &g); code != 0 || err != nil || g.Policy == "" {
		t.Fatalf("policy --json = %d %q (%v)", code, generated, err)
	}
	good := filepath.Join(t.TempDir(), "good.txt")
	if err := os.WriteFile(good, []byte(g.Policy), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := runCmd(t, "", "policy", "--check", good); code != 0 || out != good+": ok\n" {
		t.Errorf("policy --check good = %d %q %q, want 0 and ok", code, out, errOut)
	}
	bad := "version: STSv1\nmode: enforced\nmx: *.*.example.com\nmax-age: 86400\n"
	out, _, code := runCmd(t, bad, "policy", "--check", "-")
	for _, want := range []string{`-: line 2: error: mode "enforced"`, "-: line 3: error:", `-: line 4: warning: unknown key "max-age"`, "-: error: no max_age line", "-: warning: lines end in LF"} {
		if !strings.Contains(out, want) {
			t.Errorf("policy --check - output lacks %q:\n%s", want, out)
		}
	}
	if code != 1 {
		t.Errorf("policy --check of a broken file = %d, want 1", code)
	}
	out, _, code = runCmd(t, "version: STSv1\nmode: testing\nmx: mx1.example.com\nmax_age: 86400\n", "policy", "--check", "-", "--json")
	var res struct {
		OK       bool `json:"ok"`
		Problems []rollout.LintProblem
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.OK || len(res.Problems) != 1 || res.Problems[0].Severity != rollout.SeverityWarning {
		t.Errorf("policy --check --json of an LF file = %d %s (%v), want 0, ok, one warning", code, out, err)
	}
	if _, errOut, code := runCmd(t, "", "policy", "--check", filepath.Join(t.TempDir(), "missing")); code != 1 || !strings.Contains(errOut, "no such file") {
		t.Errorf("policy --check of a missing file = %d %q, want 1 naming it", code, errOut)
	}
}
