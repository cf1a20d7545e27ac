package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FleetDefault is the domain name of the autopilot settings row that holds
// the fleet default.
const FleetDefault = ""

// AutopilotSettings are the stored autopilot settings of one domain (or of
// the fleet, Domain FleetDefault); a nil field is not set there.
type AutopilotSettings struct {
	Domain      string
	Enabled     *bool
	DryRun      *bool
	ReadyDays   *int
	FinalMaxAge *int64
	// HoldDays are the clean days before each of the three raises of the
	// ramp; nil is not set.
	HoldDays  []int
	UpdatedAt time.Time
	UpdatedBy string
}

// AutopilotSettings returns the stored settings of domain (FleetDefault for
// the fleet's); every field is nil when none are stored.
func (d *DB) AutopilotSettings(ctx context.Context, domain string) (AutopilotSettings, error) {
	s := AutopilotSettings{Domain: normDomain(domain)}
	err := d.Pool.QueryRow(ctx, `SELECT enabled, dry_run, ready_days, final_max_age, hold_days, updated_at, updated_by
		FROM autopilot_settings WHERE domain = $1`, s.Domain).
		Scan(&s.Enabled, &s.DryRun, &s.ReadyDays, &s.FinalMaxAge, &s.HoldDays, &s.UpdatedAt, &s.UpdatedBy)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("reading the autopilot settings of %q: %w", s.Domain, err)
	}
	return s, nil
}

