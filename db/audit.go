package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one line of the audit log: who did what to which domain.
type AuditEntry struct {
	ID     int64
	At     time.Time // set by the database when zero
	Actor  string    // user name, "cli", or the component
	Action string    // e.g. "domain.add", "promote", "override"
	Domain string
	// Detail is any JSON-encodable value (evidence, typed confirmation).
	Detail any
}

// AddAudit appends an entry to the audit log and returns its id.
func (d *DB) AddAudit(ctx context.Context, e AuditEntry) (int64, error) {
	detail := []byte("{}")
	if e.Detail != nil {
		var err error
		if detail, err = json.Marshal(e.Detail); err != nil {
			return 0, fmt.Errorf("encoding audit detail of %s: %w", e.Action, err)
		}
	}
	var at any
	if !e.At.IsZero() {
		at = e.At
	}
	var id int64
	err := d.Pool.QueryRow(ctx, `INSERT INTO audit_log (at, actor, action, domain, detail)
		VALUES (coalesce($1, now()), $2, $3, $4, $5) RETURNING id`,
		at, clean(e.Actor), clean(e.Action), clean(e.Domain), string(detail)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("adding audit entry %s: %w", e.Action, err)
	}
	return id, nil
}

// AuditLog returns the latest entries, newest first, for one domain or
// (domain "") for all; Detail holds the stored JSON as json.RawMessage.
func (d *DB) AuditLog(ctx context.Context, domain string, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	rows, err := d.Pool.Query(ctx, `SELECT id, at, actor, action, domain, detail FROM audit_log
		WHERE $1 = '' OR domain = $1 ORDER BY at DESC, id DESC LIMIT $2`, domain, limit)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	var (
		out    []AuditEntry
		e      AuditEntry
		detail []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.At, &e.Actor, &e.Action, &e.Domain, &detail}, func() error {
		e.Detail = json.RawMessage(append([]byte(nil), detail...))
		out = append(out, e)
		e = AuditEntry{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	return out, nil
}
