// Package autopilot takes MTA-STS domains from testing to a long-lived
// enforce on evidence alone (docs/autopilot.md): once a domain's verdict
// has been ready on N consecutive daily evaluations it is promoted to
// enforce with a short max_age, and the max_age is raised stage by stage
// while the watch stays clean; a regression rolls it back to testing.
// It makes versions through the one publishing path (Publisher) and
// keeps one evaluation per domain per UTC day in the store, which is what
// limits it to one change per domain per day.
package autopilot

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Defaults of the settings (docs/autopilot.md, "Settings").
const (
	// DefaultReadyDays is how many consecutive daily evaluations must find
	// the verdict ready before the promotion.
	DefaultReadyDays = 3
	// DefaultFinalMaxAge is where the ramp ends: 30 days.
	DefaultFinalMaxAge int64 = 2592000
	// MinFinalMaxAge and MaxFinalMaxAge bound the final max_age: one day,
	// and the RFC 8461 §3.2 maximum (about a year).
	MinFinalMaxAge int64 = 86400
	MaxFinalMaxAge int64 = rollout.MaxMaxAge
	// MaxReadyDays bounds the ready days setting.
	MaxReadyDays = 60
	// MaxHoldDays bounds each of the hold days: a year.
	MaxHoldDays = 365
)

// Stage is one step of the ramp: the max_age of enforce and how many clean
// days the version must have been live before the next stage.
type Stage struct {
	MaxAge   int64 `json:"max_age"`
	HoldDays int   `json:"hold_days"`
}

// DefaultStages are the stages before the final one: a mistake published
// with a short max_age is held by senders only that long (RFC 8461 §5.1),
// so enforce starts at one day and grows once it has held.
var DefaultStages = []Stage{
	{MaxAge: 86400, HoldDays: 7},
	{MaxAge: 604800, HoldDays: 14},
	{MaxAge: 2592000, HoldDays: 30},
}

// DefaultHoldDays are the hold days of DefaultStages, one per stage before
// the final one: the built-in value of the hold days setting.
func DefaultHoldDays() []int {
	h := make([]int, len(DefaultStages))
	for i, st := range DefaultStages {
		h[i] = st.HoldDays
	}
	return h
}

// Settings are a domain's effective autopilot settings: its own stored
// ones over the fleet default over the built-in defaults.
type Settings struct {
	Enabled     bool  `json:"enabled"`
	DryRun      bool  `json:"dry_run"`
	ReadyDays   int   `json:"ready_days"`
	FinalMaxAge int64 `json:"final_max_age"`
	// HoldDays are the clean days before each raise, one per stage of
	// DefaultStages; Ramp takes DefaultStages' own when it is not one per
	// stage (a Settings built by hand).
	HoldDays []int `json:"hold_days"`
	// EnabledFrom says where Enabled comes from: "domain", "fleet" or
	// "default".
	EnabledFrom string `json:"enabled_from"`
}

// Resolve merges the stored settings of a domain over the fleet's.
func Resolve(fleet, domain db.AutopilotSettings) Settings {
	s := Settings{ReadyDays: DefaultReadyDays, FinalMaxAge: DefaultFinalMaxAge, HoldDays: DefaultHoldDays(), EnabledFrom: "default"}
	for _, st := range []db.AutopilotSettings{fleet, domain} {
		from := "fleet"
		if st.Domain != db.FleetDefault {
			from = "domain"
		}
		if st.Enabled != nil {
			s.Enabled, s.EnabledFrom = *st.Enabled, from
		}
		if st.DryRun != nil {
			s.DryRun = *st.DryRun
		}
		if st.ReadyDays != nil {
			s.ReadyDays = *st.ReadyDays
		}
		if st.FinalMaxAge != nil {
			s.FinalMaxAge = *st.FinalMaxAge
		}
		if st.HoldDays != nil {
			s.HoldDays = slices.Clone(st.HoldDays)
		}
	}
	return s
}

// ValidateFinalMaxAge checks a final max_age setting.
func ValidateFinalMaxAge(v int64) error {
	if v < MinFinalMaxAge || v > MaxFinalMaxAge {
		return fmt.Errorf("final max_age %d: want %d..%d seconds", v, MinFinalMaxAge, MaxFinalMaxAge)
	}
	return nil
}

// ValidateReadyDays checks a ready days setting.
func ValidateReadyDays(n int) error {
	if n < 1 || n > MaxReadyDays {
		return fmt.Errorf("ready days %d: want 1..%d", n, MaxReadyDays)
	}
	return nil
}

// ValidateHoldDays checks a hold days setting: one value per raise of the
// ramp, each 1..MaxHoldDays.
func ValidateHoldDays(h []int) error {
	if len(h) != len(DefaultStages) {
		return fmt.Errorf("hold days %q: want %d values, one per raise", FormatHoldDays(h), len(DefaultStages))
	}
	for _, n := range h {
		if n < 1 || n > MaxHoldDays {
			return fmt.Errorf("hold days %q: want each 1..%d", FormatHoldDays(h), MaxHoldDays)
		}
	}
	return nil
}

// ParseHoldDays reads hold days as the CLI and the domain page take them:
// whole numbers of days separated by commas ("7,14,30"). It checks the
// form only; ValidateHoldDays checks the bounds.
func ParseHoldDays(v string) ([]int, error) {
	h := []int{}
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("hold days %q: want whole numbers of days separated by commas, as 7,14,30", v)
		}
		h = append(h, n)
	}
	return h, nil
}

// FormatHoldDays writes hold days as ParseHoldDays reads them.
func FormatHoldDays(h []int) string {
	s := make([]string, len(h))
	for i, n := range h {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// Ramp is the list of stages a domain goes through in enforce; the last
// is the final one (HoldDays 0).
type Ramp []Stage

// Ramp returns the stages of s: the default stages whose max_age is below
// the final one, each holding for its own of s.HoldDays, then the final
// one. A stage left out for the final max_age takes its hold days with it,
// so that the stages kept hold as set.
func (s Settings) Ramp() Ramp {
	final := s.FinalMaxAge
	if final <= 0 {
		final = DefaultFinalMaxAge
	}
	var r Ramp
	for i, st := range DefaultStages {
		if st.MaxAge < final {
			if len(s.HoldDays) == len(DefaultStages) {
				st.HoldDays = s.HoldDays[i]
			}
			r = append(r, st)
		}
	}
	return append(r, Stage{MaxAge: final})
}

// StageOf returns the stage a policy is at: 0 unless it is in enforce,
// else the highest stage whose max_age it reaches (at least 1).
func (r Ramp) StageOf(p rollout.Policy) int {
	if p.Mode != rollout.ModeEnforce {
		return 0
	}
	for i := len(r) - 1; i > 0; i-- {
		if p.MaxAge >= r[i].MaxAge {
			return i + 1
		}
	}
	return 1
}

// Final is the number of the final stage.
func (r Ramp) Final() int { return len(r) }

// Stage returns stage k (1-based).
func (r Ramp) Stage(k int) Stage { return r[k-1] }

// utcDay is the UTC midnight of t's UTC day.
func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// date formats a day as the plans write it.
func date(t time.Time) string { return t.UTC().Format(time.DateOnly) }
