package db

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrExcluded is an exclusion of a report that is excluded already, or
// an inclusion of one that is not.
var ErrExcluded = errors.New("db: report already in that state")

// ExcludeReport takes report id back from every count: its totals leave
// the daily rollups (and so the overview, the charts and the verdict) in
// the same transaction that marks it excluded by actor for reason. The
// report stays stored and shown, marked. Excluding it twice is
// ErrExcluded; a missing report is ErrNotFound.
func (d *DB) ExcludeReport(ctx context.Context, id int64, actor, reason string, at time.Time) error {
	return pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		day, excluded, err := lockReport(ctx, tx, id)
		if err != nil {
			return err
		}
		if excluded {
			return fmt.Errorf("excluding report %d: %w", id, ErrExcluded)
		}
		if err := adjustRollups(ctx, tx, id, day, -1); err != nil {
			return fmt.Errorf("excluding report %d: %w", id, err)
		}
		_, err = tx.Exec(ctx, `UPDATE reports SET excluded_at = $3, excluded_by = $4, excluded_reason = $5
			WHERE id = $1 AND day = $2`, id, day, at, clean(actor), clean(reason))
		if err != nil {
			return fmt.Errorf("excluding report %d: %w", id, err)
		}
		return nil
	})
}

// IncludeReport undoes ExcludeReport: the report counts again.
func (d *DB) IncludeReport(ctx context.Context, id int64) error {
	return pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		day, excluded, err := lockReport(ctx, tx, id)
		if err != nil {
			return err
		}
		if !excluded {
			return fmt.Errorf("including report %d: %w", id, ErrExcluded)
		}
		if err := adjustRollups(ctx, tx, id, day, 1); err != nil {
			return fmt.Errorf("including report %d: %w", id, err)
		}
		_, err = tx.Exec(ctx, `UPDATE reports SET excluded_at = NULL, excluded_by = '', excluded_reason = ''
			WHERE id = $1 AND day = $2`, id, day)
		if err != nil {
			return fmt.Errorf("including report %d: %w", id, err)
		}
		return nil
	})
}

// DeleteReport removes report id with its policies and failure details;
// a report that still counts leaves the rollups first. The same report
// sent again is stored again.
func (d *DB) DeleteReport(ctx context.Context, id int64) error {
	return pgx.BeginFunc(ctx, d.Pool, func(tx pgx.Tx) error {
		day, excluded, err := lockReport(ctx, tx, id)
		if err != nil {
			return err
		}
		if !excluded {
			if err := adjustRollups(ctx, tx, id, day, -1); err != nil {
				return fmt.Errorf("deleting report %d: %w", id, err)
			}
		}
		for _, q := range []string{
			`DELETE FROM failure_details WHERE report_id = $1 AND day = $2`,
			`DELETE FROM report_policies WHERE report_id = $1 AND day = $2`,
			`DELETE FROM reports WHERE id = $1 AND day = $2`,
		} {
			if _, err := tx.Exec(ctx, q, id, day); err != nil {
				return fmt.Errorf("deleting report %d: %w", id, err)
			}
		}
		return nil
	})
}

