package autopilot

import (
	"slices"
	"strings"
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

// TestAutopilotHoldDays: the hold days resolve as the other settings do
// (domain over fleet over built-in), each stage of the ramp holds for its
// own, a stage left out for the final max_age takes its hold with it, and
// the setting is three values of 1..365.
func TestAutopilotHoldDays(t *testing.T) {
	holds := func(r Ramp) []int {
		var h []int
		for _, s := range r {
			h = append(h, s.HoldDays)
		}
		return h
	}
	s := Resolve(db.AutopilotSettings{}, db.AutopilotSettings{Domain: "example.com"})
	if !slices.Equal(s.HoldDays, []int{7, 14, 30}) || !slices.Equal(holds(s.Ramp()), []int{7, 14, 0}) {
		t.Errorf("Resolve(nothing stored) hold days %v, ramp %v; want 7, 14, 30", s.HoldDays, s.Ramp())
	}
	fleet := db.AutopilotSettings{Domain: db.FleetDefault, HoldDays: []int{10, 20, 40}}
	s = Resolve(fleet, db.AutopilotSettings{Domain: "example.com"})
	if !slices.Equal(s.HoldDays, []int{10, 20, 40}) || !slices.Equal(holds(s.Ramp()), []int{10, 20, 0}) {
		t.Errorf("Resolve(fleet 10,20,40) hold days %v, ramp %v", s.HoldDays, s.Ramp())
	}
	own := db.AutopilotSettings{Domain: "example.com", HoldDays: []int{2, 3, 4}}
	s = Resolve(fleet, own)
	if !slices.Equal(s.HoldDays, []int{2, 3, 4}) {
		t.Errorf("Resolve(domain 2,3,4 over fleet) hold days %v, want 2, 3, 4", s.HoldDays)
	}
	own.HoldDays[0] = 99
	if s.HoldDays[0] != 2 {
		t.Errorf("Resolve shares the stored slice: a change to it shows in the settings")
	}
	for _, tc := range []struct {
		final int64
		want  []int
	}{
		{31557600, []int{2, 3, 4, 0}},
		{2592000, []int{2, 3, 0}},
		{1000000, []int{2, 3, 0}},
		{604800, []int{2, 0}},
		{86400, []int{0}},
	} {
		s.FinalMaxAge = tc.final
		if got := holds(s.Ramp()); !slices.Equal(got, tc.want) {
			t.Errorf("Ramp(final %d, holds 2,3,4) holds = %v, want %v", tc.final, got, tc.want)
		}
	}
	// A Settings built by hand without hold days takes the built-in ones.
	if got := holds(Settings{FinalMaxAge: 31557600}.Ramp()); !slices.Equal(got, []int{7, 14, 30, 0}) {
		t.Errorf("Ramp(no hold days) holds = %v, want the defaults", got)
	}
	if DefaultStages[0].HoldDays != 7 {
		t.Errorf("Ramp changed DefaultStages: %+v", DefaultStages)
	}
	for _, h := range [][]int{{1, 1, 1}, {7, 14, 30}, {365, 365, 365}, {30, 14, 7}} {
		if err := ValidateHoldDays(h); err != nil {
			t.Errorf("ValidateHoldDays(%v) = %v, want nil", h, err)
		}
	}
	for _, h := range [][]int{nil, {}, {7, 14}, {7, 14, 30, 60}, {0, 14, 30}, {7, -1, 30}, {7, 14, 366}} {
		if err := ValidateHoldDays(h); err == nil || !strings.Contains(err.Error(), "hold days") {
			t.Errorf("ValidateHoldDays(%v) = %v, want an error naming the hold days", h, err)
		}
	}
}
