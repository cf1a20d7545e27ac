package db

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tlsrpt/tlsrpt/rollout"
)

// maxExamples bounds the example failure details the facts carry: one per
// result type and reporting organisation, newest day first.
const maxExamples = 20

// excludedReason says why unverified reports are left out (reports.Attribute).
const excludedReason = "unverified reporter: mailed without a DKIM signature aligned with From, or posted over HTTPS from an address whose reverse DNS does not confirm the report's contact-info domain (docs/reporters.md)"

// Facts gathers what the readiness verdict needs about domain as seen at
// at: the trusted sts totals per day and reporter, failures per result
// type and MX, per sending range, examples, the untrusted reports left
// out, for the spanDays UTC days before the day of at (that day is not
// over and is left out); and, from up to rollout.ModeHistoryDays days, the
// modes the policy-strings show and the newest policy-string as the
// current policy (Source reports; the caller replaces it with the live
// policy when it has one). Every query reads the daily rollups of the
// window (plus the examples by primary key), so the cost follows the
// window, not the history. The queries run in one read-only snapshot.
func (d *DB) Facts(ctx context.Context, domain string, at time.Time, spanDays int) (rollout.Facts, error) {
	domain = normDomain(domain)
	spanDays = min(max(spanDays, 1), rollout.ModeHistoryDays)
	day := rollout.UTCDay(at)
	from := day.AddDate(0, 0, -spanDays)
	modeFrom := day.AddDate(0, 0, -rollout.ModeHistoryDays)
	f := rollout.Facts{Domain: domain, At: at, SpanDays: spanDays,
		Policy: rollout.CurrentPolicy{Source: rollout.PolicySourceNone}}
	wrap := func(what string, err error) error {
		return fmt.Errorf("reading the verdict facts of %s (%s): %w", domain, what, err)
	}

	tx, err := d.reader(ctx).BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return f, wrap("starting", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // read-only; the commit below reports errors

	b := &pgx.Batch{}
	// Reporters are verified domains, not the free-text names: one
	// signer claiming three names is one reporter (reporters.go).
	b.Queue(`SELECT day, `+reporterOrName+`, `+satSum("reports")+`, `+satSum("successful")+`, `+satSum("failed")+`
		FROM daily_policy_rollups
		WHERE policy_domain = $1 AND policy_type = 'sts' AND trusted AND day >= $2 AND day < $3
		GROUP BY 1, 2 ORDER BY 1, 2`, domain, from, day).Query(func(rows pgx.Rows) error {
		var r rollout.ReporterDay
		_, err := pgx.ForEachRow(rows, []any{&r.Day, &r.Organization, &r.Reports, &r.Successes, &r.Failures}, func() error {
			r.Day = r.Day.UTC()
			f.Reporters = append(f.Reporters, r)
			if n := len(f.Days); n > 0 && f.Days[n-1].Day.Equal(r.Day) {
				f.Days[n-1].Reports = satAdd(f.Days[n-1].Reports, r.Reports)
				f.Days[n-1].Successes = satAdd(f.Days[n-1].Successes, r.Successes)
				f.Days[n-1].Failures = satAdd(f.Days[n-1].Failures, r.Failures)
			} else {
				f.Days = append(f.Days, rollout.DayFacts{Day: r.Day, Reports: r.Reports, Successes: r.Successes, Failures: r.Failures})
			}
			return nil
		})
		return wrapIf("reporters", err, wrap)
	})
	b.Queue(`SELECT day, result_type, receiving_mx, failed FROM daily_failure_rollups
		WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3 AND failed > 0
		ORDER BY day, result_type, receiving_mx`, domain, from, day).Query(func(rows pgx.Rows) error {
		var c rollout.FailureCount
		_, err := pgx.ForEachRow(rows, []any{&c.Day, &c.ResultType, &c.MX, &c.Failures}, func() error {
			c.Day = c.Day.UTC()
			f.Failures = append(f.Failures, c)
			return nil
		})
		return wrapIf("failures", err, wrap)
	})
	b.Queue(`SELECT day, `+reporterOrName+`, sending_range, `+satSum("failed")+` FROM daily_sender_rollups
		WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3 AND failed > 0
		GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3 LIMIT $4`,
		domain, from, day, rollout.MaxSenderGroups+1).Query(func(rows pgx.Rows) error {
		var s rollout.SenderFailures
		var rng string
		_, err := pgx.ForEachRow(rows, []any{&s.Day, &s.Organization, &rng, &s.Failures}, func() error {
			if len(f.Senders) == rollout.MaxSenderGroups {
				f.SendersTruncated = true
				return nil
			}
			s.Day = s.Day.UTC()
			s.Range = netip.Prefix{}
			if rng != "" {
				p, err := netip.ParsePrefix(rng)
				if err != nil {
					return fmt.Errorf("parsing sending range %q: %w", rng, err)
				}
				s.Range = p
			}
			f.Senders = append(f.Senders, s)
			return nil
		})
		return wrapIf("senders", err, wrap)
	})
	// One example per result type and reporter: the newest detail of the
	// newest day. The window's bounds on d.day and r.day are implied by
	// e.day, but spelled out they let the planner prune the monthly
	// partitions: without them it planned every month of the history
	// (150 ms at 10 years, 120 partitions; docs/bench-scale.md).
	b.Queue(`SELECT r.day, r.organization_name, r.reporter, r.report_id, d.result_type,
			coalesce(host(d.sending_mta_ip), d.sending_mta_ip_text), d.receiving_mx_hostname,
			coalesce(host(d.receiving_ip), d.receiving_ip_text), d.failed_session_count,
			d.additional_information, d.failure_reason_code
		FROM (SELECT DISTINCT ON (result_type, `+reporterOrName+`) day, last_detail_id
			FROM daily_sender_rollups
			WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3 AND failed > 0
			ORDER BY result_type, `+reporterOrName+`, day DESC, last_detail_id DESC) e
		JOIN failure_details d ON d.id = e.last_detail_id AND d.day = e.day AND d.day >= $2 AND d.day < $3
		JOIN reports r ON r.id = d.report_id AND r.day = d.day AND r.day >= $2 AND r.day < $3 AND r.excluded_at IS NULL
		ORDER BY r.day DESC, d.id DESC LIMIT $4`, domain, from, day, maxExamples).Query(func(rows pgx.Rows) error {
		var x rollout.FailureExample
		_, err := pgx.ForEachRow(rows, []any{&x.Day, &x.Organization, &x.Reporter, &x.ReportID, &x.ResultType,
			&x.SendingMTAIP, &x.ReceivingMXHostname, &x.ReceivingIP, &x.FailedSessionCount,
			&x.AdditionalInformation, &x.FailureReasonCode}, func() error {
			x.Day = x.Day.UTC()
			f.Examples = append(f.Examples, x)
			return nil
		})
		return wrapIf("examples", err, wrap)
	})
	b.Queue(`SELECT organization_name, `+satSum("reports")+`, `+satSum("successful::numeric + failed")+`, `+satSum("failed")+`
		FROM daily_policy_rollups
		WHERE policy_domain = $1 AND NOT trusted AND day >= $2 AND day < $3
		GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $4`, domain, from, day, rollout.MaxSenderGroups).Query(func(rows pgx.Rows) error {
		x := rollout.ExcludedCount{Reason: excludedReason}
		_, err := pgx.ForEachRow(rows, []any{&x.Organization, &x.Reports, &x.Sessions, &x.Failures}, func() error {
			f.Excluded = append(f.Excluded, x)
			return nil
		})
		return wrapIf("excluded", err, wrap)
	})
	var newest struct {
		day    time.Time
		mode   string
		policy int64
	}
	b.Queue(`SELECT day, mode, last_policy_id FROM daily_mode_rollups
		WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3
		ORDER BY day, mode`, domain, modeFrom, day).Query(func(rows pgx.Rows) error {
		var d time.Time
		var mode string
		var pid int64
		_, err := pgx.ForEachRow(rows, []any{&d, &mode, &pid}, func() error {
			d = d.UTC()
			n := len(f.ModeHistory)
			if n == 0 || !f.ModeHistory[n-1].Day.Equal(d) {
				f.ModeHistory = append(f.ModeHistory, rollout.ModeDay{Day: d})
				n++
			}
			if mode != "" {
				f.ModeHistory[n-1].Modes = append(f.ModeHistory[n-1].Modes, rollout.Mode(mode))
				if d.After(newest.day) || d.Equal(newest.day) && pid > newest.policy {
					newest.day, newest.mode, newest.policy = d, mode, pid
				}
			}
			return nil
		})
		return wrapIf("modes", err, wrap)
	})
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return f, err
	}
	if newest.policy != 0 {
		p, err := policyFromReport(ctx, tx, newest.policy, newest.day)
		if err != nil {
			return f, wrap("newest policy", err)
		}
		p.SeenDay = newest.day
		if p.Mode == "" {
			p.Mode = rollout.Mode(newest.mode)
		}
		f.Policy = p
	}
	if err := tx.Commit(ctx); err != nil {
		return f, wrap("ending", err)
	}
	return f, nil
}

