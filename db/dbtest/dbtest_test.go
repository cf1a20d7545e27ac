package dbtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// TestHelperNew is run by TestUnavailable in a child process.
func TestHelperNew(t *testing.T) {
	if os.Getenv("DBTEST_HELPER") == "" {
		t.Skip("helper of TestUnavailable")
	}
	dbtest.New(t)
}

// TestUnavailable: without a server, New skips, unless TLSRPT_TEST_REQUIRE
// names postgres: then it fails.
func TestUnavailable(t *testing.T) {
	run := func(require string) (string, error) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNew$", "-test.v")
		cmd.Env = append(os.Environ(), "DBTEST_HELPER=1",
			// Nothing listens on port 1 of loopback.
			"TLSRPT_TEST_DATABASE_URL=postgres://nobody@127.0.0.1:1/postgres?connect_timeout=5",
			"TLSRPT_TEST_REQUIRE="+require)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("")
	if err != nil || !strings.Contains(out, "--- SKIP: TestHelperNew") {
		t.Errorf("without TLSRPT_TEST_REQUIRE: %v\n%s", err, out)
	}
	out, err = run("dovecot,postgres")
	if err == nil || !strings.Contains(out, "--- FAIL: TestHelperNew") || !strings.Contains(out, "required") {
		t.Errorf("with TLSRPT_TEST_REQUIRE=postgres: %v\n%s", err, out)
	}
}

func TestNewIsFresh(t *testing.T) {
	a, b := dbtest.New(t), dbtest.New(t)
	ctx := context.Background()
	if _, _, err := a.AddDomain(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if ds, err := b.Domains(ctx); err != nil || len(ds) != 0 {
		t.Errorf("second database sees %v, %v; want a fresh one", ds, err)
	}
}
