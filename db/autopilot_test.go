package db_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/db/dbtest"
	"github.com/tlsrpt/tlsrpt/internal/testclock"
)

// TestAutopilotSettings: the fleet default and a domain's row are stored
// field by field; a later write keeps what it does not set; the bounds
// are the database's.
func TestAutopilotSettings(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	on, off, days, age := true, false, 5, int64(604800)
	if err := d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: db.FleetDefault, Enabled: &on, UpdatedBy: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "Example.COM.", Enabled: &off, ReadyDays: &days}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "example.com", FinalMaxAge: &age}); err != nil {
		t.Fatal(err)
	}
	s, err := d.AutopilotSettings(ctx, "example.com")
	if err != nil || s.Enabled == nil || *s.Enabled || s.ReadyDays == nil || *s.ReadyDays != 5 || s.FinalMaxAge == nil || *s.FinalMaxAge != age || s.DryRun != nil {
		t.Fatalf("AutopilotSettings() = %+v, %v; want off, 5 days, final %d, dry run unset", s, err, age)
	}
	all, err := d.AllAutopilotSettings(ctx)
	if err != nil || len(all) != 2 || all[db.FleetDefault].Enabled == nil || !*all[db.FleetDefault].Enabled || all[db.FleetDefault].UpdatedBy != "admin" {
		t.Fatalf("AllAutopilotSettings() = %+v, %v", all, err)
	}
	if none, err := d.AutopilotSettings(ctx, "other.example"); err != nil || none.Enabled != nil {
		t.Fatalf("AutopilotSettings(unset) = %+v, %v", none, err)
	}
	// The hold days: stored and read back as set, kept by a write that
	// does not set them, and refused unless three of 1..365.
	if s.HoldDays != nil || all[db.FleetDefault].HoldDays != nil {
		t.Errorf("hold days before any were set: %v, fleet %v; want nil", s.HoldDays, all[db.FleetDefault].HoldDays)
	}
	if err := d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "example.com", HoldDays: []int{2, 3, 4}}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "example.com", ReadyDays: &days}); err != nil {
		t.Fatal(err)
	}
	if s, err := d.AutopilotSettings(ctx, "example.com"); err != nil || !slices.Equal(s.HoldDays, []int{2, 3, 4}) || s.FinalMaxAge == nil {
		t.Errorf("AutopilotSettings() hold days = %v, %v; want [2 3 4], the others kept", s.HoldDays, err)
	}
	if all, err := d.AllAutopilotSettings(ctx); err != nil || !slices.Equal(all["example.com"].HoldDays, []int{2, 3, 4}) || all[db.FleetDefault].HoldDays != nil {
		t.Errorf("AllAutopilotSettings() hold days = %+v, %v", all, err)
	}
	if fs, err := d.FleetStates(ctx, []string{"example.com"}); err != nil || !slices.Equal(fs["example.com"].Settings.HoldDays, []int{2, 3, 4}) {
		t.Errorf("FleetStates() hold days = %+v, %v", fs, err)
	}
	for _, bad := range [][]int{{}, {1, 2}, {1, 2, 3, 4}, {0, 2, 3}, {1, 2, 366}} {
		if err := d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "example.com", HoldDays: bad}); err == nil {
			t.Errorf("hold days %v stored, want the check to refuse them", bad)
		}
	}
	if _, err := d.Pool.Exec(ctx, `UPDATE autopilot_settings SET hold_days = '{1,NULL,3}' WHERE domain = 'example.com'`); err == nil {
		t.Errorf("hold days {1,NULL,3} stored, want the check to refuse them")
	}
	if _, err := d.Pool.Exec(ctx, `UPDATE autopilot_settings SET hold_days = '{{1,2,3}}' WHERE domain = 'example.com'`); err == nil {
		t.Errorf("hold days {{1,2,3}} stored, want the check to refuse them")
	}
	tooLong := int64(31557601)
	if err := d.SetAutopilotSettings(ctx, db.AutopilotSettings{Domain: "example.com", FinalMaxAge: &tooLong}); err == nil {
		t.Errorf("final max_age %d stored, want the bound refused", tooLong)
	}
}

