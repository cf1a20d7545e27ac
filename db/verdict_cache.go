package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stored verdict badges (migration 070): the overview reads one
// row per listed domain instead of computing a verdict per domain per
// request. A badge is stale when a row in verdict_invalidations names its
// domain (new reports, a policy version, changed thresholds: triggers
// write them in the transaction of the change), when it was computed on an
// earlier UTC day than the reader's (the windows moved), and missing for a
// domain just added. RefreshVerdict recomputes one; api runs the loop.

// VerdictLockClass is the first key of the two-key advisory locks that
// keep two instances from recomputing one domain's badge at once (the
// second key is hashtext of the domain); see MailboxLockClass.
const VerdictLockClass = 0x7476 // "tv"

// MaxOverviewPage bounds the domains one OverviewDomains call returns.
const MaxOverviewPage = 500

// Badge kinds, as api's badge() names them; BadgeSeverity orders them.
const (
	BadgeRegression = "regression"
	BadgeBlocked    = "blocked"
	BadgeUnknown    = "unknown"
	BadgeReady      = "ready"
	BadgeEnforcing  = "enforcing"
)

// BadgeKinds lists the badge kinds, most urgent first.
var BadgeKinds = [...]string{BadgeRegression, BadgeBlocked, BadgeUnknown, BadgeReady, BadgeEnforcing}

// BadgeSeverity is the sort position of a badge kind: a regression first,
// enforcing last; an unknown kind sorts as unknown.
func BadgeSeverity(kind string) int {
	for i, k := range BadgeKinds {
		if k == kind {
			return i
		}
	}
	return 2
}

// VerdictBadge is the stored summary of a domain's verdict.
type VerdictBadge struct {
	Kind   string
	Label  string
	Reason string
	// Mode is the domain's mode as the overview shows it.
	Mode       string
	ComputedAt time.Time
	// ComputedDay is the UTC day the verdict's windows end at.
	ComputedDay time.Time
}

// OverviewQuery selects a page of the allow-list.
type OverviewQuery struct {
	// Name keeps the domains whose name contains it ("" all).
	Name string
	// Kind keeps the domains whose badge is of this kind ("" all; a
	// domain without a badge yet counts as unknown).
	Kind string
	// BySeverity sorts by badge severity, then name; else by name.
	BySeverity bool
	Offset     int
	// Limit is at most MaxOverviewPage (0 or more: MaxOverviewPage).
	Limit int
	// Today is the reader's UTC day: a badge of an earlier day is stale.
	Today time.Time
	// Mode keeps the domains whose badge shows this mode ("" all).
	Mode string
	// Autopilot keeps the domains whose autopilot is in this state:
	// AutopilotOn, AutopilotDryRun or AutopilotOff ("" all).
	Autopilot string
	// Stage keeps the domains at this ramp stage (nil all).
	Stage *StageFilter
}

// OverviewRow is one listed domain with its stored badge.
type OverviewRow struct {
	Domain  string
	AddedAt time.Time
	// Badge is nil until the domain's first verdict is stored.
	Badge *VerdictBadge
	// Stale says the badge's inputs changed since it was computed (or
	// the day did): it is being recomputed.
	Stale bool
}

// likePattern is a LIKE pattern matching s anywhere, with LIKE's
// metacharacters escaped (ESCAPE '\').
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

// overviewWhere is the WHERE clause of q and its arguments after the
// first n.
func overviewWhere(q OverviewQuery, args []any) (string, []any) {
	var conds []string
	if q.Name != "" {
		args = append(args, likePattern(q.Name))
		conds = append(conds, fmt.Sprintf(`d.name LIKE $%d ESCAPE '\'`, len(args)))
	}
	if q.Kind != "" {
		args = append(args, q.Kind)
		conds = append(conds, fmt.Sprintf(`coalesce(v.kind, 'unknown') = $%d`, len(args)))
	}
	conds, args = q.fleetConds(conds, args)
	if len(conds) == 0 {
		return "", args
	}
	return "WHERE " + strings.Join(conds, " AND "), args
}

// overviewColumns are the columns scanOverviewRow reads; $1 is the
// reader's UTC day.
const overviewColumns = `d.name, d.added_at, v.kind, v.label, v.reason, v.mode, v.computed_at, v.computed_day,
	(v.domain IS NULL OR v.computed_day < $1
		OR EXISTS (SELECT 1 FROM verdict_invalidations i WHERE i.domain = d.name))`

