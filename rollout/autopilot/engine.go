package autopilot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// KindRamp is the kind of a version that keeps enforce with another
// max_age: a ramp step.
const KindRamp = rollout.KindRamp

// Actor is who the autopilot's versions and audit entries name.
const Actor = "autopilot"

// Actions of an evaluation. The first three change the domain.
const (
	ActionPromote  = "promote"  // testing → enforce at stage 1
	ActionRamp     = "ramp"     // enforce → enforce with the next stage's max_age
	ActionRollback = "rollback" // enforce → testing after a regression
	ActionWait     = "wait"     // nothing stands in the way, but it is not time yet
	ActionPause    = "pause"    // a blocker stands in the way
	ActionNone     = "none"     // nothing left to do (final stage, retired)
)

// Verdicts of an evaluation.
const (
	VerdictReady   = "ready"
	VerdictBlocked = "blocked"
)

// Publisher is the publishing path the autopilot makes its versions
// through: the same versions, reconciler and watch as a promotion by hand.
type Publisher interface {
	// Verdict is the readiness verdict of domain now, with the live
	// check's findings when the publisher runs one; check is that live
	// check (nil without one): for a domain in enforce the verdict leaves
	// out the check's problems that would block a promotion, and the
	// autopilot pauses on them.
	Verdict(ctx context.Context, domain string) (v *rollout.Verdict, check *rollout.CheckResult, err error)
	// Regression is the watch's finding for a domain in enforce (the
	// failures rose against the days before), nil when the watch is clean.
	Regression(ctx context.Context, domain string) (*rollout.Finding, error)
	// Change makes the version c asks for and hands it to the
	// reconciler; it does not wait for it to go live.
	Change(ctx context.Context, c Change) (db.PolicyVersion, error)
}

// Change is a version the autopilot (or a bulk promotion) asks for.
type Change struct {
	Domain string
	// Kind is rollout.KindPromote, KindRamp or rollout.KindRollback.
	Kind   string
	Actor  string
	Reason string
	// MaxAge is the max_age of the new version (promote and ramp).
	MaxAge int64
}

// Alert is one notification of an autopilot action.
type Alert struct {
	Domain  string
	Subject string
	Message string
	Link    string
	At      time.Time
}

// Notifier sends alerts (the webhook notifier); nil means none.
type Notifier interface {
	Notify(ctx context.Context, a Alert) error
}

// Engine runs the autopilot over the store's domains.
type Engine struct {
	DB        *db.DB
	Publisher Publisher
	Notifier  Notifier
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	Log *slog.Logger
	// PublicURL is the dashboard's base URL, for links in alerts.
	PublicURL string
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Log != nil {
		return e.Log
	}
	return slog.Default()
}

// Options change one run.
type Options struct {
	// DryRun writes the evaluations with what would be done and changes
	// nothing, whatever the settings say.
	DryRun bool
	// Again evaluates a domain again on a day it was evaluated in dry
	// run (the CLI); without it (serve's loop) a domain evaluated today
	// is left alone.
	Again bool
}

// Result is one domain's evaluation.
type Result struct {
	db.AutopilotEvaluation
	// Skipped says why the domain was not evaluated now ("" when it was):
	// autopilot off, or evaluated today already (the stored evaluation is
	// then the result).
	Skipped string
}

// Evaluate runs one daily evaluation of every domain whose autopilot is on
// (idempotent per UTC day). A failing domain is logged and its error kept
// in its result; the others go on.
func (e *Engine) Evaluate(ctx context.Context, opt Options) ([]Result, error) {
	domains, err := e.DB.Domains(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing domains for the autopilot: %w", err)
	}
	all, err := e.DB.AllAutopilotSettings(ctx)
	if err != nil {
		return nil, err
	}
	var out []Result
	for _, d := range domains {
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		s := Resolve(all[db.FleetDefault], all[d.Name])
		if !s.Enabled {
			continue
		}
		r, err := e.evaluate(ctx, d.Name, s, opt)
		if err != nil {
			e.log().WarnContext(ctx, "Autopilot evaluation failed", "domain", d.Name, "error", err)
			r.Domain, r.Error = d.Name, err.Error()
		}
		out = append(out, r)
	}
	return out, nil
}

