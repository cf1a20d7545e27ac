package db

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Dashboard queries (docs/dashboard.md). They read the daily rollups, so
// their cost follows the window asked for, not the history; only the
// sending-IP breakdown and the report list read the detail tables, bounded
// by a limit. Only trusted reports count (docs/reporters.md),
// except in the list of unlisted domains, which shows everything that
// arrives.
//
// Every sum saturates at int64's maximum, least(sum(x), 2^63-1)::bigint:
// sum(bigint) is numeric in PostgreSQL, and the rollup rows of a domain's
// day can each be near the maximum (one per reporter), so a plain cast
// failed with "bigint out of range" and the page answered 500. A sum of
// two columns adds them as numeric first (x::numeric + y) for the same
// reason.

// MaxDashboardRows bounds every list a dashboard query returns.
const MaxDashboardRows = 500

// DashboardDay is one UTC day of a domain's traffic.
type DashboardDay struct {
	Day        time.Time `json:"day"`
	Reports    int64     `json:"reports"`
	Successful int64     `json:"successful"`
	Failed     int64     `json:"failed"`
}

// Sessions is successful plus failed sessions, at most math.MaxInt64.
func (d DashboardDay) Sessions() int64 { return satAdd(d.Successful, d.Failed) }

// satAdd is a + b for counts (never negative), saturating at
// math.MaxInt64 instead of wrapping: rollups near the top of int64 (each
// report is bounded, their number is not) must read as huge, not
// negative.
func satAdd(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

func limitRows(n int) int {
	if n <= 0 || n > MaxDashboardRows {
		return MaxDashboardRows
	}
	return n
}

func collectDays(rows pgx.Rows) ([]DashboardDay, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (DashboardDay, error) {
		var d DashboardDay
		err := r.Scan(&d.Day, &d.Reports, &d.Successful, &d.Failed)
		d.Day = d.Day.UTC()
		return d, err
	})
}

// DomainSeries returns the trusted daily totals of domain for the days in
// [from, to), oldest first; days without reports are absent.
func (d *DB) DomainSeries(ctx context.Context, domain string, from, to time.Time) ([]DashboardDay, error) {
	rows, err := d.reader(ctx).Query(ctx, `
		SELECT day, least(sum(reports), 9223372036854775807)::bigint, least(sum(successful), 9223372036854775807)::bigint, least(sum(failed), 9223372036854775807)::bigint
		FROM daily_policy_rollups
		WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3
		GROUP BY day ORDER BY day`, normDomain(domain), from, to)
	if err != nil {
		return nil, fmt.Errorf("reading daily series of %s: %w", domain, err)
	}
	days, err := collectDays(rows)
	if err != nil {
		return nil, fmt.Errorf("reading daily series of %s: %w", domain, err)
	}
	return days, nil
}

// ListedSeries returns DomainSeries for every allow-listed domain at once,
// keyed by domain; listed domains without reports have no key.
func (d *DB) ListedSeries(ctx context.Context, from, to time.Time) (map[string][]DashboardDay, error) {
	rows, err := d.reader(ctx).Query(ctx, `
		SELECT r.policy_domain, r.day, least(sum(r.reports), 9223372036854775807)::bigint, least(sum(r.successful), 9223372036854775807)::bigint, least(sum(r.failed), 9223372036854775807)::bigint
		FROM daily_policy_rollups r JOIN domains d ON d.name = r.policy_domain
		WHERE r.trusted AND r.day >= $1 AND r.day < $2
		GROUP BY r.policy_domain, r.day ORDER BY r.policy_domain, r.day`, from, to)
	if err != nil {
		return nil, fmt.Errorf("reading daily series of the listed domains: %w", err)
	}
	defer rows.Close()
	out := map[string][]DashboardDay{}
	for rows.Next() {
		var name string
		var day DashboardDay
		if err := rows.Scan(&name, &day.Day, &day.Reports, &day.Successful, &day.Failed); err != nil {
			return nil, fmt.Errorf("reading daily series of the listed domains: %w", err)
		}
		day.Day = day.Day.UTC()
		out[name] = append(out[name], day)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading daily series of the listed domains: %w", err)
	}
	return out, nil
}

// UnlistedDomain is a policy domain that reports arrive for but that is
// not on the allow-list.
type UnlistedDomain struct {
	Domain   string    `json:"domain"`
	Reports  int64     `json:"reports"`
	Sessions int64     `json:"sessions"`
	LastDay  time.Time `json:"last_day"`
}

