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

// Need ends the test when what it needs is unavailable (err, saying why,
// is not nil): it fails when TLSRPT_TEST_REQUIRE lists name, and skips
// otherwise. what names the program in the message ("Dovecot", "BIND").
func Need(t testing.TB, name, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if Required(name) {
		t.Fatalf("%s is required (%s lists %s) but unavailable: %v", what, EnvRequire, name, err)
		return
	}
	t.Skipf("%s unavailable, tests skipped: %v", what, err)
}

// ChromiumPath is Debian's Chromium, which the browser tests drive.
const ChromiumPath = "/usr/bin/chromium"

// Chromium skips the test unless Chromium is there and TLSRPT_TEST_REQUIRE
// lists chromium (browser tests are slow: they run when asked for); when
// listed, Chromium's absence is a failure.
func Chromium(t testing.TB) {
	t.Helper()
	_, err := exec.LookPath(ChromiumPath)
	Need(t, "chromium", "Chromium", err)
	if !Required("chromium") {
		t.Skipf("browser tests run when %s lists chromium", EnvRequire)
	}
}