// TestAutopilotEvaluations: one evaluation per domain and day; a dry run
// is replaced by a real one, a real one that acted is final, a failed one
// may be retried; the ready streak counts consecutive ready days at stage
// 0 only.
func TestAutopilotEvaluations(t *testing.T) {
	d := dbtest.New(t)
	ctx := context.Background()
	today := testclock.Base(time.Date(2026, 5, 10, 0, 0, 0, 0, time.UTC))
	ev := func(day int, verdict string, stage int, dry bool, errMsg string) db.AutopilotEvaluation {
		at := today.AddDate(0, 0, day).Add(6 * time.Hour)
		return db.AutopilotEvaluation{Domain: "example.com", Day: at, EvaluatedAt: at, Verdict: verdict, Stage: stage,
			Action: "wait", DryRun: dry, Error: errMsg}
	}
	claim := func(e db.AutopilotEvaluation, want bool) {
		t.Helper()
		got, err := d.ClaimAutopilotEvaluation(ctx, e)
		if err != nil || got != want {
			t.Fatalf("ClaimAutopilotEvaluation(day %s dry %v) = %v, %v; want %v", e.Day.Format(time.DateOnly), e.DryRun, got, err, want)
		}
	}
	claim(ev(0, "ready", 0, true, ""), true)
	claim(ev(0, "ready", 0, true, ""), true)   // dry over dry
	claim(ev(0, "ready", 0, false, ""), true)  // real over dry
	claim(ev(0, "ready", 0, false, ""), false) // real over real: taken
	claim(ev(0, "ready", 0, true, ""), false)  // dry over real: taken
	if err := d.FinishAutopilotEvaluation(ctx, "example.com", today, "", "promote", "push failed"); err != nil {
		t.Fatal(err)
	}
	claim(ev(0, "ready", 0, false, ""), true) // a failed action may be retried
	got, err := d.AutopilotEvaluation(ctx, "example.com", today.Add(23*time.Hour))
	if err != nil || got.Error != "" || got.DryRun || !got.Day.Equal(today) || got.Blockers == nil {
		t.Fatalf("AutopilotEvaluation() = %+v, %v", got, err)
	}

	// Streak before today: days -1, -2 ready, -3 ready at stage 1 (in
	// enforce: does not count), -4 ready.
	claim(ev(-1, "ready", 0, false, ""), true)
	claim(ev(-2, "ready", 0, true, ""), true)
	claim(ev(-3, "ready", 1, false, ""), true)
	claim(ev(-4, "ready", 0, false, ""), true)
	if n, err := d.ReadyStreak(ctx, "example.com", today, 10); err != nil || n != 2 {
		t.Errorf("ReadyStreak() = %d, %v; want 2", n, err)
	}
	if n, err := d.ReadyStreak(ctx, "example.com", today, 1); err != nil || n != 1 {
		t.Errorf("ReadyStreak(limit 1) = %d, %v; want 1", n, err)
	}
	// A missing day ends the streak.
	if n, err := d.ReadyStreak(ctx, "example.com", today.AddDate(0, 0, 2), 10); err != nil || n != 0 {
		t.Errorf("ReadyStreak(after a gap) = %d, %v; want 0", n, err)
	}
	claim(ev(1, "blocked", 0, false, ""), true)
	if n, err := d.ReadyStreak(ctx, "example.com", today.AddDate(0, 0, 2), 10); err != nil || n != 0 {
		t.Errorf("ReadyStreak(after a blocked day) = %d, %v; want 0", n, err)
	}
	list, err := d.AutopilotEvaluations(ctx, "example.com", 0)
	if err != nil || len(list) != 6 || !list[0].Day.Equal(today.AddDate(0, 0, 1)) {
		t.Fatalf("AutopilotEvaluations() = %d rows, %v", len(list), err)
	}
	latest, err := d.LatestAutopilotEvaluations(ctx)
	if err != nil || len(latest) != 1 || latest["example.com"].Verdict != "blocked" {
		t.Fatalf("LatestAutopilotEvaluations() = %+v, %v", latest, err)
	}
}