// AllAutopilotSettings returns every stored settings row by domain (the
// fleet default under FleetDefault), for the fleet view.
func (d *DB) AllAutopilotSettings(ctx context.Context) (map[string]AutopilotSettings, error) {
	rows, err := d.Pool.Query(ctx, `SELECT domain, enabled, dry_run, ready_days, final_max_age, hold_days, updated_at, updated_by
		FROM autopilot_settings ORDER BY domain LIMIT 100000`)
	if err != nil {
		return nil, fmt.Errorf("listing autopilot settings: %w", err)
	}
	out := map[string]AutopilotSettings{}
	var s AutopilotSettings
	_, err = pgx.ForEachRow(rows, []any{&s.Domain, &s.Enabled, &s.DryRun, &s.ReadyDays, &s.FinalMaxAge, &s.HoldDays, &s.UpdatedAt, &s.UpdatedBy}, func() error {
		out[s.Domain] = s
		s = AutopilotSettings{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing autopilot settings: %w", err)
	}
	return out, nil
}

// SetAutopilotSettings stores the non-nil fields of s for s.Domain and
// keeps the others. The database checks the bounds (ready_days 1..60,
// final_max_age 86400..31557600, hold_days three of 1..365).
func (d *DB) SetAutopilotSettings(ctx context.Context, s AutopilotSettings) error {
	_, err := d.Pool.Exec(ctx, `INSERT INTO autopilot_settings AS s (domain, enabled, dry_run, ready_days, final_max_age, hold_days, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (domain) DO UPDATE SET enabled = coalesce(EXCLUDED.enabled, s.enabled),
			dry_run = coalesce(EXCLUDED.dry_run, s.dry_run), ready_days = coalesce(EXCLUDED.ready_days, s.ready_days),
			final_max_age = coalesce(EXCLUDED.final_max_age, s.final_max_age),
			hold_days = coalesce(EXCLUDED.hold_days, s.hold_days),
			updated_by = EXCLUDED.updated_by, updated_at = now()`,
		normDomain(s.Domain), s.Enabled, s.DryRun, s.ReadyDays, s.FinalMaxAge, s.HoldDays, clean(s.UpdatedBy))
	if err != nil {
		return fmt.Errorf("storing the autopilot settings of %q: %w", s.Domain, err)
	}
	return nil
}

// AutopilotEvaluation is one daily evaluation of a domain by the autopilot.
type AutopilotEvaluation struct {
	Domain      string
	Day         time.Time // UTC midnight
	EvaluatedAt time.Time
	// Verdict is "ready" or "blocked".
	Verdict  string
	Blockers []string
	Stage    int
	Action   string
	DryRun   bool
	Plan     string
	// VersionID is the id of the version the action made.
	VersionID string
	Error     string
	Evidence  json.RawMessage
}

const evaluationColumns = `domain, day, evaluated_at, verdict, blockers, stage, action, dry_run, plan, version_id, error, evidence`

func scanEvaluation(row pgx.Row) (AutopilotEvaluation, error) {
	var (
		e        AutopilotEvaluation
		blockers []byte
		evidence []byte
	)
	if err := row.Scan(&e.Domain, &e.Day, &e.EvaluatedAt, &e.Verdict, &blockers, &e.Stage, &e.Action, &e.DryRun,
		&e.Plan, &e.VersionID, &e.Error, &evidence); err != nil {
		return e, err
	}
	e.Day = e.Day.UTC()
	e.Evidence = json.RawMessage(evidence)
	if err := json.Unmarshal(blockers, &e.Blockers); err != nil {
		return e, fmt.Errorf("decoding the blockers of %s on %s: %w", e.Domain, e.Day.Format(time.DateOnly), err)
	}
	return e, nil
}

// ClaimAutopilotEvaluation stores e as the evaluation of its domain and
// day, unless that day already holds one that may not be replaced: a
// dry-run evaluation replaces only a dry-run one; a real one replaces a
// dry-run one or one whose action failed. claimed is false when the day's
// evaluation stays as it was (the caller must then not act).
func (d *DB) ClaimAutopilotEvaluation(ctx context.Context, e AutopilotEvaluation) (claimed bool, err error) {
	blockers, err := json.Marshal(nonNil(e.Blockers))
	if err != nil {
		return false, fmt.Errorf("encoding the blockers of %s: %w", e.Domain, err)
	}
	evidence := e.Evidence
	if len(evidence) == 0 {
		evidence = json.RawMessage("{}")
	}
	tag, err := d.Pool.Exec(ctx, `INSERT INTO autopilot_evaluations AS e (domain, day, evaluated_at, verdict, blockers,
			stage, action, dry_run, plan, version_id, error, evidence)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (domain, day) DO UPDATE SET evaluated_at = EXCLUDED.evaluated_at, verdict = EXCLUDED.verdict,
			blockers = EXCLUDED.blockers, stage = EXCLUDED.stage, action = EXCLUDED.action, dry_run = EXCLUDED.dry_run,
			plan = EXCLUDED.plan, version_id = EXCLUDED.version_id, error = EXCLUDED.error, evidence = EXCLUDED.evidence
		WHERE e.dry_run OR (NOT EXCLUDED.dry_run AND e.error <> '')`,
		normDomain(e.Domain), utcDay(e.Day), e.EvaluatedAt, e.Verdict, string(blockers), e.Stage, e.Action, e.DryRun,
		clean(e.Plan), e.VersionID, clean(e.Error), string(evidence))
	if err != nil {
		return false, fmt.Errorf("storing the autopilot evaluation of %s: %w", e.Domain, err)
	}
	return tag.RowsAffected() == 1, nil
}

// FinishAutopilotEvaluation records the outcome of the action of the
// evaluation of domain on day: the version it made and the plan text, or
// the error (which lets a later run of the same day try again).
func (d *DB) FinishAutopilotEvaluation(ctx context.Context, domain string, day time.Time, versionID, plan, actErr string) error {
	tag, err := d.Pool.Exec(ctx, `UPDATE autopilot_evaluations SET version_id = $3, plan = $4, error = $5
		WHERE domain = $1 AND day = $2`, normDomain(domain), utcDay(day), versionID, clean(plan), clean(actErr))
	if err != nil {
		return fmt.Errorf("recording the autopilot action of %s: %w", domain, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("recording the autopilot action of %s: %w", domain, ErrNotFound)
	}
	return nil
}

// AutopilotEvaluation returns the evaluation of domain on the UTC day of
// day, ErrNotFound when there is none.
func (d *DB) AutopilotEvaluation(ctx context.Context, domain string, day time.Time) (AutopilotEvaluation, error) {
	e, err := scanEvaluation(d.Pool.QueryRow(ctx, `SELECT `+evaluationColumns+` FROM autopilot_evaluations
		WHERE domain = $1 AND day = $2`, normDomain(domain), utcDay(day)))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("reading the autopilot evaluation of %s: %w", domain, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("reading the autopilot evaluation of %s: %w", domain, err)
	}
	return e, nil
}

// AutopilotEvaluations returns the evaluations of domain, newest first, at
// most limit (bounded by 500).
func (d *DB) AutopilotEvaluations(ctx context.Context, domain string, limit int) ([]AutopilotEvaluation, error) {
	if limit <= 0 || limit > maxVersions {
		limit = maxVersions
	}
	rows, err := d.Pool.Query(ctx, `SELECT `+evaluationColumns+` FROM autopilot_evaluations
		WHERE domain = $1 ORDER BY day DESC LIMIT $2`, normDomain(domain), limit)
	if err != nil {
		return nil, fmt.Errorf("listing the autopilot evaluations of %s: %w", domain, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (AutopilotEvaluation, error) { return scanEvaluation(r) })
	if err != nil {
		return nil, fmt.Errorf("listing the autopilot evaluations of %s: %w", domain, err)
	}
	return out, nil
}

// LatestAutopilotEvaluations returns the newest evaluation of every domain
// that has one, by domain, for the fleet view.
func (d *DB) LatestAutopilotEvaluations(ctx context.Context) (map[string]AutopilotEvaluation, error) {
	rows, err := d.Pool.Query(ctx, `SELECT DISTINCT ON (domain) `+evaluationColumns+` FROM autopilot_evaluations
		ORDER BY domain, day DESC LIMIT 100000`)
	if err != nil {
		return nil, fmt.Errorf("listing the latest autopilot evaluations: %w", err)
	}
	defer rows.Close()
	out := map[string]AutopilotEvaluation{}
	for rows.Next() {
		e, err := scanEvaluation(rows)
		if err != nil {
			return nil, fmt.Errorf("listing the latest autopilot evaluations: %w", err)
		}
		out[e.Domain] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the latest autopilot evaluations: %w", err)
	}
	return out, nil
}

// ReadyStreak returns how many consecutive UTC days right before day the
// domain's evaluations at stage 0 (not in enforce) were ready, looking back
// at most limit days: a missing day ends the streak.
func (d *DB) ReadyStreak(ctx context.Context, domain string, day time.Time, limit int) (int, error) {
	day = utcDay(day)
	rows, err := d.Pool.Query(ctx, `SELECT day, verdict = 'ready' AND stage = 0 FROM autopilot_evaluations
		WHERE domain = $1 AND day < $2 AND day >= $3 ORDER BY day DESC`,
		normDomain(domain), day, day.AddDate(0, 0, -limit))
	if err != nil {
		return 0, fmt.Errorf("reading the ready days of %s: %w", domain, err)
	}
	var (
		n      int
		d0     time.Time
		ready  bool
		broken bool
	)
	_, err = pgx.ForEachRow(rows, []any{&d0, &ready}, func() error {
		if broken || !ready || !d0.UTC().Equal(day.AddDate(0, 0, -(n+1))) {
			broken = true
			return nil
		}
		n++
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reading the ready days of %s: %w", domain, err)
	}
	return n, nil
}

// utcDay is the UTC midnight of t's UTC day.
func utcDay(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Autopilot states of the fleet view's filter.
const (
	AutopilotOn     = "on"
	AutopilotDryRun = "dry-run"
	AutopilotOff    = "off"
)

// StageFilter selects domains by ramp stage from their newest version:
// not in enforce (Enforce false), at the final max_age (Final), or in
// enforce with MinMaxAge <= max_age < MaxMaxAge below the final one.
// DefaultFinal is the final max_age of domains that set none (nor the
// fleet).
type StageFilter struct {
	Enforce      bool
	Final        bool
	MinMaxAge    int64
	MaxMaxAge    int64
	DefaultFinal int64
}

// Setting expressions of the overview's filters: the domain's own value,
// else the fleet's, else the default.
const (
	apEnabledSQL = `coalesce((SELECT a.enabled FROM autopilot_settings a WHERE a.domain = d.name),
		(SELECT a.enabled FROM autopilot_settings a WHERE a.domain = ''), false)`
	apDryRunSQL = `coalesce((SELECT a.dry_run FROM autopilot_settings a WHERE a.domain = d.name),
		(SELECT a.dry_run FROM autopilot_settings a WHERE a.domain = ''), false)`
	latestModeSQL   = `(SELECT pv.mode FROM policy_versions pv WHERE pv.domain = d.name ORDER BY pv.seq DESC LIMIT 1)`
	latestMaxAgeSQL = `(SELECT pv.max_age FROM policy_versions pv WHERE pv.domain = d.name ORDER BY pv.seq DESC LIMIT 1)`
)

// fleetConds adds the conditions of the mode, autopilot and stage filters.
func (q OverviewQuery) fleetConds(conds []string, args []any) ([]string, []any) {
	if q.Mode != "" {
		args = append(args, q.Mode)
		conds = append(conds, fmt.Sprintf(`coalesce(nullif(v.mode, ''), 'unknown') = $%d`, len(args)))
	}
	switch q.Autopilot {
	case AutopilotOn:
		conds = append(conds, apEnabledSQL+` AND NOT `+apDryRunSQL)
	case AutopilotDryRun:
		conds = append(conds, apEnabledSQL+` AND `+apDryRunSQL)
	case AutopilotOff:
		conds = append(conds, `NOT `+apEnabledSQL)
	}
	if st := q.Stage; st != nil {
		if !st.Enforce {
			return append(conds, `coalesce(`+latestModeSQL+`, '') <> 'enforce'`), args
		}
		args = append(args, st.DefaultFinal)
		final := fmt.Sprintf(`coalesce((SELECT a.final_max_age FROM autopilot_settings a WHERE a.domain = d.name),
			(SELECT a.final_max_age FROM autopilot_settings a WHERE a.domain = ''), $%d::bigint)`, len(args))
		conds = append(conds, latestModeSQL+` = 'enforce'`)
		if st.Final {
			return append(conds, latestMaxAgeSQL+` >= `+final), args
		}
		args = append(args, st.MinMaxAge, st.MaxMaxAge)
		conds = append(conds, fmt.Sprintf(`%s < %s AND %s >= $%d AND %s < $%d`, latestMaxAgeSQL, final,
			latestMaxAgeSQL, len(args)-1, latestMaxAgeSQL, len(args)))
	}
	return conds, args
}

// FleetState is what the overview shows of a domain's autopilot: its
// newest version and its stored settings.
type FleetState struct {
	// Mode and MaxAge are the newest version's ("" without one).
	Mode   string
	MaxAge int64
	// Settings is the domain's own stored row (nil fields: not set).
	Settings AutopilotSettings
}

// FleetStates returns the fleet state of each of names.
func (d *DB) FleetStates(ctx context.Context, names []string) (map[string]FleetState, error) {
	rows, err := d.Pool.Query(ctx, `SELECT n.name, coalesce(v.mode, ''), coalesce(v.max_age, 0),
			a.enabled, a.dry_run, a.ready_days, a.final_max_age, a.hold_days
		FROM unnest($1::text[]) AS n(name)
		LEFT JOIN LATERAL (SELECT pv.mode, pv.max_age FROM policy_versions pv WHERE pv.domain = n.name
			ORDER BY pv.seq DESC LIMIT 1) v ON true
		LEFT JOIN autopilot_settings a ON a.domain = n.name`, names)
	if err != nil {
		return nil, fmt.Errorf("reading the fleet states: %w", err)
	}
	out := make(map[string]FleetState, len(names))
	var (
		name string
		st   FleetState
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &st.Mode, &st.MaxAge, &st.Settings.Enabled, &st.Settings.DryRun,
		&st.Settings.ReadyDays, &st.Settings.FinalMaxAge, &st.Settings.HoldDays}, func() error {
		st.Settings.Domain = name
		out[name] = st
		st = FleetState{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the fleet states: %w", err)
	}
	return out, nil
}
