package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// runStoreCmd runs a command with DATABASE_URL unset and the URL as --db.
func runStoreCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}
	code = Main(context.Background(), args, env)
	return code, out.String(), errOut.String()
}

const goodReport = `{"organization-name":"Google Inc.","date-range":{"start-datetime":"2026-03-01T00:00:00Z","end-datetime":"2026-03-01T23:59:59Z"},
"contact-info":"smtp-tls-reporting@google.com","report-id":"2026-03-01T00:00:00Z_example.com",
"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mx.example.com","max_age: 86400"],"policy-domain":"example.com","mx-host":["mx.example.com"]},
"summary":{"total-successful-session-count":42,"total-failure-session-count":0}}]}`

func TestImportCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "good.json"), []byte(goodReport), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runStoreCmd(t, "import", "--db", url, dir)
	if code != 0 || !strings.Contains(out, "1 new, 0 duplicate, 0 refused") {
		t.Fatalf("import = %d, %q, %q", code, out, errOut)
	}
	if err := os.WriteFile(filepath.Join(dir, "broken.json"), []byte(`{"organization-name":"x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runStoreCmd(t, "import", "--db", url, dir)
	if code != 1 || !strings.Contains(out, "0 new, 1 duplicate, 1 refused") || !strings.Contains(errOut, "broken.json: refused: ") {
		t.Fatalf("import again with a broken file = %d, %q, %q", code, out, errOut)
	}
	if code, _, _ := runStoreCmd(t, "import", "--db", url, filepath.Join(dir, "missing")); code != 1 {
		t.Errorf("import of a missing path = %d, want 1", code)
	}
	if code, _, _ := runStoreCmd(t, "import"); code != 2 {
		t.Errorf("import without paths = %d, want 2", code)
	}
}

func TestDomainCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	steps := []struct {
		args []string
		code int
		out  string
	}{
		{[]string{"domain", "add", "Bücher.Example.", "--db", url}, 0, "added xn--bcher-kva.example\n"},
		{[]string{"domain", "add", "--db", url, "xn--bcher-kva.example"}, 0, "xn--bcher-kva.example is already in the list\n"},
		{[]string{"domain", "add", "EXAMPLE.com", "--db", url}, 0, "added example.com\n"},
		{[]string{"domain", "remove", "example.com", "--db", url}, 0, "removed example.com (its reports are kept)\n"},
		{[]string{"domain", "remove", "example.com", "--db", url}, 1, ""},
		{[]string{"domain", "add", "no..dots", "--db", url}, 2, ""},
		{[]string{"domain", "frob", "--db", url}, 2, ""},
	}
	for _, s := range steps {
		code, out, errOut := runStoreCmd(t, s.args...)
		if code != s.code || out != s.out {
			t.Errorf("%v = %d, %q (stderr %q); want %d, %q", s.args, code, out, errOut, s.code, s.out)
		}
	}
	code, out, _ := runStoreCmd(t, "domain", "list", "--db", url)
	if code != 0 || !strings.HasPrefix(out, "xn--bcher-kva.example\tadded ") || strings.Count(out, "\n") != 1 {
		t.Errorf("domain list = %d, %q", code, out)
	}
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	log, err := d.AuditLog(context.Background(), "", 10)
	if err != nil || len(log) != 3 {
		t.Errorf("audit log = %d entries, %v; want 3 (two adds, one remove)", len(log), err)
	}
}

func TestMigrateCommand(t *testing.T) {
	url := dbtest.NewURL(t, false)
	// Commands refuse an explicit database with an old schema.
	code, _, errOut := runStoreCmd(t, "domain", "list", "--db", url)
	if code != 1 || !strings.Contains(errOut, "tlsrpt migrate") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("domain list on an empty database = %d, %q; want one line naming tlsrpt migrate", code, errOut)
	}
	code, out, errOut := runStoreCmd(t, "migrate", "--db", url)
	ms, _ := db.Migrations()
	if code != 0 || !strings.Contains(out, "schema is up to date") {
		t.Fatalf("migrate = %d, %q, %q", code, out, errOut)
	}
	if !strings.HasPrefix(out, "applied "+strconv.Itoa(len(ms))+" migrations") {
		t.Errorf("migrate = %q, want %d applied", out, len(ms))
	}
	code, out, _ = runStoreCmd(t, "migrate", "--db", url)
	if code != 0 || !strings.HasPrefix(out, "applied 0 migrations") {
		t.Errorf("migrate again = %d, %q", code, out)
	}
	if code, _, _ := runStoreCmd(t, "domain", "list", "--db", url); code != 0 {
		t.Errorf("domain list after migrate = %d", code)
	}
}

// TestEmbeddedDefault runs a command without a URL: the embedded cluster
// under TLSRPT_DATA_DIR is created, migrated and stopped.
func TestEmbeddedDefault(t *testing.T) {
	if os.Getenv("TLSRPT_TEST_DATABASE_URL") != "" {
		t.Skip("the tests use an external server")
	}
	base, err := os.MkdirTemp("", "tlsrpt-cmd-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(base, "data")
	var out, errOut bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
		if k == "TLSRPT_DATA_DIR" {
			return dataDir
		}
		return ""
	}}
	if code := Main(context.Background(), []string{"domain", "add", "example.com"}, env); code != 0 {
		if !dbtest.Required() && strings.Contains(errOut.String(), "install postgresql") {
			t.Skipf("no PostgreSQL: %s", errOut.String())
		}
		t.Fatalf("domain add on the embedded default = %d, %q", code, errOut.String())
	}
	out.Reset()
	if code := Main(context.Background(), []string{"domain", "list"}, env); code != 0 || !strings.HasPrefix(out.String(), "example.com\t") {
		t.Fatalf("domain list on the embedded default = %d, %q, %q", code, out.String(), errOut.String())
	}
	if b, err := os.ReadFile(filepath.Join(dataDir, "postgres", "data", "postmaster.pid")); err == nil {
		t.Errorf("postmaster.pid left after the command: %q", b)
	}
}

// TestReprocessTruncated: `tlsrpt reprocess` does not parse a quarantine
// entry that keeps only a prefix of its input; it says why and leaves it.
func TestReprocessTruncated(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	big := goodReport + strings.Repeat(" ", db.QuarantineKeepBytes)
	id, err := d.Quarantine(context.Background(), []byte(big), "refused by an older parser", reports.SourceFile, "big.json")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runStoreCmd(t, "reprocess", "--db", url, "--dkim=false", strconv.FormatInt(id, 10))
	if code != 0 || !strings.Contains(out, "not reprocessable: only the first 65536 of") || !strings.Contains(out, "0 resolved, 1 still refused") {
		t.Errorf("reprocess of a truncated entry = %d, %q, %q; want it left with the reason", code, out, errOut)
	}
	if e, err := d.QuarantineGet(context.Background(), id); err != nil || e.ReprocessedAt != nil {
		t.Errorf("truncated entry after reprocess = %+v, %v; want it unresolved", e, err)
	}
}

// TestAuditCommand: "tlsrpt audit" prints the entries newest first, by
// domain, and as JSON in the API's shape.
func TestAuditCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	d, err := db.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, a := range []db.AuditEntry{{Actor: "cli", Action: "domain.add", Domain: "example.com"}, {Actor: "alice", Action: "user.add"}} {
		if _, err := d.AddAudit(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string) {
		var out, errOut strings.Builder
		env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
			if k == "DATABASE_URL" {
				return url
			}
			return ""
		}}
		return Main(context.Background(), append([]string{"audit"}, args...), env), out.String()
	}
	code, out := run()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.Contains(lines[0], "user.add") || !strings.Contains(lines[1], "domain.add") {
		t.Errorf("tlsrpt audit = %d:\n%s\nwant both entries, newest first", code, out)
	}
	code, out = run("--domain", "example.com", "--json")
	if code != 0 || !strings.Contains(out, `"action":"domain.add"`) || strings.Contains(out, "user.add") {
		t.Errorf("tlsrpt audit --domain example.com --json = %d: %s", code, out)
	}
	if code, _ := run("--limit", "0"); code != 2 {
		t.Errorf("tlsrpt audit --limit 0 = %d, want 2", code)
	}
}
