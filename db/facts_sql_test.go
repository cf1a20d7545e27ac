package db_test

import (
	"context"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// corpusPolicyStrings returns the policy-strings of every JSON report of
// the repository's corpus.
func corpusPolicyStrings(t testing.TB) [][]string {
	t.Helper()
	var out [][]string
	root := filepath.Join("..", "testdata", "corpus")
	err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		fh, err := os.Open(path)
		if err != nil {
			return err
		}
		defer fh.Close()
		r, err := reports.Parse(fh)
		if err != nil {
			return nil // malformed samples are the parser's business
		}
		for _, p := range r.Policies {
			out = append(out, p.Policy.Strings)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading the corpus: %v", err)
	}
	return out
}

// sqlMode runs the mode extraction of migration 011.
func sqlMode(t testing.TB, d *db.DB, lines []string) string {
	t.Helper()
	var mode string
	if err := d.Pool.QueryRow(context.Background(), `SELECT tlsrpt_policy_mode($1)`, lines).Scan(&mode); err != nil {
		t.Fatalf("tlsrpt_policy_mode(%q): %v", lines, err)
	}
	return mode
}

func TestPolicyModeSQL(t *testing.T) {
	d := dbtest.New(t)
	corpus := corpusPolicyStrings(t)
	if len(corpus) < 5 {
		t.Fatalf("only %d policies in the corpus", len(corpus))
	}
	modes := 0
	for _, lines := range corpus {
		got := sqlMode(t, d, lines)
		if p, err := rollout.ParsePolicy(strings.Join(lines, "\n")); err == nil {
			modes++
			if got != string(p.Mode) {
				t.Errorf("tlsrpt_policy_mode(%q) = %q, ParsePolicy says %q", lines, got, p.Mode)
			}
		}
	}
	if modes == 0 {
		t.Errorf("no corpus policy-string parsed")
	}
	for _, tc := range []struct {
		lines []string
		want  string
	}{
		{[]string{"version: STSv1", "mode: testing", "mx: a.example"}, "testing"},
		{[]string{"version: STSv1\r\nmode: enforce\r\nmx: a.example\r\n"}, "enforce"},
		{[]string{"Mode:  TESTING"}, "testing"},
		{[]string{"mode: none", "mode: enforce"}, "none"},
		{[]string{"version: STSv1", "mx: a.example"}, ""},
		{[]string{"xmode: enforce"}, ""},
		{nil, ""},
	} {
		if got := sqlMode(t, d, tc.lines); got != tc.want {
			t.Errorf("tlsrpt_policy_mode(%q) = %q, want %q", tc.lines, got, tc.want)
		}
	}
}

func TestSenderRangeSQL(t *testing.T) {
	d := dbtest.New(t)
	for _, ip := range []string{"192.0.2.77", "::ffff:192.0.2.77", "2001:db8:1:2:3::4", "2a01:111:f400:fe1e::15", "10.0.0.1"} {
		var got string
		if err := d.Pool.QueryRow(context.Background(), `SELECT tlsrpt_sender_range($1::inet)`, ip).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if want := rollout.SenderRange(netip.MustParseAddr(ip)).String(); got != want {
			t.Errorf("tlsrpt_sender_range(%s) = %s, rollout.SenderRange = %s", ip, got, want)
		}
	}
	var got string
	if err := d.Pool.QueryRow(context.Background(), `SELECT tlsrpt_sender_range(NULL)`).Scan(&got); err != nil || got != "" {
		t.Errorf("tlsrpt_sender_range(NULL) = %q, %v; want empty", got, err)
	}
}

// FuzzPolicyModeSQL checks the SQL mode extraction against ParsePolicy:
// for every policy-string the Go parser accepts, both name the same mode,
// and no input makes the SQL fail. Seeded with the corpus.
func FuzzPolicyModeSQL(f *testing.F) {
	for _, lines := range corpusPolicyStrings(f) {
		f.Add(strings.Join(lines, "\n"))
	}
	f.Add("mode: testing\r\nmx: *.example.com")
	d := dbtest.New(f)
	f.Fuzz(func(t *testing.T, body string) {
		if strings.ContainsRune(body, 0) || !isUTF8(body) {
			return // PostgreSQL text holds neither; the store cleans them
		}
		lines := strings.Split(body, "\n")
		got := sqlMode(t, d, lines)
		if mine := db.PolicyMode(lines); mine != got {
			t.Errorf("PolicyMode(%q) = %q, tlsrpt_policy_mode = %q", lines, mine, got)
		}
		if p, err := rollout.ParsePolicy(body); err == nil && got != string(p.Mode) {
			t.Errorf("tlsrpt_policy_mode(%q) = %q, ParsePolicy says %q", body, got, p.Mode)
		}
	})
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
