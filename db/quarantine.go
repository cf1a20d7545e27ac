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

// QuarantineKeepBytes is how much of an input the quarantine keeps. Real
// report mails that fail to parse are a few KiB to a few hundred KiB; an
// operator reads the start of one to see what it is. Anything longer is
// kept as this prefix with the SHA-256 and size of the whole, so that
// junk posted at the 10 MiB body limit costs 64 KiB, not 10 MiB (10 such
// posts added 100 MB before). A mail's whole original stays in the
// mailbox's quarantine folder.
const QuarantineKeepBytes = 64 << 10

// DefaultQuarantineMaxBytes is the default of DB.QuarantineMaxBytes.
const DefaultQuarantineMaxBytes = 256 << 20

// QuarantineEntry is an input that held no valid report, kept for the
// operator to read and reprocess.
type QuarantineEntry struct {
	ID     int64
	SHA256 []byte // of the whole input, also when only a prefix is kept
	Raw    []byte // only filled in by QuarantineGet; a prefix when Truncated
	Size   int    // of the whole input
	Kept   int    // bytes of it kept in Raw
	// Truncated says why Raw is not the whole input ("" when it is):
	// such an entry cannot be reprocessed.
	Truncated     string
	Reason        string
	Source        reports.Source
	SourceRef     string
	CreatedAt     time.Time
	ReprocessedAt *time.Time // set by QuarantineResolved
}

// Quarantine keeps raw (a message or a posted body) with the reason it was
// refused. The same bytes quarantined again are one entry: its id is
// returned and its reason updated to the latest one. Of an input over
// QuarantineKeepBytes only that prefix is kept; once the quarantine holds
// d.QuarantineMaxBytes, a new entry keeps no bytes, only the hash, size
// and reason of its input: a flood cannot evict the entries already kept
// (an operator's evidence) and costs its own rows only, until the
// retention removes them (QuarantineBefore).
func (d *DB) Quarantine(ctx context.Context, raw []byte, reason string, source reports.Source, ref string) (int64, error) {
	sum := sha256.Sum256(raw)
	keep, truncated := raw, ""
	if len(raw) > QuarantineKeepBytes {
		keep = raw[:QuarantineKeepBytes]
		truncated = fmt.Sprintf("only the first %d of %d bytes kept", QuarantineKeepBytes, len(raw))
	}
	var used int64
	if err := d.Pool.QueryRow(ctx, `SELECT coalesce(sum(octet_length(raw)), 0)::bigint FROM quarantine`).Scan(&used); err != nil {
		return 0, fmt.Errorf("quarantining %s: measuring the quarantine: %w", ref, classify(err))
	}
	if capBytes := d.quarantineMax(); used+int64(len(keep)) > capBytes {
		keep = nil
		truncated = fmt.Sprintf("no bytes kept: the quarantine holds %d bytes, its cap is %d", used, capBytes)
	}
	if keep == nil {
		keep = []byte{}
	}
	var id int64
	err := d.Pool.QueryRow(ctx, `INSERT INTO quarantine (sha256, raw, size, truncated, reason, source, source_ref)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (sha256) DO UPDATE SET reason = EXCLUDED.reason
		RETURNING id`, sum[:], keep, len(raw), truncated, clean(reason), string(source), clean(ref)).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("quarantining %s: %w", ref, classify(err))
	}
	return id, nil
}

func (d *DB) quarantineMax() int64 {
	if d.QuarantineMaxBytes > 0 {
		return d.QuarantineMaxBytes
	}
	return DefaultQuarantineMaxBytes
}

// QuarantineBefore deletes the entries quarantined before cutoff,
// reprocessed or not, and returns how many it deleted: the retention of
// the quarantine, applied daily by serve.
func (d *DB) QuarantineBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := d.Pool.Exec(ctx, `DELETE FROM quarantine WHERE created_at < $1`, cutoff)
	if err != nil {
		return 0, fmt.Errorf("deleting quarantine entries before %s: %w", cutoff.Format(time.DateOnly), err)
	}
	return tag.RowsAffected(), nil
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
	rows, err := d.Pool.Query(ctx, `SELECT id, sha256, size, octet_length(raw), truncated, reason, source, source_ref, created_at, reprocessed_at
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
	_, err = pgx.ForEachRow(rows, []any{&e.ID, &e.SHA256, &e.Size, &e.Kept, &e.Truncated, &e.Reason, &source, &e.SourceRef, &e.CreatedAt, &e.ReprocessedAt}, func() error {
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
	err := d.Pool.QueryRow(ctx, `SELECT sha256, raw, size, truncated, reason, source, source_ref, created_at, reprocessed_at
		FROM quarantine WHERE id = $1`, id).Scan(&e.SHA256, &e.Raw, &e.Size, &e.Truncated, &e.Reason, &source, &e.SourceRef, &e.CreatedAt, &e.ReprocessedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading quarantine entry %d: %w", id, err)
	}
	e.Source, e.Kept = reports.Source(source), len(e.Raw)
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
