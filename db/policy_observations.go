package db

import (
	"context"
	"fmt"
	"time"
)

// PolicyObservation is one policy id of a domain as the live inspector saw
// it: the body when the id was first seen and the latest one.
type PolicyObservation struct {
	Domain    string
	ID        string
	FirstBody string
	LastBody  string
	FirstSeen time.Time
	LastSeen  time.Time
}

// SeenPolicy records that domain served body under the policy id at time
// at and returns the body first seen under that id (body itself for a new
// id). It implements rollout.SeenStore for the id-not-changed check.
func (d *DB) SeenPolicy(ctx context.Context, domain, id, body string, at time.Time) (string, error) {
	var first string
	err := d.Pool.QueryRow(ctx, `INSERT INTO policy_observations (domain, policy_id, first_body, last_body, first_seen, last_seen)
		VALUES ($1, $2, $3, $3, $4, $4)
		ON CONFLICT (domain, policy_id) DO UPDATE SET last_body = excluded.last_body,
			last_seen = greatest(policy_observations.last_seen, excluded.last_seen)
		RETURNING first_body`,
		normDomain(domain), clean(id), clean(body), at).Scan(&first)
	if err != nil {
		return "", fmt.Errorf("recording policy %s of %s: %w", id, domain, err)
	}
	return first, nil
}

// PolicyObservations returns the policy ids seen for domain, the most
// recently seen first, at most limit of them.
func (d *DB) PolicyObservations(ctx context.Context, domain string, limit int) ([]PolicyObservation, error) {
	if limit <= 0 {
		limit = defaultPageSize
	}
	rows, err := d.Pool.Query(ctx, `SELECT domain, policy_id, first_body, last_body, first_seen, last_seen
		FROM policy_observations WHERE domain = $1 ORDER BY last_seen DESC, policy_id LIMIT $2`, normDomain(domain), limit)
	if err != nil {
		return nil, fmt.Errorf("listing policy observations of %s: %w", domain, err)
	}
	defer rows.Close()
	var out []PolicyObservation
	for rows.Next() {
		var o PolicyObservation
		if err := rows.Scan(&o.Domain, &o.ID, &o.FirstBody, &o.LastBody, &o.FirstSeen, &o.LastSeen); err != nil {
			return nil, fmt.Errorf("reading policy observations of %s: %w", domain, err)
		}
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing policy observations of %s: %w", domain, err)
	}
	return out, nil
}
