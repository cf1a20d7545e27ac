package main

import (
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db/dbtest"
)

// TestRetentionCommand seeds 18 old days and 18 recent ones, counts, then
// deletes the old ones; too short a retention is refused.
func TestRetentionCommand(t *testing.T) {
	url := dbtest.NewURL(t, true)
	for _, end := range []string{"2020-01-31", ""} {
		args := []string{"bench", "seed", "--db", url, "--domains", "1", "--years", "0.05"}
		if end != "" {
			args = append(args, "--end", end)
		}
		if code, out, errOut := runStoreCmd(t, args...); code != 0 {
			t.Fatalf("bench seed = %d, %q, %q", code, out, errOut)
		}
	}
	code, out, errOut := runStoreCmd(t, "retention", "--db", url, "--keep-days", "400", "--dry-run")
	if code != 0 || !strings.HasPrefix(out, "18 reports before ") {
		t.Fatalf("retention --dry-run = %d, %q, %q", code, out, errOut)
	}
	code, out, errOut = runStoreCmd(t, "retention", "--db", url, "--keep-days", "400")
	if code != 0 || !strings.HasPrefix(out, "deleted 18 reports before ") {
		t.Fatalf("retention = %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := runStoreCmd(t, "retention", "--db", url, "--keep-days", "400", "--dry-run"); code != 0 || !strings.HasPrefix(out, "0 reports") {
		t.Errorf("retention --dry-run after = %d, %q", code, out)
	}
	for _, keep := range []string{"30", "0", "99999999"} {
		if code, _, _ := runStoreCmd(t, "retention", "--db", url, "--keep-days", keep); code != 2 {
			t.Errorf("retention --keep-days %s = %d, want 2", keep, code)
		}
	}
}
