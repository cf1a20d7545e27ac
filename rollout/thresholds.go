package rollout

import "fmt"

// Thresholds are the numbers the readiness verdict compares the facts with.
// DefaultThresholds gives the defaults of docs/verdict.md;
// each one is a per-domain setting (table domain_settings) and a flag of
// "tlsrpt rollout". Day counts are whole UTC days; see docs/verdict.md for
// the windows they define.
type Thresholds struct {
	// MinDays is how long the domain must have been seen in testing, and
	// the length of the evaluation window [day(at)-MinDays, day(at)).
	MinDays int `json:"min_days"`
	// MinReportDays is on how many of those days trusted reports arrived.
	MinReportDays int `json:"min_report_days"`
	// MinReporters is the number of distinct reporting organisations in
	// the evaluation window.
	MinReporters int `json:"min_reporters"`
	// MinSessions is the number of sessions (successful plus failed) in
	// the evaluation window.
	MinSessions int64 `json:"min_sessions"`
	// MaxFailureRate is the highest failure rate (a fraction, 0.001 is
	// 0.1%) of sts sessions allowed over the recent window.
	MaxFailureRate float64 `json:"max_failure_rate"`
	// RecentDays is the recent window: failure rate, TLS failures and
	// policy host failures look at [day(at)-RecentDays, day(at)).
	RecentDays int `json:"recent_days"`
	// RisingDays and RisingBaseDays define the trend: the failure rate of
	// the last RisingDays days is compared with the RisingBaseDays before.
	RisingDays     int `json:"rising_days"`
	RisingBaseDays int `json:"rising_base_days"`
	// RisingFactor is how many times the earlier rate the recent rate must
	// exceed to count as rising (or, in enforce, as a regression).
	RisingFactor float64 `json:"rising_factor"`
	// MinRisingFailures is how many failures the last RisingDays days must
	// hold before a rise counts, so that one failed session after a clean
	// fortnight is not a trend.
	MinRisingFailures int64 `json:"min_rising_failures"`
	// RegressionBaseDays is the baseline of the post-enforce watch: the
	// last RisingDays days are compared with the RegressionBaseDays before.
	RegressionBaseDays int `json:"regression_base_days"`
	// EnforceMaxAge is the max_age of the proposed enforce policy.
	EnforceMaxAge int64 `json:"enforce_max_age"`
}

// Defaults of docs/verdict.md and docs/publishing.md.
const (
	DefaultMinDays            = 14
	DefaultMinReportDays      = 10
	DefaultMinReporters       = 2
	DefaultMinSessions        = 1000
	DefaultMaxFailureRate     = 0.001
	DefaultRecentDays         = 7
	DefaultRisingDays         = 3
	DefaultRisingBaseDays     = 11
	DefaultRisingFactor       = 2.0
	DefaultMinRisingFailures  = 10
	DefaultRegressionBaseDays = 14
	DefaultEnforceMaxAge      = DefaultMaxAgeEnforce
	// maxThresholdDays bounds every day count so that the facts a verdict
	// needs stay a bounded read.
	maxThresholdDays = 366
)

// DefaultThresholds returns the defaults of docs/verdict.md.
func DefaultThresholds() Thresholds {
	return Thresholds{
		MinDays:            DefaultMinDays,
		MinReportDays:      DefaultMinReportDays,
		MinReporters:       DefaultMinReporters,
		MinSessions:        DefaultMinSessions,
		MaxFailureRate:     DefaultMaxFailureRate,
		RecentDays:         DefaultRecentDays,
		RisingDays:         DefaultRisingDays,
		RisingBaseDays:     DefaultRisingBaseDays,
		RisingFactor:       DefaultRisingFactor,
		MinRisingFailures:  DefaultMinRisingFailures,
		RegressionBaseDays: DefaultRegressionBaseDays,
		EnforceMaxAge:      DefaultEnforceMaxAge,
	}
}

// Validate reports the first threshold out of range, naming it as the
// JSON field (which is also the flag name with dashes).
func (t Thresholds) Validate() error {
	days := []struct {
		name string
		v    int
		min  int
	}{
		{"min_days", t.MinDays, 1},
		{"min_report_days", t.MinReportDays, 0},
		{"min_reporters", t.MinReporters, 0},
		{"recent_days", t.RecentDays, 1},
		{"rising_days", t.RisingDays, 1},
		{"rising_base_days", t.RisingBaseDays, 1},
		{"regression_base_days", t.RegressionBaseDays, 1},
	}
	for _, d := range days {
		if d.v < d.min || d.v > maxThresholdDays {
			return fmt.Errorf("threshold %s = %d: want %d..%d", d.name, d.v, d.min, maxThresholdDays)
		}
	}
	if span := max(t.MinDays, t.RecentDays, t.RisingDays+t.RisingBaseDays, t.RisingDays+t.RegressionBaseDays); span > maxThresholdDays {
		return fmt.Errorf("thresholds need %d days of history: at most %d (rising_days plus rising_base_days or regression_base_days)", span, maxThresholdDays)
	}
	if t.MinReportDays > t.MinDays {
		return fmt.Errorf("threshold min_report_days = %d: more than min_days = %d", t.MinReportDays, t.MinDays)
	}
	if t.MinSessions < 0 {
		return fmt.Errorf("threshold min_sessions = %d: negative", t.MinSessions)
	}
	if t.MinRisingFailures < 0 {
		return fmt.Errorf("threshold min_rising_failures = %d: negative", t.MinRisingFailures)
	}
	// NaN fails both comparisons, so these are written to reject it.
	if !(t.MaxFailureRate >= 0 && t.MaxFailureRate <= 1) {
		return fmt.Errorf("threshold max_failure_rate = %g: want 0..1 (0.001 is 0.1%%)", t.MaxFailureRate)
	}
	if !(t.RisingFactor >= 1 && t.RisingFactor <= 1000) {
		return fmt.Errorf("threshold rising_factor = %g: want 1..1000", t.RisingFactor)
	}
	if t.EnforceMaxAge < 0 || t.EnforceMaxAge > MaxMaxAge {
		return fmt.Errorf("threshold enforce_max_age = %d: want 0..%d", t.EnforceMaxAge, MaxMaxAge)
	}
	return nil
}

// SpanDays is how many whole UTC days before day(at) the facts must cover
// for Evaluate to apply every rule: the longest of the evaluation window,
// the recent window, the trend and the post-enforce baseline.
func (t Thresholds) SpanDays() int {
	n := max(t.MinDays, t.RecentDays, t.RisingDays+t.RisingBaseDays, t.RisingDays+t.RegressionBaseDays)
	return min(max(n, 1), maxThresholdDays)
}
