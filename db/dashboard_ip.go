package db

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// sendingIPBreakdown is Breakdown by BySendingIP: the trusted failed
// sessions of domain in [from, to) per sending IP, largest first, at most
// limit rows. It reads daily_ip_rollups (migration 060), so its cost
// follows the window, not the raw history; the key is host() of the
// address, else the sender's text, and OtherSendingIPs sums the addresses
// beyond MaxSendingIPsPerDay of a day.
func (d *DB) sendingIPBreakdown(ctx context.Context, domain string, from, to time.Time, limit int) ([]BreakdownRow, error) {
	rows, err := d.reader(ctx).Query(ctx, `SELECT sending_ip, least(sum(failed), 9223372036854775807)::bigint FROM daily_ip_rollups
		WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $4`, normDomain(domain), from, to, limitRows(limit))
	if err != nil {
		return nil, fmt.Errorf("breaking down failures of %s by %s: %w", domain, BySendingIP, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BreakdownRow, error) {
		var b BreakdownRow
		err := r.Scan(&b.Key, &b.Failed)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("breaking down failures of %s by %s: %w", domain, BySendingIP, err)
	}
	return out, nil
}
