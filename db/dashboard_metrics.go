package db

import (
	"context"
	"fmt"
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
	rows, err := d.Pool.Query(ctx, `SELECT source, trusted, count(*) FROM reports GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $1`, maxMetricsSeries)
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
	if err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM quarantine WHERE reprocessed_at IS NULL`).Scan(&m.Quarantined); err != nil {
		return nil, fmt.Errorf("counting quarantine: %w", err)
	}
	rows, err = d.Pool.Query(ctx, `
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
	rows, err = d.Pool.Query(ctx, `
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
