package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Probe is one stored probe of a domain (migration 095): the live check
// with the STARTTLS probe of its MX hosts.
type Probe struct {
	ID       int64
	Domain   string
	ProbedAt time.Time
	// Cause is ProbeDaily or ProbeRequest.
	Cause  string
	Result rollout.CheckResult
	// Alerts are what got worse since the probe before (rollout.CertAlerts).
	Alerts      []string
	NotifiedAt  *time.Time
	NotifyError string
}

// Probe causes.
const (
	ProbeDaily   = "daily"
	ProbeRequest = "request"
)

// probeKeepDays bounds the history: older probes are deleted when a new
// one is stored.
const probeKeepDays = 400

// SaveProbe stores a probe and deletes the domain's probes older than
// probeKeepDays; it returns the probe's id.
func (d *DB) SaveProbe(ctx context.Context, p Probe) (int64, error) {
	b, err := json.Marshal(p.Result)
	if err != nil {
		return 0, fmt.Errorf("encoding the probe of %s: %w", p.Domain, err)
	}
	alerts := p.Alerts
	if alerts == nil {
		alerts = []string{}
	}
	var id int64
	err = pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO mx_probes (domain, probed_at, cause, result, alerts) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			p.Domain, p.ProbedAt, p.Cause, b, alerts).Scan(&id); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM mx_probes WHERE domain = $1 AND probed_at < $2`, p.Domain, p.ProbedAt.AddDate(0, 0, -probeKeepDays))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("storing the probe of %s: %w", p.Domain, err)
	}
	return id, nil
}

// MarkProbeNotified records that the probe's alerts were sent (msg is the
// error, if sending failed).
func (d *DB) MarkProbeNotified(ctx context.Context, id int64, at time.Time, msg string) error {
	tag, err := d.Pool.Exec(ctx, `UPDATE mx_probes SET notified_at = $2, notify_error = $3 WHERE id = $1`, id, at, msg)
	if err != nil {
		return fmt.Errorf("marking probe %d notified: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// LatestProbe returns the domain's newest probe, ErrNotFound without one.
func (d *DB) LatestProbe(ctx context.Context, domain string) (Probe, error) {
	ps, err := d.Probes(ctx, domain, time.Time{}, 1)
	if err != nil {
		return Probe{}, err
	}
	if len(ps) == 0 {
		return Probe{}, ErrNotFound
	}
	return ps[0], nil
}

// maxProbes bounds what Probes returns.
const maxProbes = 1000

// Probes returns the domain's probes since since, newest first, at most
// limit (and maxProbes).
func (d *DB) Probes(ctx context.Context, domain string, since time.Time, limit int) ([]Probe, error) {
	if limit <= 0 || limit > maxProbes {
		limit = maxProbes
	}
	rows, err := d.Pool.Query(ctx, `SELECT id, domain, probed_at, cause, result, alerts, notified_at, notify_error
FROM mx_probes WHERE domain = $1 AND probed_at >= $2 ORDER BY probed_at DESC, id DESC LIMIT $3`, domain, since, limit)
	if err != nil {
		return nil, fmt.Errorf("reading the probes of %s: %w", domain, err)
	}
	defer rows.Close()
	var out []Probe
	for rows.Next() {
		var p Probe
		var raw []byte
		if err := rows.Scan(&p.ID, &p.Domain, &p.ProbedAt, &p.Cause, &raw, &p.Alerts, &p.NotifiedAt, &p.NotifyError); err != nil {
			return nil, fmt.Errorf("reading the probes of %s: %w", domain, err)
		}
		if err := json.Unmarshal(raw, &p.Result); err != nil {
			return nil, fmt.Errorf("decoding probe %d of %s: %w", p.ID, domain, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the probes of %s: %w", domain, err)
	}
	return out, nil
}