// unlistedDomainsSQL lists the newest unlisted domains, at most limit,
// then sums their rollups. The LIMIT is inside, on unlisted_domains alone
// read in the order of its index (last_day DESC, domain): the aggregate
// runs for the rows shown only. The limit is written into the statement
// (an int from limitRows, not input) because a LIMIT $2 lets the generic
// plan of a prepared statement, which pgx's statement cache makes after
// five runs, guess a tenth of the table: TestUnlistedDomainsBounded saw it
// hash-join and sort all 100,000 unlisted domains of a flood that way.
// Such a flood (reports naming 20,000 policy domains each: 10 posts made
// the overview 280 times slower while it aggregated every reporting
// domain's rollups, before migration 071) then costs the overview nothing.
func unlistedDomainsSQL(limit int) string {
	return `
	SELECT u.domain, t.reports, t.sessions, u.last_day
	FROM (SELECT x.domain, x.last_day FROM unlisted_domains x
		WHERE x.last_day >= $1 AND NOT EXISTS (SELECT 1 FROM domains d WHERE d.name = x.domain)
		ORDER BY x.last_day DESC, x.domain LIMIT ` + strconv.Itoa(limitRows(limit)) + `) u
	CROSS JOIN LATERAL (
		SELECT least(coalesce(sum(r.reports), 0), 9223372036854775807)::bigint AS reports,
			least(coalesce(sum(r.successful::numeric + r.failed), 0), 9223372036854775807)::bigint AS sessions
		FROM daily_policy_rollups r WHERE r.policy_domain = u.domain AND r.day >= $1) t
	ORDER BY u.last_day DESC, u.domain`
}