// policyFromReport reads the policy a report's policy-string holds. A
// string that does not parse still gives the mode (from the rollup) and the
// report's mx-host list, which RFC 8460 §4.4 says are the policy's
// patterns.
func policyFromReport(ctx context.Context, tx pgx.Tx, id int64, day time.Time) (rollout.CurrentPolicy, error) {
	var lines, mx []string
	// The rollup's day is the policy's: its partition (migration 060). A
	// policy of a report the operator excluded since does not count: the
	// newest trusted one of that day that still counts stands in.
	err := tx.QueryRow(ctx, `SELECT p.policy_strings, p.mx_hosts FROM report_policies p
		JOIN reports r ON r.id = p.report_id AND r.day = p.day
		WHERE p.day = $2 AND r.excluded_at IS NULL AND r.trusted AND p.policy_type = 'sts'
			AND p.policy_domain = (SELECT policy_domain FROM report_policies WHERE id = $1 AND day = $2)
		ORDER BY p.id = $1 DESC, p.id DESC LIMIT 1`, id, day).Scan(&lines, &mx)
	if err != nil {
		return rollout.CurrentPolicy{}, err
	}
	cp := rollout.CurrentPolicy{Source: rollout.PolicySourceReports}
	if p, err := rollout.ParsePolicy(strings.Join(lines, "\n")); err == nil {
		cp.Mode, cp.MX, cp.MaxAge = p.Mode, p.MX, p.MaxAge
		return cp, nil
	}
	for _, h := range mx {
		if h = normDomain(h); h != "" && !slices.Contains(cp.MX, h) {
			cp.MX = append(cp.MX, h)
		}
	}
	return cp, nil
}

// wrapIf wraps a non-nil error with what was read.
func wrapIf(what string, err error, wrap func(string, error) error) error {
	if err == nil {
		return nil
	}
	return wrap(what, err)
}