// EvaluateDomain runs the daily evaluation of one domain; a domain whose
// autopilot is off is skipped (Result.Skipped).
func (e *Engine) EvaluateDomain(ctx context.Context, domain string, opt Options) (Result, error) {
	domain, err := db.NormalizeDomain(domain)
	if err != nil {
		return Result{}, fmt.Errorf("evaluating the autopilot: %w", err)
	}
	s, err := e.Settings(ctx, domain)
	if err != nil {
		return Result{}, err
	}
	if !s.Enabled {
		return Result{AutopilotEvaluation: db.AutopilotEvaluation{Domain: domain}, Skipped: "autopilot is off for " + domain}, nil
	}
	return e.evaluate(ctx, domain, s, opt)
}

// Settings returns the effective settings of domain.
func (e *Engine) Settings(ctx context.Context, domain string) (Settings, error) {
	fleet, err := e.DB.AutopilotSettings(ctx, db.FleetDefault)
	if err != nil {
		return Settings{}, err
	}
	own, err := e.DB.AutopilotSettings(ctx, domain)
	if err != nil {
		return Settings{}, err
	}
	return Resolve(fleet, own), nil
}

// decision is what one evaluation found and decided.
type decision struct {
	verdict  string
	blockers []string
	stage    int
	action   string
	maxAge   int64  // of the change
	plan     string // the plan line (without "would ... on")
	next     time.Time
	evidence map[string]any
}

func (e *Engine) evaluate(ctx context.Context, domain string, s Settings, opt Options) (Result, error) {
	// The evaluation decides from what it reads: the primary's rows.
	ctx = db.Primary(ctx)
	now := e.now()
	day := utcDay(now)
	dry := opt.DryRun || s.DryRun
	prev, err := e.DB.AutopilotEvaluation(ctx, domain, day)
	switch {
	case errors.Is(err, db.ErrNotFound):
	case err != nil:
		return Result{}, err
	case !prev.DryRun && prev.Error == "":
		return Result{AutopilotEvaluation: prev, Skipped: "evaluated on " + date(day) + " already"}, nil
	case !opt.Again && prev.Error == "" && dry:
		// A dry-run evaluation of today stands; a real run replaces it.
		return Result{AutopilotEvaluation: prev, Skipped: "evaluated on " + date(day) + " already"}, nil
	}
	d, err := e.decide(ctx, domain, s, day)
	if err != nil {
		return Result{}, err
	}
	ev := db.AutopilotEvaluation{Domain: domain, Day: day, EvaluatedAt: now, Verdict: d.verdict, Blockers: d.blockers,
		Stage: d.stage, Action: d.action, DryRun: dry, Plan: d.plan}
	if ev.Evidence, err = json.Marshal(d.evidence); err != nil {
		return Result{}, fmt.Errorf("encoding the autopilot evidence of %s: %w", domain, err)
	}
	changes := d.action == ActionPromote || d.action == ActionRamp || d.action == ActionRollback
	if dry && changes {
		ev.Plan = "would " + d.plan + " on " + date(day)
	}
	claimed, err := e.DB.ClaimAutopilotEvaluation(ctx, ev)
	if err != nil {
		return Result{}, err
	}
	if !claimed {
		// Another run evaluated the day first (serve and the CLI at once).
		cur, err := e.DB.AutopilotEvaluation(ctx, domain, day)
		return Result{AutopilotEvaluation: cur, Skipped: "evaluated on " + date(day) + " already"}, err
	}
	if dry || !changes {
		return Result{AutopilotEvaluation: ev}, nil
	}
	return e.act(ctx, ev, d)
}

