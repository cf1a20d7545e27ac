package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// MetricsCounts is what /metrics exports from the store.
type MetricsCounts struct {
	// Reports counts stored reports per source and trust.
	Reports []SourceCount
	// Quarantined counts messages in quarantine not yet reprocessed.
	Quarantined int64
	// Sessions holds trusted sessions per listed domain and policy type.
	Sessions []DomainSessions
	// Failures holds trusted failed sessions per listed domain and result
	// type.
	Failures []DomainFailures
}

// SourceCount is a number of reports of one source and trust.
type SourceCount struct {
	Source  string
	Trusted bool
	Count   int64
}

// DomainSessions is a domain's sessions of one policy type.
type DomainSessions struct {
	Domain     string
	PolicyType string
	Successful int64
	Failed     int64
}

// DomainFailures is a domain's failed sessions of one result type.
type DomainFailures struct {
	Domain     string
	ResultType string
	Failed     int64
}

// maxMetricsSeries bounds each list of MetricsCounts: the labels come from
// reports, which anyone can send.
const maxMetricsSeries = 2000

// MetricsCounts reads the totals /metrics exports. Per-domain series are
// limited to allow-listed domains, so unsolicited reports cannot grow the
// label set.
func (d *DB) MetricsCounts(ctx context.Context) (*MetricsCounts, error) {
	m := &MetricsCounts{}
	rows, err := d.reader(ctx).Query(ctx, `SELECT source, trusted, count(*) FROM reports GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $1`, maxMetricsSeries)
	if err != nil {
		return nil, fmt.Errorf("counting reports: %w", err)
	}
	for rows.Next() {
		var s SourceCount
		if err := rows.Scan(&s.Source, &s.Trusted, &s.Count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("counting reports: %w", err)
		}
		m.Reports = append(m.Reports, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("counting reports: %w", err)
	}
	if err := d.reader(ctx).QueryRow(ctx, `SELECT count(*) FROM quarantine WHERE reprocessed_at IS NULL`).Scan(&m.Quarantined); err != nil {
		return nil, fmt.Errorf("counting quarantine: %w", err)
	}
	rows, err = d.reader(ctx).Query(ctx, `
		SELECT r.policy_domain, r.policy_type, least(sum(r.successful), 9223372036854775807)::bigint, least(sum(r.failed), 9223372036854775807)::bigint
		FROM daily_policy_rollups r JOIN domains d ON d.name = r.policy_domain
		WHERE r.trusted GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $1`, maxMetricsSeries)
	if err != nil {
		return nil, fmt.Errorf("summing sessions: %w", err)
	}
	for rows.Next() {
		var s DomainSessions
		if err := rows.Scan(&s.Domain, &s.PolicyType, &s.Successful, &s.Failed); err != nil {
			rows.Close()
			return nil, fmt.Errorf("summing sessions: %w", err)
		}
		m.Sessions = append(m.Sessions, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summing sessions: %w", err)
	}
	rows, err = d.reader(ctx).Query(ctx, `
		SELECT r.policy_domain, r.result_type, least(sum(r.failed), 9223372036854775807)::bigint
		FROM daily_failure_rollups r JOIN domains d ON d.name = r.policy_domain
		WHERE r.trusted GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $1`, maxMetricsSeries)
	if err != nil {
		return nil, fmt.Errorf("summing failures: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f DomainFailures
		if err := rows.Scan(&f.Domain, &f.ResultType, &f.Failed); err != nil {
			return nil, fmt.Errorf("summing failures: %w", err)
		}
		m.Failures = append(m.Failures, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summing failures: %w", err)
	}
	return m, nil
}

// DomainHealth is what /metrics exports per listed domain about its
// verdict's failure rate and its newest policy version.
type DomainHealth struct {
	Domain string
	// MaxFailureRate and RecentDays are the domain's thresholds (stored
	// or default).
	MaxFailureRate float64
	RecentDays     int
	// Sessions and Failed are the trusted sts sessions of the recent
	// window [today-RecentDays, today), as the verdict's failure rate
	// counts them before it leaves out sender-side failures.
	Sessions int64
	Failed   int64
	// HasVersion says tlsrpt published a policy version for the domain;
	// the fields below describe the newest one.
	HasVersion  bool
	Steps       []rollout.Step
	RecordError string
	CheckedAt   *time.Time
}

// MetricsDomains reads, for every listed domain (at most 2000, in name
// order), the recent window's sts sessions ending before the UTC day of
// today and the state of its newest policy version: one index range of
// the rollups and one version row per domain.
func (d *DB) MetricsDomains(ctx context.Context, today time.Time) ([]DomainHealth, error) {
	def := rollout.DefaultThresholds()
	day := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)
	rows, err := d.reader(ctx).Query(ctx, `
		SELECT d.name, coalesce(s.max_failure_rate, $2), coalesce(s.recent_days, $3),
			r.sessions, r.failed,
			v.seq IS NOT NULL, coalesce(v.last_steps, '[]'), coalesce(v.record_error, ''), v.last_checked_at
		FROM domains d
		LEFT JOIN domain_settings s ON s.domain = d.name
		CROSS JOIN LATERAL (
			-- least() skips a NULL: the sum of no rows must be 0 first,
			-- or a domain without reports would read as saturated.
			SELECT least(coalesce(sum(successful::numeric + failed), 0), 9223372036854775807)::bigint AS sessions,
				least(coalesce(sum(failed), 0), 9223372036854775807)::bigint AS failed
			FROM daily_policy_rollups
			WHERE policy_domain = d.name AND policy_type = 'sts' AND trusted
				AND day >= $1::date - coalesce(s.recent_days, $3) AND day < $1::date
		) r
		LEFT JOIN LATERAL (
			SELECT seq, last_steps, record_error, last_checked_at FROM policy_versions
			WHERE domain = d.name ORDER BY seq DESC LIMIT 1
		) v ON true
		ORDER BY d.name LIMIT $4`, day, def.MaxFailureRate, def.RecentDays, maxMetricsSeries)
	if err != nil {
		return nil, fmt.Errorf("reading domain health: %w", err)
	}
	defer rows.Close()
	var out []DomainHealth
	for rows.Next() {
		var (
			h     DomainHealth
			steps []byte
		)
		if err := rows.Scan(&h.Domain, &h.MaxFailureRate, &h.RecentDays, &h.Sessions, &h.Failed,
			&h.HasVersion, &steps, &h.RecordError, &h.CheckedAt); err != nil {
			return nil, fmt.Errorf("reading domain health: %w", err)
		}
		if err := json.Unmarshal(steps, &h.Steps); err != nil {
			return nil, fmt.Errorf("decoding the steps of %s: %w", h.Domain, err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading domain health: %w", err)
	}
	return out, nil
}