func scanOverviewRow(row pgx.Row, extra ...any) (OverviewRow, error) {
	var r OverviewRow
	var kind, label, reason, mode *string
	var at, day *time.Time
	if err := row.Scan(append([]any{&r.Domain, &r.AddedAt, &kind, &label, &reason, &mode, &at, &day, &r.Stale}, extra...)...); err != nil {
		return r, err
	}
	if kind != nil {
		r.Badge = &VerdictBadge{Kind: *kind, Label: *label, Reason: *reason, Mode: *mode,
			ComputedAt: at.UTC(), ComputedDay: day.UTC()}
	}
	return r, nil
}

// OverviewDomains returns one page of the allow-list with the stored
// badges, and how many domains match the query in all. One query, whose
// cost follows the listed domains, never the reports.
func (d *DB) OverviewDomains(ctx context.Context, q OverviewQuery) ([]OverviewRow, int, error) {
	limit := q.Limit
	if limit <= 0 || limit > MaxOverviewPage {
		limit = MaxOverviewPage
	}
	order := `d.name`
	if q.BySeverity {
		order = `coalesce(v.severity, 2), d.name`
	}
	where, args := overviewWhere(q, []any{q.Today})
	args = append(args, limit, max(q.Offset, 0))
	// order and where are built from constants; values are arguments.
	rows, err := d.reader(ctx).Query(ctx, `
		SELECT `+overviewColumns+`, count(*) OVER ()
		FROM domains d LEFT JOIN domain_verdicts v ON v.domain = d.name
		`+where+`
		ORDER BY `+order+fmt.Sprintf(` LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing the overview's domains: %w", err)
	}
	defer rows.Close()
	var out []OverviewRow
	total := 0
	for rows.Next() {
		r, err := scanOverviewRow(rows, &total)
		if err != nil {
			return nil, 0, fmt.Errorf("listing the overview's domains: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("listing the overview's domains: %w", err)
	}
	if len(out) == 0 && q.Offset > 0 {
		// Past the end: count what there is, for the pager.
		where, args := overviewWhere(q, nil)
		err := d.reader(ctx).QueryRow(ctx, `SELECT count(*) FROM domains d LEFT JOIN domain_verdicts v ON v.domain = d.name `+where,
			args...).Scan(&total)
		if err != nil {
			return nil, 0, fmt.Errorf("counting the overview's domains: %w", err)
		}
	}
	return out, total, nil
}

// OverviewDomain is OverviewDomains for one listed domain (ErrNotFound
// when it is not listed).
func (d *DB) OverviewDomain(ctx context.Context, domain string, today time.Time) (OverviewRow, error) {
	r, err := scanOverviewRow(d.reader(ctx).QueryRow(ctx, `
		SELECT `+overviewColumns+`
		FROM domains d LEFT JOIN domain_verdicts v ON v.domain = d.name
		WHERE d.name = $2`, today, normDomain(domain)))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("reading the badge of %s: %w", domain, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("reading the badge of %s: %w", domain, err)
	}
	return r, nil
}

// domainsSeriesSQL reads the rollups of each domain of $1 by its own
// range of the (policy_domain, day) index. The OFFSET 0 keeps the lateral
// subquery from being flattened into one scan of the window: the generic
// plan that pgx's statement cache gets after five runs, knowing neither
// the names nor the days, then read every rollup row of the window by
// the day index and filtered the page's domains out, so a flood of
// reports naming 100,000 unlisted policy domains on one day made every
// overview read 100,000 rows (11 ms, growing with the flood: the security
// issue's "overview 280 times slower"). TestOverviewQueriesBounded checks
// both plans.
const domainsSeriesSQL = `
	SELECT n.name, r.day, least(sum(r.reports), 9223372036854775807)::bigint, least(sum(r.successful), 9223372036854775807)::bigint,
		least(sum(r.failed), 9223372036854775807)::bigint
	FROM unnest($1::text[]) AS n(name)
	CROSS JOIN LATERAL (SELECT x.day, x.reports, x.successful, x.failed FROM daily_policy_rollups x
		WHERE x.policy_domain = n.name AND x.trusted AND x.day >= $2 AND x.day < $3 OFFSET 0) r
	GROUP BY n.name, r.day ORDER BY n.name, r.day`

// DomainsSeries is DomainSeries for several domains at once (the
// overview's page), keyed by domain; domains without reports have no key.
func (d *DB) DomainsSeries(ctx context.Context, domains []string, from, to time.Time) (map[string][]DashboardDay, error) {
	out := map[string][]DashboardDay{}
	if len(domains) == 0 {
		return out, nil
	}
	names := make([]string, len(domains))
	for i, n := range domains {
		names[i] = normDomain(n)
	}
	rows, err := d.reader(ctx).Query(ctx, domainsSeriesSQL, names, from, to)
	if err != nil {
		return nil, fmt.Errorf("reading daily series of %d domains: %w", len(names), err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var day DashboardDay
		if err := rows.Scan(&name, &day.Day, &day.Reports, &day.Successful, &day.Failed); err != nil {
			return nil, fmt.Errorf("reading daily series of %d domains: %w", len(names), err)
		}
		day.Day = day.Day.UTC()
		out[name] = append(out[name], day)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading daily series of %d domains: %w", len(names), err)
	}
	return out, nil
}

// StaleVerdicts returns up to limit listed domains whose badge needs
// computing as of the UTC day today: none yet first, then the oldest.
func (d *DB) StaleVerdicts(ctx context.Context, today time.Time, limit int) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `
		SELECT d.name FROM domains d LEFT JOIN domain_verdicts v ON v.domain = d.name
		WHERE v.domain IS NULL OR v.computed_day < $1
			OR EXISTS (SELECT 1 FROM verdict_invalidations i WHERE i.domain = d.name)
		ORDER BY v.computed_at NULLS FIRST, d.name LIMIT $2`, today, limitRows(limit))
	if err != nil {
		return nil, fmt.Errorf("listing stale verdicts: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing stale verdicts: %w", err)
	}
	return names, nil
}

// RefreshVerdict recomputes domain's badge: in one transaction it takes
// the domain's advisory lock (another instance holding it: done is false
// and nothing happens), deletes the invalidations it can see, calls
// compute, which must read the facts afresh (from the primary: its ctx is
// marked with Primary, never from a replica that may not have replayed a
// change yet; every change whose invalidation was deleted is committed and
// so visible to it), and stores the result. A change committed meanwhile leaves its
// invalidation, so the badge stays stale and is recomputed again; an
// error rolls back, keeping the invalidations. A domain no longer listed
// gets no badge.
func (d *DB) RefreshVerdict(ctx context.Context, domain string, compute func(context.Context) (VerdictBadge, error)) (done bool, err error) {
	domain = normDomain(domain)
	wrap := func(err error) error { return fmt.Errorf("refreshing the verdict of %s: %w", domain, err) }
	tx, err := d.Pool.Begin(ctx)
	if err != nil {
		return false, wrap(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the commit below reports errors
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, hashtext($2))`, VerdictLockClass, domain).Scan(&locked); err != nil {
		return false, wrap(err)
	}
	if !locked {
		return false, nil
	}
	if _, err := tx.Exec(ctx, `DELETE FROM verdict_invalidations WHERE domain = $1`, domain); err != nil {
		return false, wrap(err)
	}
	b, err := compute(Primary(ctx))
	if err != nil {
		return false, wrap(err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO domain_verdicts (domain, kind, label, reason, mode, severity, computed_at, computed_day)
		SELECT name, $2, $3, $4, $5, $6, $7, $8 FROM domains WHERE name = $1
		ON CONFLICT (domain) DO UPDATE SET kind = EXCLUDED.kind, label = EXCLUDED.label,
			reason = EXCLUDED.reason, mode = EXCLUDED.mode, severity = EXCLUDED.severity,
			computed_at = EXCLUDED.computed_at, computed_day = EXCLUDED.computed_day`,
		domain, b.Kind, b.Label, b.Reason, b.Mode, BadgeSeverity(b.Kind), b.ComputedAt, b.ComputedDay)
	if err != nil {
		return false, wrap(err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, wrap(err)
	}
	return true, nil
}

// PruneVerdictInvalidations deletes the invalidations of domains that are
// not listed (a policy version or thresholds of a removed domain): no
// badge will clear them.
func (d *DB) PruneVerdictInvalidations(ctx context.Context) (int64, error) {
	tag, err := d.Pool.Exec(ctx, `
		DELETE FROM verdict_invalidations i
		WHERE NOT EXISTS (SELECT 1 FROM domains d WHERE d.name = i.domain)`)
	if err != nil {
		return 0, fmt.Errorf("pruning verdict invalidations: %w", err)
	}
	return tag.RowsAffected(), nil
}