// act makes the change of a claimed evaluation, audits and notifies it.
func (e *Engine) act(ctx context.Context, ev db.AutopilotEvaluation, d decision) (Result, error) {
	kind := map[string]string{ActionPromote: rollout.KindPromote, ActionRamp: KindRamp, ActionRollback: rollout.KindRollback}[d.action]
	reason := "autopilot: " + d.plan
	v, err := e.Publisher.Change(ctx, Change{Domain: ev.Domain, Kind: kind, Actor: Actor, Reason: reason, MaxAge: d.maxAge})
	detail := map[string]any{"verdict": d.verdict, "blockers": nonNil(d.blockers), "stage": d.stage, "evidence": d.evidence}
	if err != nil {
		ev.Error = err.Error()
		detail["outcome"], detail["error"] = "failed", ev.Error
		e.audit(ctx, "autopilot."+d.action, ev.Domain, detail)
		if ferr := e.DB.FinishAutopilotEvaluation(ctx, ev.Domain, ev.Day, "", ev.Plan, ev.Error); ferr != nil {
			return Result{AutopilotEvaluation: ev}, ferr
		}
		return Result{AutopilotEvaluation: ev}, fmt.Errorf("autopilot %s of %s: %w", d.action, ev.Domain, err)
	}
	ev.VersionID = v.ID
	switch d.action {
	case ActionPromote:
		ev.Plan = fmt.Sprintf("promoted to enforce with max_age %d: version %s", v.Policy.MaxAge, v.ID)
	case ActionRamp:
		ev.Plan = fmt.Sprintf("raised max_age to %d: version %s", v.Policy.MaxAge, v.ID)
	case ActionRollback:
		ev.Plan = fmt.Sprintf("rolled back to testing: version %s", v.ID)
	}
	detail["outcome"], detail["seq"], detail["id"], detail["mode"], detail["max_age"] = "done", v.Seq, v.ID, v.Policy.Mode, v.Policy.MaxAge
	e.audit(ctx, "autopilot."+d.action, ev.Domain, detail)
	e.log().InfoContext(ctx, "Autopilot changed a domain", "domain", ev.Domain, "action", d.action, "id", v.ID, "max_age", v.Policy.MaxAge)
	if err := e.DB.FinishAutopilotEvaluation(ctx, ev.Domain, ev.Day, v.ID, ev.Plan, ""); err != nil {
		return Result{AutopilotEvaluation: ev}, err
	}
	e.notify(ctx, ev, d)
	return Result{AutopilotEvaluation: ev}, nil
}

func (e *Engine) audit(ctx context.Context, action, domain string, detail any) {
	if _, err := e.DB.AddAudit(ctx, db.AuditEntry{Actor: Actor, Action: action, Domain: domain, Detail: detail}); err != nil {
		e.log().ErrorContext(ctx, "Writing the audit log failed", "action", action, "domain", domain, "error", err)
	}
}

// notify tells about a change with its evidence; a failure is logged and
// audited, the change stands.
func (e *Engine) notify(ctx context.Context, ev db.AutopilotEvaluation, d decision) {
	if e.Notifier == nil {
		return
	}
	subject := fmt.Sprintf("MTA-STS autopilot on %s: %s", ev.Domain, d.action)
	if d.action == ActionRollback {
		subject = fmt.Sprintf("MTA-STS autopilot rolled back %s to testing", ev.Domain)
	}
	msg := ev.Plan
	if f, ok := d.evidence["regression"].(*rollout.Finding); ok && f != nil {
		msg += "; " + f.Message
	}
	if len(d.blockers) > 0 {
		msg += "; blockers: " + strings.Join(d.blockers, ", ")
	}
	link := "/domains/" + ev.Domain
	if e.PublicURL != "" {
		link = strings.TrimRight(e.PublicURL, "/") + link
	}
	if err := e.Notifier.Notify(ctx, Alert{Domain: ev.Domain, Subject: subject, Message: msg, Link: link, At: e.now()}); err != nil {
		e.log().WarnContext(ctx, "Notifying an autopilot action failed", "domain", ev.Domain, "error", err)
		e.audit(ctx, "autopilot.notify", ev.Domain, map[string]any{"action": d.action, "error": err.Error()})
	}
}

