package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// IngestState returns the IMAP progress stored for a mailbox key: its
// UIDVALIDITY and the last UID fully processed. A mailbox never seen has
// both zero.
func (d *DB) IngestState(ctx context.Context, key string) (uidValidity, lastUID uint32, err error) {
	var v, l int64
	err = d.Pool.QueryRow(ctx, `SELECT uid_validity, last_uid FROM ingest_state WHERE mailbox = $1`, key).Scan(&v, &l)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("reading ingest state of %s: %w", key, err)
	}
	return uint32(v), uint32(l), nil
}

// SetIngestState stores the IMAP progress of a mailbox key.
func (d *DB) SetIngestState(ctx context.Context, key string, uidValidity, lastUID uint32) error {
	_, err := d.Pool.Exec(ctx, `INSERT INTO ingest_state (mailbox, uid_validity, last_uid, updated_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (mailbox) DO UPDATE SET uid_validity = EXCLUDED.uid_validity, last_uid = EXCLUDED.last_uid, updated_at = now()`,
		key, int64(uidValidity), int64(lastUID))
	if err != nil {
		return fmt.Errorf("storing ingest state of %s: %w", key, err)
	}
	return nil
}