// lockReport locks report id's row and returns its day (its partition)
// and whether it is excluded.
func lockReport(ctx context.Context, tx pgx.Tx, id int64) (day time.Time, excluded bool, err error) {
	err = tx.QueryRow(ctx, `SELECT day, excluded_at IS NOT NULL FROM reports WHERE id = $1 FOR UPDATE`, id).Scan(&day, &excluded)
	if errors.Is(err, pgx.ErrNoRows) {
		return day, false, fmt.Errorf("report %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return day, false, fmt.Errorf("reading report %d: %w", id, err)
	}
	return day.UTC(), excluded, nil
}

// adjustRollups adds (sign 1) or subtracts (sign -1) report id's
// contribution to the five daily rollups: the same keys and sums the
// insert made (storeChildren), computed from the stored rows.
func adjustRollups(ctx context.Context, tx pgx.Tx, id int64, day time.Time, sign int64) error {
	var org, reporter string
	var trusted bool
	if err := tx.QueryRow(ctx, `SELECT organization_name, trusted, reporter FROM reports WHERE id = $1 AND day = $2`,
		id, day).Scan(&org, &trusted, &reporter); err != nil {
		return err
	}
	ru := childRollups{
		pols:    map[policyKey]*policyTotals{},
		fails:   map[failureKey]int64{},
		modes:   map[modeKey]*modeTotals{},
		senders: map[senderKey]*senderTotals{},
		ips:     map[ipKey]int64{},
	}
	rows, err := tx.Query(ctx, `SELECT id, policy_type, policy_domain, policy_strings, successful, failed
		FROM report_policies WHERE report_id = $1 AND day = $2 ORDER BY position`, id, day)
	if err != nil {
		return err
	}
	var (
		pid                  int64
		typ, domain          string
		strs                 []string
		successful, failures int64
	)
	var modesCounted []modeKey
	_, err = pgx.ForEachRow(rows, []any{&pid, &typ, &domain, &strs, &successful, &failures}, func() error {
		k := policyKey{domain, day, org, typ, trusted, reporter}
		t := ru.pols[k]
		if t == nil {
			// A report counts once per key (storeChildren).
			t = &policyTotals{reports: sign}
			ru.pols[k] = t
		}
		t.successful += sign * successful
		t.failed += sign * failures
		if typ == "sts" {
			modesCounted = ru.addMode(modeKey{domain, day, policyMode(strs), trusted}, pid, sign, modesCounted)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `SELECT d.id, p.policy_domain, d.result_type, d.sending_mta_ip, d.sending_mta_ip_text,
			d.receiving_mx_hostname, d.failed_session_count
		FROM failure_details d JOIN report_policies p ON p.id = d.policy_id AND p.day = d.day
		WHERE d.report_id = $1 AND d.day = $2`, id, day)
	if err != nil {
		return err
	}
	var (
		did                  int64
		result, sendText, mx string
		sendIP               *netip.Addr
		count                int64
	)
	_, err = pgx.ForEachRow(rows, []any{&did, &domain, &result, &sendIP, &sendText, &mx, &count}, func() error {
		fk := failureKey{domain, day, result, normDomain(mx), trusted}
		ru.fails[fk] += sign * count
		var ip netip.Addr
		ik := ipKey{domain: domain, day: day, trusted: trusted, text: sendText}
		if sendIP != nil {
			ip, ik.ip, ik.text = *sendIP, *sendIP, ""
		}
		sk := senderKey{domain, day, org, ip, result, trusted, reporter}
		st := ru.senders[sk]
		if st == nil {
			st = &senderTotals{}
			ru.senders[sk] = st
		}
		st.failed += sign * count
		st.lastID = max(st.lastID, did)
		ru.ips[ik] += sign * count
		return nil
	})
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	queuePolicyRollups(b, ru.pols)
	queueFailureRollups(b, ru.fails)
	queueModeRollups(b, ru.modes)
	queueSenderRollups(b, ru.senders)
	queueIPRollups(b, ru.ips)
	return tx.SendBatch(ctx, b).Close()
}

// reportersMigration is the migration that made a reporter a verified
// domain (085_reporters.sql).
const reportersMigration = 85

// reattributeLegacy applies the reporter rules to the HTTPS reports
// stored before migration 085, when every post counted: none of them had
// its poster's reverse name checked, so each becomes unverified, its
// totals moved from the trusted side of the rollups to the other, one
// report per transaction. Once done, the query finds nothing (a partial
// index of what is left).
func reattributeLegacy(ctx context.Context, conn *pgx.Conn) error {
	for {
		rows, err := conn.Query(ctx, `SELECT id, day FROM reports
			WHERE source = 'https' AND trusted AND reporter_method = '' ORDER BY id LIMIT 500`)
		if err != nil {
			return err
		}
		type ref struct {
			id  int64
			day time.Time
		}
		var todo []ref
		var r ref
		if _, err := pgx.ForEachRow(rows, []any{&r.id, &r.day}, func() error {
			todo = append(todo, ref{r.id, r.day.UTC()})
			return nil
		}); err != nil {
			return err
		}
		if len(todo) == 0 {
			return nil
		}
		for _, r := range todo {
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				var excluded bool
				if err := tx.QueryRow(ctx, `SELECT excluded_at IS NOT NULL FROM reports WHERE id = $1 AND day = $2 FOR UPDATE`,
					r.id, r.day).Scan(&excluded); err != nil {
					return err
				}
				if !excluded {
					if err := adjustRollups(ctx, tx, r.id, r.day, -1); err != nil {
						return err
					}
				}
				if _, err := tx.Exec(ctx, `UPDATE reports SET trusted = false WHERE id = $1 AND day = $2`, r.id, r.day); err != nil {
					return err
				}
				if !excluded {
					return adjustRollups(ctx, tx, r.id, r.day, 1)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("report %d: %w", r.id, err)
			}
		}
	}
}