// decide computes the evaluation of domain on day without changing
// anything.
func (e *Engine) decide(ctx context.Context, domain string, s Settings, day time.Time) (decision, error) {
	ramp := s.Ramp()
	var latest *db.PolicyVersion
	v, err := e.DB.LatestPolicyVersion(ctx, domain)
	switch {
	case err == nil:
		latest = &v
	case !errors.Is(err, db.ErrNotFound):
		return decision{}, err
	}
	d := decision{evidence: map[string]any{}}
	if latest != nil {
		d.stage = ramp.StageOf(latest.Policy)
		d.evidence["version"] = map[string]any{"id": latest.ID, "kind": latest.Kind, "mode": latest.Policy.Mode, "max_age": latest.Policy.MaxAge}
	}
	verdict, check, err := e.Publisher.Verdict(ctx, domain)
	if err != nil {
		return d, err
	}
	d.evidence["verdict"] = map[string]any{"ready": verdict.Ready, "mode": verdict.Mode, "sessions": verdict.Evidence.Sessions,
		"failures": verdict.Evidence.Failures, "recent_rate": verdict.Evidence.Recent.Rate, "reporters": verdict.Evidence.Reporters}
	if latest != nil && latest.Policy.Mode == rollout.ModeNone {
		d.verdict, d.action, d.blockers = VerdictBlocked, ActionNone, []string{"retired"}
		d.plan = "the domain is retired (mode none): the autopilot does nothing"
		return d, nil
	}
	if d.stage == 0 {
		err = e.decideTesting(ctx, &d, domain, s, ramp, verdict, day)
	} else {
		err = e.decideEnforce(ctx, &d, domain, ramp, verdict, check, latest, day)
	}
	if err != nil {
		return d, err
	}
	// At most one change per domain per UTC day, whoever made the last.
	if latest != nil && !utcDay(madeAt(*latest)).Before(day) &&
		(d.action == ActionPromote || d.action == ActionRamp || d.action == ActionRollback) {
		d.plan = fmt.Sprintf("%s tomorrow: version %s was made today (at most one change a day)", d.plan, latest.ID)
		d.action = ActionWait
	}
	return d, nil
}

// decideTesting: promote once the verdict was ready on ReadyDays
// consecutive daily evaluations (today's included).
func (e *Engine) decideTesting(ctx context.Context, d *decision, domain string, s Settings, ramp Ramp, v *rollout.Verdict, day time.Time) error {
	if !v.Ready {
		d.verdict, d.action = VerdictBlocked, ActionPause
		for _, b := range v.Blockers {
			d.blockers = append(d.blockers, b.Code)
		}
		d.plan = "paused: the verdict is blocked (" + strings.Join(d.blockers, ", ") + ")"
		return nil
	}
	d.verdict = VerdictReady
	streak, err := e.DB.ReadyStreak(ctx, domain, day, s.ReadyDays)
	if err != nil {
		return err
	}
	streak++ // today
	d.evidence["ready_days"], d.evidence["ready_days_needed"] = streak, s.ReadyDays
	first := ramp.Stage(1).MaxAge
	if streak < s.ReadyDays {
		d.action = ActionWait
		d.next = day.AddDate(0, 0, s.ReadyDays-streak)
		d.plan = fmt.Sprintf("ready %d of %d days: would promote to enforce with max_age %d on %s if the verdict stays ready",
			streak, s.ReadyDays, first, date(d.next))
		return nil
	}
	d.action, d.maxAge, d.next = ActionPromote, first, day
	d.plan = fmt.Sprintf("promote to enforce with max_age %d (verdict ready on %d consecutive days)", first, streak)
	return nil
}