// UnlistedDomains lists the domains with reports since from that nobody
// added, most recently seen first, at most limit (MaxDashboardRows).
// Untrusted reports count here: the point is to show what arrives. The
// domains come from unlisted_domains (kept by triggers, migration 071), so
// the cost follows the unlisted domains shown, not every reporting domain
// of the window nor every unlisted one.
func (d *DB) UnlistedDomains(ctx context.Context, from time.Time, limit int) ([]UnlistedDomain, error) {
	rows, err := d.reader(ctx).Query(ctx, unlistedDomainsSQL(limit), from)
	if err != nil {
		return nil, fmt.Errorf("listing unlisted domains: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UnlistedDomain, error) {
		var u UnlistedDomain
		err := r.Scan(&u.Domain, &u.Reports, &u.Sessions, &u.LastDay)
		u.LastDay = u.LastDay.UTC()
		return u, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing unlisted domains: %w", err)
	}
	return out, nil
}

// MaxUnlistedCount is as far as UnlistedCount counts.
const MaxUnlistedCount = 1000

// unlistedCountSQL counts the unlisted domains since $1, up to
// MaxUnlistedCount+1: a range of at most that many entries of the index
// (the ORDER BY keeps it on the index; a sequential scan with a LIMIT
// would read the whole table when old domains fill its first pages).
// Unlike the list it does not look each one up in domains (1,001 probes
// doubled its cost): the triggers of 071 keep the two apart, and a domain
// added in the same instant as its report may be counted once too often.
var unlistedCountSQL = `
	SELECT count(*) FROM (SELECT 1 FROM unlisted_domains x WHERE x.last_day >= $1
		ORDER BY x.last_day DESC, x.domain LIMIT ` + strconv.Itoa(MaxUnlistedCount+1) + `) c`

// UnlistedCount counts the unlisted domains with reports since from, up
// to MaxUnlistedCount; more says there are more than that. An exact count
// of a million would read a million index entries per page view: past a
// thousand, the operator needs to know it is a flood, not the number.
func (d *DB) UnlistedCount(ctx context.Context, from time.Time) (n int, more bool, err error) {
	if err := d.reader(ctx).QueryRow(ctx, unlistedCountSQL, from).Scan(&n); err != nil {
		return 0, false, fmt.Errorf("counting unlisted domains: %w", err)
	}
	if n > MaxUnlistedCount {
		return MaxUnlistedCount, true, nil
	}
	return n, false, nil
}

// Breakdown dimensions.
const (
	ByResultType = "result-type"
	ByMX         = "mx"
	ByOrg        = "org"
	BySendingIP  = "ip"
)

// BreakdownDimensions lists the valid Breakdown dimensions.
var BreakdownDimensions = [...]string{ByResultType, ByMX, ByOrg, BySendingIP}

// BreakdownRow is one group of a breakdown. Sessions is set only for the
// per-organisation breakdown (the failure details carry no totals).
type BreakdownRow struct {
	Key      string `json:"key"`
	Sessions int64  `json:"sessions,omitempty"`
	Failed   int64  `json:"failed"`
}

// Breakdown groups the trusted failures of domain in [from, to) by one
// dimension, largest first, at most limit groups.
func (d *DB) Breakdown(ctx context.Context, domain, by string, from, to time.Time, limit int) ([]BreakdownRow, error) {
	var q string
	withSessions := false
	switch by {
	case ByResultType:
		q = `SELECT result_type, 0::bigint, least(sum(failed), 9223372036854775807)::bigint FROM daily_failure_rollups
			WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3
			GROUP BY 1 ORDER BY 3 DESC, 1 LIMIT $4`
	case ByMX:
		q = `SELECT receiving_mx, 0::bigint, least(sum(failed), 9223372036854775807)::bigint FROM daily_failure_rollups
			WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3
			GROUP BY 1 ORDER BY 3 DESC, 1 LIMIT $4`
	case ByOrg:
		withSessions = true
		q = `SELECT organization_name, least(sum(successful::numeric + failed), 9223372036854775807)::bigint, least(sum(failed), 9223372036854775807)::bigint FROM daily_policy_rollups
			WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3
			GROUP BY 1 ORDER BY 3 DESC, 2 DESC, 1 LIMIT $4`
	case BySendingIP:
		return d.sendingIPBreakdown(ctx, domain, from, to, limit)
	default:
		return nil, fmt.Errorf("breaking down failures of %s by %q: %w", domain, by, ErrNotFound)
	}
	rows, err := d.reader(ctx).Query(ctx, q, normDomain(domain), from, to, limitRows(limit))
	if err != nil {
		return nil, fmt.Errorf("breaking down failures of %s by %s: %w", domain, by, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (BreakdownRow, error) {
		var b BreakdownRow
		err := r.Scan(&b.Key, &b.Sessions, &b.Failed)
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("breaking down failures of %s by %s: %w", domain, by, err)
	}
	if !withSessions {
		for i := range out {
			out[i].Sessions = 0
		}
	}
	return out, nil
}

// DomainMode returns the mode of the newest sts policy a trusted report
// shows for domain ("" when none does). The live check knows better; this
// is what the overview can show without the network.
func (d *DB) DomainMode(ctx context.Context, domain string) (string, error) {
	var lines []string
	err := d.reader(ctx).QueryRow(ctx, `
		SELECT p.policy_strings FROM report_policies p JOIN reports r ON r.id = p.report_id AND r.day = p.day
		WHERE p.policy_domain = $1 AND p.policy_type = 'sts' AND r.trusted
		ORDER BY r.start_time DESC, r.id DESC LIMIT 1`, normDomain(domain)).Scan(&lines)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the mode of %s: %w", domain, err)
	}
	for _, l := range lines {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), "mode") {
			return strings.ToLower(strings.TrimSpace(v)), nil
		}
	}
	return "", nil
}

// PolicyTypeTotals sums the trusted sessions of domain from from to to
// per policy type (sts, tlsa, no-policy-found): the domain page says what
// its sessions are, since the verdict counts sts sessions only.
func (d *DB) PolicyTypeTotals(ctx context.Context, domain string, from, to time.Time) (map[string]int64, error) {
	rows, err := d.reader(ctx).Query(ctx, `SELECT policy_type, least(sum(successful::numeric + failed), 9223372036854775807)::bigint
		FROM daily_policy_rollups WHERE policy_domain = $1 AND trusted AND day >= $2 AND day < $3
		GROUP BY policy_type ORDER BY policy_type LIMIT 20`, normDomain(domain), from, to)
	if err != nil {
		return nil, fmt.Errorf("summing the policy types of %s: %w", domain, err)
	}
	out := map[string]int64{}
	var typ string
	var n int64
	_, err = pgx.ForEachRow(rows, []any{&typ, &n}, func() error {
		out[typ] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("summing the policy types of %s: %w", domain, err)
	}
	return out, nil
}
