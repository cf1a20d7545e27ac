package autopilot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Status is what the domain page and "tlsrpt autopilot D" show: the
// settings, the ramp and where the domain is on it, the next step with its
// earliest date, and the last evaluation (its plan is the dry-run line).
// It reads the store only: no verdict, no live check.
type Status struct {
	Domain   string   `json:"domain"`
	Settings Settings `json:"settings"`
	Ramp     Ramp     `json:"ramp"`
	// Mode and MaxAge are those of the newest version ("" and 0 without
	// one).
	Mode   rollout.Mode `json:"mode"`
	MaxAge int64        `json:"max_age"`
	// Stage is 0 outside enforce, else 1..FinalStage.
	Stage      int `json:"stage"`
	FinalStage int `json:"final_stage"`
	// LiveSince is when the newest version went live.
	LiveSince *time.Time `json:"live_since,omitempty"`
	// Next is the next step in words; NextDate its earliest UTC day, nil
	// when it depends on the verdict or nothing is left to do.
	Next     string     `json:"next"`
	NextDate *time.Time `json:"next_date,omitempty"`
	// Last is the newest evaluation, nil before the first.
	Last *db.AutopilotEvaluation `json:"last,omitempty"`
}

// Status returns the autopilot status of domain.
func (e *Engine) Status(ctx context.Context, domain string) (st Status, err error) {
	domain, err = db.NormalizeDomain(domain)
	if err != nil {
		return Status{}, fmt.Errorf("reading the autopilot status: %w", err)
	}
	s, err := e.Settings(ctx, domain)
	if err != nil {
		return Status{}, err
	}
	st = Status{Domain: domain, Settings: s, Ramp: s.Ramp()}
	st.FinalStage = st.Ramp.Final()
	evs, err := e.DB.AutopilotEvaluations(ctx, domain, 1)
	if err != nil {
		return st, err
	}
	if len(evs) > 0 {
		st.Last = &evs[0]
	}
	v, err := e.DB.LatestPolicyVersion(ctx, domain)
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return st, err
	}
	first := st.Ramp.Stage(1).MaxAge
	if !s.Enabled {
		defer func() { st.Next = "autopilot is off; with it on: " + st.Next }()
	}
	if err != nil {
		st.Next = fmt.Sprintf("promote to enforce with max_age %d after the verdict is ready on %d consecutive days", first, s.ReadyDays)
		return st, nil
	}
	st.Mode, st.MaxAge = v.Policy.Mode, v.Policy.MaxAge
	st.Stage = st.Ramp.StageOf(v.Policy)
	st.LiveSince = LiveAt(v)
	switch {
	case v.Policy.Mode == rollout.ModeNone:
		st.Next = "none: the domain is retired"
	case st.Stage == 0:
		st.Next = fmt.Sprintf("promote to enforce with max_age %d after the verdict is ready on %d consecutive days", first, s.ReadyDays)
	case st.Stage >= st.FinalStage:
		st.Next = "none: the ramp is complete (final max_age)"
	case st.LiveSince == nil:
		st.Next = fmt.Sprintf("raise max_age to %d: the hold starts once version %s is live", st.Ramp.Stage(st.Stage+1).MaxAge, v.ID)
	default:
		hold := st.Ramp.Stage(st.Stage).HoldDays
		d := utcDay(*st.LiveSince).AddDate(0, 0, hold)
		st.NextDate = &d
		st.Next = fmt.Sprintf("raise max_age to %d (stage %d) on %s if the watch stays clean", st.Ramp.Stage(st.Stage+1).MaxAge, st.Stage+1, date(d))
	}
	return st, nil
}

// SetEnabled turns the autopilot of domain on or off (FleetDefault: the
// fleet default) and audits it.
func (e *Engine) SetEnabled(ctx context.Context, domain string, on bool, actor string) error {
	return e.Set(ctx, db.AutopilotSettings{Domain: domain, Enabled: &on}, actor)
}

// Set stores the non-nil settings of s (checked) and audits the change as
// "autopilot.settings".
func (e *Engine) Set(ctx context.Context, s db.AutopilotSettings, actor string) error {
	if s.Domain != db.FleetDefault {
		d, err := db.NormalizeDomain(s.Domain)
		if err != nil {
			return fmt.Errorf("storing the autopilot settings: %w", err)
		}
		s.Domain = d
	}
	if s.ReadyDays != nil {
		if err := ValidateReadyDays(*s.ReadyDays); err != nil {
			return err
		}
	}
	if s.FinalMaxAge != nil {
		if err := ValidateFinalMaxAge(*s.FinalMaxAge); err != nil {
			return err
		}
	}
	if s.HoldDays != nil {
		if err := ValidateHoldDays(s.HoldDays); err != nil {
			return err
		}
	}
	s.UpdatedBy = actor
	if err := e.DB.SetAutopilotSettings(ctx, s); err != nil {
		return err
	}
	detail := map[string]any{}
	if s.Domain == db.FleetDefault {
		detail["fleet"] = true
	}
	if s.Enabled != nil {
		detail["enabled"] = *s.Enabled
	}
	if s.DryRun != nil {
		detail["dry_run"] = *s.DryRun
	}
	if s.ReadyDays != nil {
		detail["ready_days"] = *s.ReadyDays
	}
	if s.FinalMaxAge != nil {
		detail["final_max_age"] = *s.FinalMaxAge
	}
	if s.HoldDays != nil {
		detail["hold_days"] = s.HoldDays
	}
	e.auditAs(ctx, actor, "autopilot.settings", s.Domain, detail)
	return nil
}

// Run evaluates every autopilot domain now and then every interval until
// ctx ends: the evaluation is once per domain per UTC day, so a run later
// the same day finds the day done and does nothing for it.
func (e *Engine) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := e.Evaluate(ctx, Options{}); err != nil && ctx.Err() == nil {
			e.log().WarnContext(ctx, "Autopilot round failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