// decideEnforce: roll back on a regression; pause on a blocker; raise the
// max_age once the stage's version has been live for its hold days.
func (e *Engine) decideEnforce(ctx context.Context, d *decision, domain string, ramp Ramp, v *rollout.Verdict, check *rollout.CheckResult, latest *db.PolicyVersion, day time.Time) error {
	reg, err := e.Publisher.Regression(ctx, domain)
	if err != nil {
		return err
	}
	if reg != nil {
		d.verdict, d.action, d.blockers = VerdictBlocked, ActionRollback, []string{rollout.WarningRegression}
		d.evidence["regression"] = reg
		d.plan = "roll back to testing: " + reg.Message
		return nil
	}
	d.blockers = enforceBlockers(v, check, latest)
	st := ramp.Stage(d.stage)
	if len(d.blockers) > 0 {
		d.verdict, d.action = VerdictBlocked, ActionPause
		d.plan = fmt.Sprintf("paused at stage %d (max_age %d): %s", d.stage, latest.Policy.MaxAge, strings.Join(d.blockers, ", "))
		return nil
	}
	d.verdict = VerdictReady
	if d.stage >= ramp.Final() {
		d.action = ActionNone
		d.plan = fmt.Sprintf("final stage: enforce with max_age %d", latest.Policy.MaxAge)
		return nil
	}
	live := LiveAt(*latest)
	next := ramp.Stage(d.stage + 1).MaxAge
	d.next = utcDay(*live).AddDate(0, 0, st.HoldDays)
	d.evidence["live_since"], d.evidence["hold_days"] = live.UTC(), st.HoldDays
	if day.Before(d.next) {
		d.action = ActionWait
		d.plan = fmt.Sprintf("stage %d (max_age %d) live since %s: would raise max_age to %d on %s if the watch stays clean",
			d.stage, latest.Policy.MaxAge, date(*live), next, date(d.next))
		return nil
	}
	d.action, d.maxAge = ActionRamp, next
	d.plan = fmt.Sprintf("raise max_age to %d (stage %d, clean for %d days since %s)", next, d.stage+1, st.HoldDays, date(*live))
	return nil
}

// enforceBlockers are what pauses a domain in enforce: the live check's
// problems that make enforce unsafe (those that would block a promotion),
// a live check that could not run, no recent reports (no evidence that the
// watch is clean), and a version that is not live or drifted.
func enforceBlockers(v *rollout.Verdict, check *rollout.CheckResult, latest *db.PolicyVersion) []string {
	var out []string
	add := func(code string) {
		if !slices.Contains(out, code) {
			out = append(out, code)
		}
	}
	for _, b := range v.Blockers {
		if b.Code != rollout.BlockerNotInTesting {
			add(b.Code)
		}
	}
	for _, w := range v.Warnings {
		if w.Code == rollout.WarningNoRecentReports {
			add(w.Code)
		}
	}
	if check != nil {
		if check.Error != "" {
			add("check-failed")
		}
		for _, p := range check.Problems {
			if slices.Contains(rollout.UnsafeCheckCodes, p.Code) ||
				(p.Code == rollout.CodeMXCertificateExpiring && p.Severity == rollout.SeverityError) {
				add(p.Code)
			}
		}
	}
	if LiveAt(*latest) == nil {
		add("not-live")
	}
	for _, s := range latest.Steps {
		if s.State == rollout.StateDrifted {
			add("drifted")
		}
	}
	return out
}

// LiveAt is when version v went live: verified, else both steps published
// (a reconciler without a live check); nil while it is not live.
func LiveAt(v db.PolicyVersion) *time.Time {
	if v.VerifiedAt != nil {
		return v.VerifiedAt
	}
	if v.PolicyPublishedAt != nil && v.RecordPublishedAt != nil {
		t := *v.RecordPublishedAt
		if v.PolicyPublishedAt.After(t) {
			t = *v.PolicyPublishedAt
		}
		return &t
	}
	return nil
}

// madeAt is when version v was made, on the clock of the process that made
// it: its first publishing step (stamped by the publisher's clock), else
// the row's creation time.
func madeAt(v db.PolicyVersion) time.Time {
	t := v.CreatedAt
	first := true
	for _, p := range []*time.Time{v.PolicyPublishedAt, v.RecordPublishedAt, v.VerifiedAt} {
		if p != nil && (first || p.Before(t)) {
			t, first = *p, false
		}
	}
	return t
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
