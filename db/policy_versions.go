package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// ErrIDUsed is returned when a new policy version would reuse an id the
// domain published before (RFC 8461 §3.1: senders refetch only on a new
// id).
var ErrIDUsed = errors.New("db: policy id used before")

// PolicyVersion is one policy tlsrpt published (or is publishing) for a
// domain, with its publishing steps.
type PolicyVersion struct {
	Seq        int64
	Domain     string
	Kind       string // rollout.KindPromote, ...
	Policy     rollout.Policy
	ID         string
	Body       string
	PrevMaxAge int64
	CreatedBy  string
	Reason     string
	Override   bool
	// Evidence is the JSON of the verdict when the version was made.
	Evidence  json.RawMessage
	CreatedAt time.Time

	PolicyMethod      string // "hosted" or "download"
	PolicyPublishedAt *time.Time
	RecordMethod      string // "rfc2136", "cloudflare", "hetzner" or "manual"
	RecordPublishedAt *time.Time
	RecordError       string
	VerifiedAt        *time.Time
	Steps             []rollout.Step
	LastCheckedAt     *time.Time
}

// SafeAfter is when no sender can still hold the policy this version
// replaced (rollout.SafeAfter from its live verification), for the kinds
// whose next step waits for that: a retirement and an MX move. It is nil
// for other kinds and before the version is verified live.
func (v PolicyVersion) SafeAfter() *time.Time {
	if (v.Kind != rollout.KindRetire && v.Kind != rollout.KindMXMove) || v.VerifiedAt == nil {
		return nil
	}
	t := rollout.SafeAfter(*v.VerifiedAt, v.PrevMaxAge)
	return &t
}

const versionColumns = `seq, domain, kind, mode, mx, max_age, policy_id, body, prev_max_age, created_by,
	reason, override, evidence, created_at, policy_method, policy_published_at, record_method,
	record_published_at, record_error, verified_at, last_steps, last_checked_at`

// maxVersions bounds a history read.
const maxVersions = 500

func scanVersion(row pgx.Row) (PolicyVersion, error) {
	var (
		v        PolicyVersion
		mode     string
		evidence []byte
		steps    []byte
	)
	err := row.Scan(&v.Seq, &v.Domain, &v.Kind, &mode, &v.Policy.MX, &v.Policy.MaxAge, &v.ID, &v.Body,
		&v.PrevMaxAge, &v.CreatedBy, &v.Reason, &v.Override, &evidence, &v.CreatedAt, &v.PolicyMethod,
		&v.PolicyPublishedAt, &v.RecordMethod, &v.RecordPublishedAt, &v.RecordError, &v.VerifiedAt,
		&steps, &v.LastCheckedAt)
	if err != nil {
		return v, err
	}
	v.Policy.Mode = rollout.Mode(mode)
	v.Evidence = json.RawMessage(evidence)
	if err := json.Unmarshal(steps, &v.Steps); err != nil {
		return v, fmt.Errorf("decoding steps of version %d: %w", v.Seq, err)
	}
	return v, nil
}

// AddPolicyVersion stores a new version of v.Domain and returns it with its
// sequence number and creation time. PrevMaxAge is filled from the history
// when zero. It fails with ErrIDUsed when the domain used the id before.
func (d *DB) AddPolicyVersion(ctx context.Context, v PolicyVersion) (PolicyVersion, error) {
	v.Domain = normDomain(v.Domain)
	if err := v.Policy.Validate(); err != nil {
		return v, fmt.Errorf("adding policy version of %s: %w", v.Domain, err)
	}
	if err := rollout.ValidID(v.ID); err != nil {
		return v, fmt.Errorf("adding policy version of %s: %w", v.Domain, err)
	}
	evidence := v.Evidence
	if len(evidence) == 0 {
		evidence = json.RawMessage("{}")
	}
	mx := v.Policy.MX
	if mx == nil {
		mx = []string{}
	}
	row := d.Pool.QueryRow(ctx, `INSERT INTO policy_versions (domain, kind, mode, mx, max_age, policy_id, body,
			prev_max_age, created_by, reason, override, evidence, policy_method, record_method)
		VALUES ($1, $2, $3, $4, $5, $6, $7,
			CASE WHEN $8 > 0 THEN $8 ELSE coalesce((SELECT max(max_age) FROM policy_versions WHERE domain = $1), 0) END,
			$9, $10, $11, $12, $13, $14)
		RETURNING `+versionColumns,
		v.Domain, v.Kind, string(v.Policy.Mode), mx, v.Policy.MaxAge, v.ID, v.Policy.String(),
		v.PrevMaxAge, clean(v.CreatedBy), clean(v.Reason), v.Override, string(evidence), v.PolicyMethod, v.RecordMethod)
	out, err := scanVersion(row)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" {
		return v, fmt.Errorf("adding policy version of %s: %w: %s", v.Domain, ErrIDUsed, v.ID)
	}
	if err != nil {
		return v, fmt.Errorf("adding policy version of %s: %w", v.Domain, err)
	}
	return out, nil
}

