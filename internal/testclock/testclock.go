// Package testclock is the fixed clock of the tests that run a server in
// process, and the switch that moves it.
//
// A test takes its one time from Base and gives the same clock to
// everything it starts (server, store, pipeline, sessions), so that its
// answers do not depend on the date it runs. scripts/test.sh runs those
// packages a second time with TLSRPT_TEST_CLOCK_SHIFT set (400 days): a
// test that mixes the fixed time with the real clock (a session that
// expires at the test time while the server reads time.Now), or that
// hard-codes a date derived from the fixed one, answers differently there
// and fails.
package testclock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ShiftEnv names the environment variable that moves Base: a whole number
// of days, negative to move it back ("400", "-400").
const ShiftEnv = "TLSRPT_TEST_CLOCK_SHIFT"

// Shift is the shift ShiftEnv asks for; it panics on a malformed value,
// which is a mistake in the test command, not in a test.
func Shift() time.Duration {
	v := strings.TrimSpace(os.Getenv(ShiftEnv))
	if v == "" {
		return 0
	}
	days, err := strconv.Atoi(strings.TrimSuffix(v, "d"))
	if err != nil {
		panic(fmt.Sprintf("%s=%q: want a whole number of days", ShiftEnv, v))
	}
	return time.Duration(days) * 24 * time.Hour
}

// Base returns t moved by Shift: the fixed time of a test run.
func Base(t time.Time) time.Time { return t.Add(Shift()) }

// Running returns a clock that reads start when it is made and then
// advances in real time: for a test whose server must see time pass (a
// rate limiter that refills) while every date stays derived from start.
func Running(start time.Time) func() time.Time {
	t0 := time.Now()
	return func() time.Time { return start.Add(time.Since(t0)) }
}
