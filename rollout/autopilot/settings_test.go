package autopilot

import (
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// TestAutopilotRampStages: the stages below the final max_age, then the
// final one; a policy's stage from its mode and max_age.
func TestAutopilotRampStages(t *testing.T) {
	for _, tc := range []struct {
		final  int64
		maxAge []int64
	}{
		{2592000, []int64{86400, 604800, 2592000}},
		{31557600, []int64{86400, 604800, 2592000, 31557600}},
		{604800, []int64{86400, 604800}},
		{86400, []int64{86400}},
		{1000000, []int64{86400, 604800, 1000000}},
	} {
		r := Settings{FinalMaxAge: tc.final}.Ramp()
		var got []int64
		for _, s := range r {
			got = append(got, s.MaxAge)
		}
		if len(got) != len(tc.maxAge) || r[len(r)-1].HoldDays != 0 {
			t.Errorf("Ramp(final %d) = %+v, want max_ages %v ending in a final stage", tc.final, r, tc.maxAge)
			continue
		}
		for i := range got {
			if got[i] != tc.maxAge[i] {
				t.Errorf("Ramp(final %d) = %v, want %v", tc.final, got, tc.maxAge)
			}
		}
	}
	r := Settings{FinalMaxAge: 31557600}.Ramp()
	for _, tc := range []struct {
		p    rollout.Policy
		want int
	}{
		{rollout.Policy{Mode: rollout.ModeTesting, MaxAge: 604800}, 0},
		{rollout.Policy{Mode: rollout.ModeNone, MaxAge: 86400}, 0},
		{rollout.Policy{Mode: rollout.ModeEnforce, MaxAge: 3600}, 1},
		{rollout.Policy{Mode: rollout.ModeEnforce, MaxAge: 86400}, 1},
		{rollout.Policy{Mode: rollout.ModeEnforce, MaxAge: 604800}, 2},
		{rollout.Policy{Mode: rollout.ModeEnforce, MaxAge: 1209600}, 2},
		{rollout.Policy{Mode: rollout.ModeEnforce, MaxAge: 2592000}, 3},
		{rollout.Policy{Mode: rollout.ModeEnforce, MaxAge: 31557600}, 4},
	} {
		if got := r.StageOf(tc.p); got != tc.want {
			t.Errorf("StageOf(%s, %d) = %d, want %d", tc.p.Mode, tc.p.MaxAge, got, tc.want)
		}
	}
}

// TestAutopilotResolve: a domain's own setting over the fleet's over the
// built-in default, field by field.
func TestAutopilotResolve(t *testing.T) {
	on, off, five := true, false, 5
	year := int64(31557600)
	s := Resolve(db.AutopilotSettings{}, db.AutopilotSettings{Domain: "example.com"})
	if s.Enabled || s.DryRun || s.ReadyDays != DefaultReadyDays || s.FinalMaxAge != DefaultFinalMaxAge || s.EnabledFrom != "default" {
		t.Errorf("Resolve(nothing stored) = %+v, want the defaults", s)
	}
	fleet := db.AutopilotSettings{Domain: db.FleetDefault, Enabled: &on, ReadyDays: &five}
	s = Resolve(fleet, db.AutopilotSettings{Domain: "example.com", FinalMaxAge: &year})
	if !s.Enabled || s.EnabledFrom != "fleet" || s.ReadyDays != 5 || s.FinalMaxAge != year {
		t.Errorf("Resolve(fleet on) = %+v, want on from the fleet, 5 days, a year", s)
	}
	s = Resolve(fleet, db.AutopilotSettings{Domain: "example.com", Enabled: &off})
	if s.Enabled || s.EnabledFrom != "domain" {
		t.Errorf("Resolve(domain off) = %+v, want off from the domain", s)
	}
	for _, v := range []int64{0, 86399, 31557601} {
		if ValidateFinalMaxAge(v) == nil {
			t.Errorf("ValidateFinalMaxAge(%d) = nil, want an error", v)
		}
	}
	for _, n := range []int{0, 61} {
		if ValidateReadyDays(n) == nil {
			t.Errorf("ValidateReadyDays(%d) = nil, want an error", n)
		}
	}
}
