package main

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// flagArgs gives, for every command, a line of its verb and positional
// arguments that flags are put after in TestFlagsAfterArguments. A new
// command must be added here.
var flagArgs = map[string][]string{
	"audit":         nil,
	"autopilot":     {"example.com"},
	"check":         {"example.com"},
	"demo":          nil,
	"domain":        {"add", "example.com"},
	"healthcheck":   nil,
	"import":        {"reports.json"},
	"ingest":        nil,
	"migrate":       nil,
	"parse":         {"reports.json"},
	"policy":        nil,
	"promote":       {"example.com"},
	"publishing":    {"example.com"},
	"mx-move":       {"example.com"},
	"report":        {"exclude", "1"},
	"reporter-rule": {"delete", "1"},
	"reprocess":     {"1"},
	"retention":     nil,
	"rollback":      {"example.com"},
	"rollout":       {"example.com"},
	"serve":         nil,
	"status":        {"example.com"},
	"token":         {"revoke", "1"},
	"user":          {"remove", "alice"},
	"verify":        {"example.com"},
}

// TestFlagsAfterArguments: in every command, a flag after the positional
// arguments is a flag (flags go anywhere on the line, in every command):
// -h there prints the usage and exits 0, an unknown flag there
// exits 2 naming it, rather than being taken for a domain or a file.
func TestFlagsAfterArguments(t *testing.T) {
	for name := range commands {
		pre, ok := flagArgs[name]
		if !ok {
			t.Errorf("command %q has no line in flagArgs", name)
			continue
		}
		run := func(args ...string) (int, string) {
			var out, errOut strings.Builder
			env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
			code := Main(context.Background(), append(append([]string{name}, pre...), args...), env)
			return code, errOut.String() + out.String()
		}
		line := strings.Join(append([]string{"tlsrpt", name}, pre...), " ")
		if code, text := run("-h"); code != 0 || !strings.HasPrefix(text, "usage: tlsrpt "+name) {
			t.Errorf("%s -h = %d:\n%s\nwant 0 and the usage", line, code, text)
		}
		if code, text := run("--no-such-flag"); code != 2 || !strings.Contains(text, "flag provided but not defined: -no-such-flag") {
			t.Errorf("%s --no-such-flag = %d:\n%s\nwant 2 naming the flag", line, code, text)
		}
	}
	for name := range flagArgs {
		if _, ok := commands[name]; !ok {
			t.Errorf("flagArgs names %q, which is no command", name)
		}
	}
}

// TestFlagsAfterArgumentsTakeEffect: a flag with a value after the file
// applies (parse's report limit), and a flag's value is not taken for a
// positional argument.
func TestFlagsAfterArgumentsTakeEffect(t *testing.T) {
	file := filepath.Join("..", "..", "testdata", "corpus", "mta-sts-exporter", "examples", "microsoft.json")
	run := func(args ...string) (int, string, string) {
		var out, errOut strings.Builder
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
		code := Main(context.Background(), args, env)
		return code, out.String(), errOut.String()
	}
	if code, out, _ := run("parse", file); code != 0 || !strings.Contains(out, "organization-name") {
		t.Fatalf("tlsrpt parse %s = %d, %q: want the report", file, code, out)
	}
	for _, args := range [][]string{
		{"parse", file, "--max-report-bytes", "10"},
		{"parse", file, "-max-report-bytes=10"},
		{"parse", "--max-report-bytes", "10", file},
	} {
		code, out, errOut := run(args...)
		if code != 1 || out != "" || !strings.Contains(errOut, "report over 10 bytes") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("tlsrpt %s = %d, %q, %q: want 1, one error: the report over the 10-byte limit", strings.Join(args, " "), code, out, errOut)
		}
	}
	// After "--", "-h" is a file name.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "-h"), []byte("not a report"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	if code, _, errOut := run("parse", "--", "-h"); code != 1 || !strings.HasPrefix(errOut, "-h: ") {
		t.Errorf("tlsrpt parse -- -h = %d, %q: want 1 and an error about the file -h", code, errOut)
	}
}

// TestPermute: what the standard flag package sees for a line with flags
// anywhere.
func TestPermute(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("db", "", "")
	fs.Bool("json", false, "")
	fs.Int("n", 0, "")
	for _, tc := range []struct{ in, want []string }{
		{[]string{"a", "--db", "u", "b"}, []string{"--db", "u", "--", "a", "b"}},
		{[]string{"a", "--json", "b", "-n", "3"}, []string{"--json", "-n", "3", "--", "a", "b"}},
		{[]string{"--json=false", "a", "-db=u"}, []string{"--json=false", "-db=u", "--", "a"}},
		{[]string{"a", "--", "-n", "--json"}, []string{"--", "a", "-n", "--json"}},
		{[]string{"-", "--db", "-x"}, []string{"--db", "-x", "--", "-"}},
		{[]string{"a", "--unknown", "b"}, []string{"--unknown", "--", "a", "b"}},
		{[]string{"a", "--db"}, []string{"--db", "--", "a"}},
		{[]string{"--json"}, []string{"--json"}},
		{nil, nil},
	} {
		if got := permute(fs, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("permute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
