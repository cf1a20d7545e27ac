package db

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// DomainThresholds returns the verdict thresholds of domain: the stored
// ones (table domain_settings), each unset one at its default.
func (d *DB) DomainThresholds(ctx context.Context, domain string) (rollout.Thresholds, error) {
	t := rollout.DefaultThresholds()
	err := d.Pool.QueryRow(ctx, `SELECT
			coalesce(min_days, $2), coalesce(min_report_days, $3), coalesce(min_reporters, $4),
			coalesce(min_sessions, $5), coalesce(max_failure_rate, $6), coalesce(recent_days, $7),
			coalesce(rising_days, $8), coalesce(rising_base_days, $9), coalesce(rising_factor, $10),
			coalesce(min_rising_failures, $11), coalesce(regression_base_days, $12), coalesce(enforce_max_age, $13)
		FROM domain_settings WHERE domain = $1`, normDomain(domain),
		t.MinDays, t.MinReportDays, t.MinReporters, t.MinSessions, t.MaxFailureRate, t.RecentDays,
		t.RisingDays, t.RisingBaseDays, t.RisingFactor, t.MinRisingFailures, t.RegressionBaseDays, t.EnforceMaxAge,
	).Scan(&t.MinDays, &t.MinReportDays, &t.MinReporters, &t.MinSessions, &t.MaxFailureRate, &t.RecentDays,
		&t.RisingDays, &t.RisingBaseDays, &t.RisingFactor, &t.MinRisingFailures, &t.RegressionBaseDays, &t.EnforceMaxAge)
	if err == pgx.ErrNoRows {
		return rollout.DefaultThresholds(), nil
	}
	if err != nil {
		return t, fmt.Errorf("reading the thresholds of %s: %w", domain, err)
	}
	if err := t.Validate(); err != nil {
		return t, fmt.Errorf("reading the thresholds of %s: %w", domain, err)
	}
	return t, nil
}

// SetDomainThresholds stores every threshold of domain, after checking
// them.
func (d *DB) SetDomainThresholds(ctx context.Context, domain string, t rollout.Thresholds) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("storing the thresholds of %s: %w", domain, err)
	}
	_, err := d.Pool.Exec(ctx, `INSERT INTO domain_settings AS s (domain, min_days, min_report_days,
			min_reporters, min_sessions, max_failure_rate, recent_days, rising_days, rising_base_days,
			rising_factor, min_rising_failures, regression_base_days, enforce_max_age)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (domain) DO UPDATE SET min_days = EXCLUDED.min_days,
			min_report_days = EXCLUDED.min_report_days, min_reporters = EXCLUDED.min_reporters,
			min_sessions = EXCLUDED.min_sessions, max_failure_rate = EXCLUDED.max_failure_rate,
			recent_days = EXCLUDED.recent_days, rising_days = EXCLUDED.rising_days,
			rising_base_days = EXCLUDED.rising_base_days, rising_factor = EXCLUDED.rising_factor,
			min_rising_failures = EXCLUDED.min_rising_failures,
			regression_base_days = EXCLUDED.regression_base_days,
			enforce_max_age = EXCLUDED.enforce_max_age, updated_at = now()`,
		normDomain(domain), t.MinDays, t.MinReportDays, t.MinReporters, t.MinSessions, t.MaxFailureRate,
		t.RecentDays, t.RisingDays, t.RisingBaseDays, t.RisingFactor, t.MinRisingFailures,
		t.RegressionBaseDays, t.EnforceMaxAge)
	if err != nil {
		return fmt.Errorf("storing the thresholds of %s: %w", domain, err)
	}
	return nil
}

// ResetDomainThresholds removes the stored thresholds of domain: the
// defaults apply again.
func (d *DB) ResetDomainThresholds(ctx context.Context, domain string) error {
	if _, err := d.Pool.Exec(ctx, `DELETE FROM domain_settings WHERE domain = $1`, normDomain(domain)); err != nil {
		return fmt.Errorf("resetting the thresholds of %s: %w", domain, err)
	}
	return nil
}
