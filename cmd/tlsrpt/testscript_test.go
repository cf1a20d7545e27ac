package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestTestScriptTouchesNothingItDidNotCreate reads the test command (and
// the CI entry point that calls it) for commands that stop, start,
// reconfigure or delete what the machine already runs: on a mail host the
// test command must leave its PostgreSQL and Dovecot alone. The tests
// start private servers on their own ports and need none of that.
func TestTestScriptTouchesNothingItDidNotCreate(t *testing.T) {
	forbidden := regexp.MustCompile(`(?m)^[^#\n]*\b(service\s+\S+\s+(stop|start|restart|reload)|systemctl\s+(stop|start|restart|reload|disable|enable|kill|mask)|invoke-rc\.d|pg_ctlcluster|pg_dropcluster|pkill|killall|update-rc\.d|dpkg-reconfigure|rm\s+-[a-zA-Z]*[rf][a-zA-Z]*\s+/(etc|var|usr|srv|home|root)\b|>\s*/etc/)`)
	for _, name := range []string{"scripts/test.sh", ".ci/run", "Makefile"} {
		raw, err := os.ReadFile(filepath.Join("..", "..", name))
		if os.IsNotExist(err) && name == "Makefile" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range forbidden.FindAllString(string(raw), -1) {
			t.Errorf("%s: %q touches what the tests did not create", name, strings.TrimSpace(m))
		}
	}
	// promtool comes from Debian's prometheus package, which would start
	// a Prometheus service if installed: the script only downloads and
	// unpacks it.
	script, err := os.ReadFile(filepath.Join("..", "..", "scripts", "test.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^[^#\n]*(missing\+=\(prometheus|apt-get[^\n]*install[^\n]*prometheus)`).FindString(string(script)); m != "" {
		t.Errorf("scripts/test.sh installs prometheus: %q", strings.TrimSpace(m))
	}
	if !strings.Contains(string(script), "apt-get download prometheus") || !strings.Contains(string(script), "dpkg-deb -x") {
		t.Errorf("scripts/test.sh does not fetch promtool with apt-get download and dpkg-deb -x")
	}
	// What the script installs, the README names.
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"`postgresql`", "`dovecot-imapd`", "`chromium`", "`postfix`", "staticcheck", "`promtool`", "apt-get download prometheus"} {
		if !strings.Contains(string(readme), pkg) {
			t.Errorf("README does not say the test command installs %s", pkg)
		}
	}
}
