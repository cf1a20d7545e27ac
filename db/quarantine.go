package db

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/reports"
)

// QuarantineEntry is an input that held no valid report, kept for the
// operator to read and reprocess.
type QuarantineEntry struct {
	ID            int64
	SHA256        []byte
	Raw           []byte // only filled in by QuarantineGet
	Size          int
	Reason        string
	Source        reports.Source
	SourceRef     string
	CreatedAt     time.Time
	ReprocessedAt *time.Time // set by QuarantineResolved
}

// Quarantine keeps raw (a message or a posted body) with the reason it was
// refused. The same bytes quarantined again are one entry: its id is
// returned and its reason updated to the latest one.
func (d *DB) Quarantine(ctx context.Context, raw []byte, reason string, source reports.Source, ref string) (int64, error) {
	sum := sha256.Sum256(raw)
	var id int64
	err := d.Pool.QueryRow(ctx, `INSERT INTO quarantine (sha256, raw, reason, source, source_ref)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (sha256) DO UPDATE SET reason = EXCLUDED.reason
		RETURNING id`, sum[:], raw, clean(reason), string(source), clean(ref)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("quarantining %s: %w", ref, classify(err))
	}
	return id, nil
}

// QuarantineFilter selects entries for QuarantineList.
type QuarantineFilter struct {
	IncludeResolved bool // also entries marked reprocessed
	Limit, Offset   int  // default 50, at most 1000
}

// QuarantineList returns entries without their raw bytes, newest first.
func (d *DB) QuarantineList(ctx context.Context, f QuarantineFilter) ([]QuarantineEntry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	rows, err := d.Pool.Query(ctx, `SELECT id, sha256, octet_length(raw), reason, source, source_ref, created_at, reprocessed_at
		FROM quarantine WHERE $1 OR reprocessed_at IS NULL
		ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3`, f.IncludeResolved, limit, max(f.Offset, 0))
	if err != nil {
		return nil, fmt.Errorf("listing quarantine: %w", err)
	}
	var (
		out    []QuarantineEntry
		e      QuarantineEntry
		source string
	)
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.SHA256, &e.Size, &e.Reason, &source, &e.SourceRef, &e.CreatedAt, &e.ReprocessedAt}, func() error {
		e.Source = reports.Source(source)
		out = append(out, e)
		e = QuarantineEntry{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing quarantine: %w", err)
	}
	return out, nil
}

// QuarantineGet returns one entry with its raw bytes, or ErrNotFound.
func (d *DB) QuarantineGet(ctx context.Context, id int64) (*QuarantineEntry, error) {
	e := &QuarantineEntry{ID: id}
	var source string
	err := d.Pool.QueryRow(ctx, `SELECT sha256, raw, reason, source, source_ref, created_at, reprocessed_at
		FROM quarantine WHERE id = $1`, id).Scan(&e.SHA256, &e.Raw, &e.Reason, &source, &e.SourceRef, &e.CreatedAt, &e.ReprocessedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading quarantine entry %d: %w", id, err)
	}
	e.Source, e.Size = reports.Source(source), len(e.Raw)
	return e, nil
}

// QuarantineDelete removes an entry, or returns ErrNotFound.
func (d *DB) QuarantineDelete(ctx context.Context, id int64) error {
	tag, err := d.Pool.Exec(ctx, `DELETE FROM quarantine WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("deleting quarantine entry %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// QuarantineResolved marks an entry as reprocessed at the given time (its
// reports are now stored), or returns ErrNotFound.
func (d *DB) QuarantineResolved(ctx context.Context, id int64, at time.Time) error {
	tag, err := d.Pool.Exec(ctx, `UPDATE quarantine SET reprocessed_at = $2 WHERE id = $1`, id, at)
	if err != nil {
		return fmt.Errorf("resolving quarantine entry %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