// PolicyVersions returns the versions of domain, newest first, at most
// limit (bounded by 500).
func (d *DB) PolicyVersions(ctx context.Context, domain string, limit int) ([]PolicyVersion, error) {
	if limit <= 0 || limit > maxVersions {
		limit = maxVersions
	}
	rows, err := d.Pool.Query(ctx, `SELECT `+versionColumns+` FROM policy_versions
		WHERE domain = $1 ORDER BY seq DESC LIMIT $2`, normDomain(domain), limit)
	if err != nil {
		return nil, fmt.Errorf("listing policy versions of %s: %w", domain, err)
	}
	defer rows.Close()
	var out []PolicyVersion
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, fmt.Errorf("reading policy versions of %s: %w", domain, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing policy versions of %s: %w", domain, err)
	}
	return out, nil
}

// LatestPolicyVersion returns the newest version of domain, ErrNotFound
// when there is none.
func (d *DB) LatestPolicyVersion(ctx context.Context, domain string) (PolicyVersion, error) {
	v, err := scanVersion(d.Pool.QueryRow(ctx, `SELECT `+versionColumns+` FROM policy_versions
		WHERE domain = $1 ORDER BY seq DESC LIMIT 1`, normDomain(domain)))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("reading the latest policy version of %s: %w", domain, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("reading the latest policy version of %s: %w", domain, err)
	}
	return v, nil
}

// HostedPolicy returns the version whose policy file tlsrpt serves for
// domain: the newest hosted version whose policy step is published;
// ErrNotFound when tlsrpt serves none.
func (d *DB) HostedPolicy(ctx context.Context, domain string) (PolicyVersion, error) {
	v, err := scanVersion(d.Pool.QueryRow(ctx, `SELECT `+versionColumns+` FROM policy_versions
		WHERE domain = $1 AND policy_method = 'hosted' AND policy_published_at IS NOT NULL
		ORDER BY seq DESC LIMIT 1`, normDomain(domain)))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("reading the hosted policy of %s: %w", domain, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("reading the hosted policy of %s: %w", domain, err)
	}
	return v, nil
}

// HostedDomains returns the domains for which tlsrpt serves a policy file
// (for the certificate policy of the policy host), in name order.
func (d *DB) HostedDomains(ctx context.Context) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT DISTINCT domain FROM policy_versions
		WHERE policy_method = 'hosted' AND policy_published_at IS NOT NULL ORDER BY domain LIMIT 10000`)
	if err != nil {
		return nil, fmt.Errorf("listing hosted domains: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing hosted domains: %w", err)
	}
	return out, nil
}

// MarkPolicyPublished records that the policy file of version seq is
// served from at on.
func (d *DB) MarkPolicyPublished(ctx context.Context, seq int64, at time.Time) error {
	return d.execVersion(ctx, seq, "marking the policy published", `UPDATE policy_versions
		SET policy_published_at = coalesce(policy_published_at, $2) WHERE seq = $1`, at)
}

// MarkRecordPublished records the outcome of pushing the TXT record of
// version seq: at on success, or the error (the step is retried).
func (d *DB) MarkRecordPublished(ctx context.Context, seq int64, at time.Time, pushErr string) error {
	if pushErr != "" {
		return d.execVersion(ctx, seq, "recording the record error", `UPDATE policy_versions
			SET record_error = $2 WHERE seq = $1`, clean(pushErr))
	}
	return d.execVersion(ctx, seq, "marking the record published", `UPDATE policy_versions
		SET record_published_at = coalesce(record_published_at, $2), record_error = '' WHERE seq = $1`, at)
}

// SetVersionSteps stores the steps of a verification poll of version seq
// at time at; when every step is done the version is verified (the first
// time only).
func (d *DB) SetVersionSteps(ctx context.Context, seq int64, steps []rollout.Step, at time.Time) error {
	b, err := json.Marshal(steps)
	if err != nil {
		return fmt.Errorf("encoding steps of version %d: %w", seq, err)
	}
	return d.execVersion(ctx, seq, "storing the verification", `UPDATE policy_versions
		SET last_steps = $2, last_checked_at = $3,
			verified_at = CASE WHEN $4 THEN coalesce(verified_at, $3) ELSE verified_at END
		WHERE seq = $1`, string(b), at, rollout.StepsDone(steps))
}

func (d *DB) execVersion(ctx context.Context, seq int64, what, sql string, args ...any) error {
	tag, err := d.Pool.Exec(ctx, sql, append([]any{seq}, args...)...)
	if err != nil {
		return fmt.Errorf("%s of version %d: %w", what, seq, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s of version %d: %w", what, seq, ErrNotFound)
	}
	return nil
}

// EnforcedDomains returns the domains whose newest version is in mode
// enforce: the ones the post-enforce watch looks at.
func (d *DB) EnforcedDomains(ctx context.Context) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT domain FROM (
			SELECT DISTINCT ON (domain) domain, mode FROM policy_versions ORDER BY domain, seq DESC
		) v WHERE mode = 'enforce' ORDER BY domain LIMIT 10000`)
	if err != nil {
		return nil, fmt.Errorf("listing enforced domains: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing enforced domains: %w", err)
	}
	return out, nil
}
