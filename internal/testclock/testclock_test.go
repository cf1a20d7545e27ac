package testclock

import (
	"testing"
	"time"
)

func TestShift(t *testing.T) {
	base := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		env  string
		want time.Time
	}{
		{"", base},
		{"400", base.AddDate(0, 0, 400)},
		{"400d", base.AddDate(0, 0, 400)},
		{"-400", base.AddDate(0, 0, -400)},
	} {
		t.Setenv(ShiftEnv, tc.env)
		if got := Base(base); !got.Equal(tc.want) {
			t.Errorf("%s=%q: Base() = %v, want %v", ShiftEnv, tc.env, got, tc.want)
		}
	}
	t.Setenv(ShiftEnv, "a year")
	defer func() {
		if recover() == nil {
			t.Errorf("%s=%q: Shift() did not panic", ShiftEnv, "a year")
		}
	}()
	Shift()
}

func TestRunning(t *testing.T) {
	start := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	now := Running(start)
	a := now()
	time.Sleep(5 * time.Millisecond)
	b := now()
	if a.Before(start) || a.Sub(start) > time.Minute || !b.After(a) {
		t.Errorf("Running(%v): %v then %v, want from start and advancing", start, a, b)
	}
}
