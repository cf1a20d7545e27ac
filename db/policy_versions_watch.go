package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// WatchEpisode is one regression episode of an enforcing domain: open from
// the first poll that found the regression to the first that did not.
type WatchEpisode struct {
	ID     int64
	Domain string
	// VersionSeq is the policy version watched (0 for old episodes).
	VersionSeq  int64
	OpenedAt    time.Time
	ClosedAt    *time.Time
	NotifiedAt  *time.Time
	NotifyError string
}

// OpenWatchEpisode opens a regression episode of version seq of domain at
// at, unless one of that version is open; an open episode of another
// version is closed first (a new version is watched afresh). It returns
// the open episode and whether it was opened now.
func (d *DB) OpenWatchEpisode(ctx context.Context, domain string, seq int64, at time.Time, detail any) (WatchEpisode, bool, error) {
	b, err := json.Marshal(detail)
	if err != nil {
		return WatchEpisode{}, false, fmt.Errorf("encoding the episode of %s: %w", domain, err)
	}
	domain = normDomain(domain)
	if _, err := d.Pool.Exec(ctx, `UPDATE watch_episodes SET closed_at = $3
		WHERE domain = $1 AND closed_at IS NULL AND version_seq IS DISTINCT FROM $2`, domain, seq, at); err != nil {
		return WatchEpisode{}, false, fmt.Errorf("closing the episode of an older version of %s: %w", domain, err)
	}
	tag, err := d.Pool.Exec(ctx, `INSERT INTO watch_episodes (domain, version_seq, opened_at, detail) VALUES ($1, $2, $3, $4)
		ON CONFLICT (domain) WHERE closed_at IS NULL DO NOTHING`, domain, seq, at, string(b))
	if err != nil {
		return WatchEpisode{}, false, fmt.Errorf("opening the episode of %s: %w", domain, err)
	}
	var e WatchEpisode
	var vs *int64
	err = d.Pool.QueryRow(ctx, `SELECT id, domain, version_seq, opened_at, closed_at, notified_at, notify_error
		FROM watch_episodes WHERE domain = $1 AND closed_at IS NULL`, domain).
		Scan(&e.ID, &e.Domain, &vs, &e.OpenedAt, &e.ClosedAt, &e.NotifiedAt, &e.NotifyError)
	if err != nil {
		return e, false, fmt.Errorf("reading the episode of %s: %w", domain, err)
	}
	if vs != nil {
		e.VersionSeq = *vs
	}
	return e, tag.RowsAffected() == 1, nil
}

// MarkEpisodeNotified records the notification of episode id: at on
// success, or the error (the next poll tries again).
func (d *DB) MarkEpisodeNotified(ctx context.Context, id int64, at time.Time, notifyErr string) error {
	var err error
	if notifyErr != "" {
		_, err = d.Pool.Exec(ctx, `UPDATE watch_episodes SET notify_error = $2 WHERE id = $1`, id, clean(notifyErr))
	} else {
		_, err = d.Pool.Exec(ctx, `UPDATE watch_episodes SET notified_at = $2, notify_error = '' WHERE id = $1`, id, at)
	}
	if err != nil {
		return fmt.Errorf("marking episode %d notified: %w", id, err)
	}
	return nil
}

// CloseWatchEpisode closes the open episode of domain, if any; closed tells
// whether one was open.
func (d *DB) CloseWatchEpisode(ctx context.Context, domain string, at time.Time) (bool, error) {
	tag, err := d.Pool.Exec(ctx, `UPDATE watch_episodes SET closed_at = $2 WHERE domain = $1 AND closed_at IS NULL`,
		normDomain(domain), at)
	if err != nil {
		return false, fmt.Errorf("closing the episode of %s: %w", domain, err)
	}
	return tag.RowsAffected() == 1, nil
}
