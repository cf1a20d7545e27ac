// Package testreq reads TLSRPT_TEST_REQUIRE, the test command's list of
// the real servers and programs integration tests need (postgres,
// dovecot, chromium, postfix, promtool, bind): a test whose server is missing
// skips, unless the list names it, and then fails, so that CI cannot pass
// by skipping.
package testreq

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// EnvRequire names the environment variable: a comma-separated list.
const EnvRequire = "TLSRPT_TEST_REQUIRE"

// Required reports whether TLSRPT_TEST_REQUIRE lists name.
func Required(name string) bool {
	for _, s := range strings.Split(os.Getenv(EnvRequire), ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// ChromiumPath is Debian's Chromium, which the browser tests drive.
const ChromiumPath = "/usr/bin/chromium"

// Chromium skips the test unless Chromium is there and TLSRPT_TEST_REQUIRE
// lists chromium (browser tests are slow: they run when asked for); when
// listed, Chromium's absence is a failure.
func Chromium(t testing.TB) {
	t.Helper()
	required := Required("chromium")
	if _, err := exec.LookPath(ChromiumPath); err != nil {
		if required {
			t.Fatalf("chromium is required (%s) but %s is missing: %v", EnvRequire, ChromiumPath, err)
		}
		t.Skipf("no %s: browser tests skipped", ChromiumPath)
	}
	if !required {
		t.Skipf("browser tests run when %s lists chromium", EnvRequire)
	}
}
