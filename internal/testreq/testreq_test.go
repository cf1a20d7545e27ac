package testreq

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how the test would end.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = fmt.Sprintf(format, args...) }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = fmt.Sprintf(format, args...) }

// TestNeed: a missing program skips the test, or fails it when the
// test command requires it; what is there changes nothing.
func TestNeed(t *testing.T) {
	missing := errors.New("doveadm not found")
	for _, tc := range []struct {
		require   string
		err       error
		fail, skp bool
	}{
		{"", missing, false, true},
		{"postgres,dovecot", missing, true, false},
		{"postgres, dovecot ", missing, true, false},
		{"postgres", missing, false, true},
		{"dovecot", nil, false, false},
		{"", nil, false, false},
	} {
		t.Setenv(EnvRequire, tc.require)
		r := &recorder{TB: t}
		Need(r, "dovecot", "Dovecot", tc.err)
		if (r.fatal != "") != tc.fail || (r.skip != "") != tc.skp {
			t.Errorf("%s=%q, err %v: failed %q, skipped %q", EnvRequire, tc.require, tc.err, r.fatal, r.skip)
		}
		for _, msg := range []string{r.fatal, r.skip} {
			if msg != "" && (!strings.Contains(msg, "Dovecot") || !strings.Contains(msg, "doveadm not found")) {
				t.Errorf("message %q does not say what is missing and why", msg)
			}
		}
	}
}
