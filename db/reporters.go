package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/reports"
)

// trustTTL is how long a process keeps the operator's reporter rules
// before reading them again: a rule added by another process applies to
// reports stored from then on, within this time.
const trustTTL = 10 * time.Second

// trustCache holds the operator's reporter rules (table reporter_rules).
type trustCache struct {
	mu    sync.Mutex
	table reports.TrustTable
	at    time.Time
}

// ReporterRule is an operator's rule that verifies posted reports: a host
// domain whose verified reverse names may post the reports of Reporter,
// or a network whose posts are reports of Reporter.
type ReporterRule struct {
	ID         int64        `json:"id"`
	Kind       string       `json:"kind"` // "host" or "network"
	Reporter   string       `json:"reporter"`
	HostDomain string       `json:"host_domain,omitempty"`
	Network    netip.Prefix `json:"network,omitzero"`
	Note       string       `json:"note,omitempty"`
	CreatedBy  string       `json:"created_by"`
	CreatedAt  time.Time    `json:"created_at"`
}

// AuditDetail is the rule as the audit log records it (page, API and CLI
// alike).
func (r ReporterRule) AuditDetail() map[string]any {
	d := map[string]any{"id": r.ID, "kind": r.Kind, "reporter": r.Reporter, "note": r.Note}
	if r.HostDomain != "" {
		d["host_domain"] = r.HostDomain
	}
	if r.Network.IsValid() {
		d["network"] = r.Network.String()
	}
	return d
}

// ErrBadRule is a reporter rule that names no domain or network.
var ErrBadRule = errors.New("db: invalid reporter rule")

// AddReporterRule stores a rule; a rule equal to a stored one is not
// stored twice.
func (d *DB) AddReporterRule(ctx context.Context, r ReporterRule) (ReporterRule, error) {
	r.Reporter = reports.OrgDomain(r.Reporter)
	if r.Reporter == "" {
		return r, fmt.Errorf("%w: the reporter must be a domain (its organisational domain is used)", ErrBadRule)
	}
	var network *netip.Prefix
	switch r.Kind {
	case "host":
		r.HostDomain = reports.OrgDomain(r.HostDomain)
		if r.HostDomain == "" {
			return r, fmt.Errorf("%w: the host domain must be a domain", ErrBadRule)
		}
	case "network":
		if !r.Network.IsValid() {
			return r, fmt.Errorf("%w: the network must be an address prefix such as 192.0.2.0/24", ErrBadRule)
		}
		p := r.Network.Masked()
		network, r.HostDomain = &p, ""
	default:
		return r, fmt.Errorf("%w: kind %q, want host or network", ErrBadRule, r.Kind)
	}
	err := d.Pool.QueryRow(ctx, `INSERT INTO reporter_rules (kind, reporter, host_domain, network, note, created_by)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (kind, reporter, host_domain, coalesce(network, '0.0.0.0/32'::cidr)) DO UPDATE SET note = EXCLUDED.note
		RETURNING id, created_at`, r.Kind, r.Reporter, r.HostDomain, network, clean(r.Note), clean(r.CreatedBy)).Scan(&r.ID, &r.CreatedAt)
	if err != nil {
		return r, fmt.Errorf("storing the reporter rule: %w", err)
	}
	d.trust.mu.Lock()
	d.trust.at = time.Time{}
	d.trust.mu.Unlock()
	return r, nil
}

// DeleteReporterRule removes rule id and returns it, for the audit log;
// ok is false when there was none.
func (d *DB) DeleteReporterRule(ctx context.Context, id int64) (r ReporterRule, ok bool, err error) {
	var network *netip.Prefix
	err = d.Pool.QueryRow(ctx, `DELETE FROM reporter_rules WHERE id = $1
		RETURNING id, kind, reporter, host_domain, network, note, created_by, created_at`, id).
		Scan(&r.ID, &r.Kind, &r.Reporter, &r.HostDomain, &network, &r.Note, &r.CreatedBy, &r.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("deleting reporter rule %d: %w", id, err)
	}
	if network != nil {
		r.Network = *network
	}
	r.CreatedAt = r.CreatedAt.UTC()
	d.trust.mu.Lock()
	d.trust.at = time.Time{}
	d.trust.mu.Unlock()
	return r, true, nil
}

// ReporterRules lists the operator's rules, oldest first.
func (d *DB) ReporterRules(ctx context.Context) ([]ReporterRule, error) {
	rows, err := d.Pool.Query(ctx, `SELECT id, kind, reporter, host_domain, network, note, created_by, created_at
		FROM reporter_rules ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("listing reporter rules: %w", err)
	}
	out := []ReporterRule{}
	var r ReporterRule
	var network *netip.Prefix
	_, err = pgx.ForEachRow(rows, []any{&r.ID, &r.Kind, &r.Reporter, &r.HostDomain, &network, &r.Note, &r.CreatedBy, &r.CreatedAt}, func() error {
		r.Network = netip.Prefix{}
		if network != nil {
			r.Network = *network
		}
		r.CreatedAt = r.CreatedAt.UTC()
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing reporter rules: %w", err)
	}
	return out, nil
}

// trustTable is the operator's rules as reports.Attribute takes them,
// read at most every trustTTL.
func (d *DB) trustTable(ctx context.Context) (reports.TrustTable, error) {
	d.trust.mu.Lock()
	if !d.trust.at.IsZero() && time.Since(d.trust.at) < trustTTL {
		t := d.trust.table
		d.trust.mu.Unlock()
		return t, nil
	}
	d.trust.mu.Unlock()
	rules, err := d.ReporterRules(ctx)
	if err != nil {
		return reports.TrustTable{}, err
	}
	var t reports.TrustTable
	for _, r := range rules {
		switch r.Kind {
		case "host":
			t.Hosts = append(t.Hosts, reports.HostRule{Reporter: r.Reporter, HostDomain: r.HostDomain})
		case "network":
			t.Networks = append(t.Networks, reports.NetworkRule{Prefix: r.Network, Reporter: r.Reporter})
		}
	}
	d.trust.mu.Lock()
	d.trust.table, d.trust.at = t, time.Now()
	d.trust.mu.Unlock()
	return t, nil
}

// reporterOrName is the SQL expression of the reporter a rollup row
// counts for: its verified domain, or for a row stored before reporters
// were recorded, its organisation name (marked).
const reporterOrName = `CASE WHEN reporter <> '' THEN reporter ELSE 'name: ' || organization_name END`

// satSum is the SQL of a sum of bigint expr that saturates at the
// largest bigint instead of failing: PostgreSQL sums bigints as numeric,
// and a cast of more than 2^63-1 back to bigint is an error that would
// make a page answer 500.
func satSum(expr string) string {
	return "least(sum(" + expr + "), 9223372036854775807)::bigint"
}
