package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Errors of a policy change; the handlers turn them into 409/422 with the
// message, the CLI into exit codes.
var (
	// ErrBlocked: the verdict is blocked and no override was given.
	ErrBlocked = errors.New("api: the verdict is blocked")
	// ErrConfirmation: an override without the domain typed again or
	// without a reason.
	ErrConfirmation = errors.New("api: the override needs the domain typed again and a reason")
	// ErrNoPolicy: no current policy or mx list is known to change.
	ErrNoPolicy = errors.New("api: no policy to change")
	// ErrUnchanged: the change would publish what is published.
	ErrUnchanged = errors.New("api: nothing to change")
)

// PromoteConfig is how the server publishes policy versions
// (docs/publishing.md).
type PromoteConfig struct {
	// HostPolicy: tlsrpt serves /.well-known/mta-sts.txt for
	// mta-sts.<domain> itself, so a version's policy file is live the
	// moment it is made. Off, the file is handed over for download and
	// the record waits until verification sees the file served.
	HostPolicy bool
	// Records pushes the _mta-sts TXT record; nil means by hand (the page
	// shows the provider steps).
	Records rollout.RecordPublisher
	// Checker checks the live state; nil means Config.Inspector without
	// the STARTTLS probe (publishing changes no MX).
	Checker *rollout.Inspector
	// Notifier tells about regressions of enforcing domains; nil means
	// the watch only records episodes.
	Notifier *Notifier
}

// Promoter makes, publishes and verifies policy versions: the one
// implementation behind the promote panel, the JSON API and "tlsrpt
// promote"/"tlsrpt rollback".
type Promoter struct {
	DB *db.DB
	PromoteConfig
	// PublicURL is the dashboard's base URL, for links in notifications.
	PublicURL string
	// VerifyTimeout bounds the verification poll that Change runs before
	// it returns (the page waits for it); 0 means 20 seconds. A poll cut
	// short leaves the steps pending for the next one.
	VerifyTimeout time.Duration
	Now           func() time.Time
	Log           *slog.Logger
	// Actor names the publisher in the audit log entries of pushes,
	// verifications and drift; "" means "publisher" (tlsrpt serve).
	Actor string
}

// Promoter returns the server's promoter, configured from Config.
func (s *Server) Promoter() *Promoter {
	pc := s.cfg.Promote
	if pc.Checker == nil {
		pc.Checker = s.cfg.Inspector.WithoutSMTP()
	}
	return &Promoter{DB: s.cfg.DB, PromoteConfig: pc, PublicURL: s.cfg.PublicURL, Now: s.now, Log: s.log}
}

func (p *Promoter) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Promoter) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

func (p *Promoter) policyMethod() string {
	if p.HostPolicy {
		return rollout.PolicyHosted
	}
	return rollout.PolicyDownload
}

func (p *Promoter) recordMethod() string {
	if p.Records != nil {
		return p.Records.Method()
	}
	return rollout.RecordManual
}

// ChangeRequest asks for a new policy version.
type ChangeRequest struct {
	Domain string
	// Kind is rollout.KindPromote, KindRollback, KindRetire or
	// KindMXMove.
	Kind  string
	Actor string
	// Reason is why; required with Override.
	Reason string
	// Override promotes although the verdict is blocked; Confirm must
	// then be the domain typed again.
	Override bool
	Confirm  string
	// ID, if set, is the id to publish (the one the panel showed); it
	// must be valid and never used for the domain.
	ID string
	// MX is the new mx list of an mx move.
	MX []string
}

// Plan is what a change would publish, computed from the verdict and the
// history: the promote panel shows it before anyone clicks.
type Plan struct {
	Domain  string
	Kind    string
	Verdict *rollout.Verdict
	// Current is the policy published now (the newest version, else what
	// the reports show); nil when unknown.
	Current   *rollout.Policy
	CurrentID string
	Latest    *db.PolicyVersion
	// Next is the policy, id and records to publish; nil with NoPlan set
	// when there is nothing to publish.
	Next   *rollout.Generated
	Policy rollout.Policy
	NoPlan string
	// Taken are the ids used before; a new id is never one of them.
	Taken []string
}

// facts gathers what the verdict of domain reads: the facts from the
// store with the mode of the newest version tlsrpt published (what the
// domain serves now, days before the reports show it: the mode comes from
// tlsrpt's own versions first), and the thresholds.
func (p *Promoter) facts(ctx context.Context, domain string) (rollout.Facts, rollout.Thresholds, error) {
	t, err := p.DB.DomainThresholds(ctx, domain)
	if err != nil {
		return rollout.Facts{}, t, err
	}
	f, err := p.DB.Facts(ctx, domain, p.now(), t.SpanDays())
	if err != nil {
		return f, t, fmt.Errorf("gathering facts of %s: %w", domain, err)
	}
	pv, err := p.DB.LatestPolicyVersion(ctx, domain)
	switch {
	case err == nil && pv.PolicyPublishedAt != nil:
		f.ApplyVersion(pv.Policy, pv.ID)
	case err != nil && !errors.Is(err, db.ErrNotFound):
		return f, t, err
	}
	return f, t, nil
}

// verdict computes the readiness verdict of domain from the store, as the
// pages and the API show it.
func (p *Promoter) verdict(ctx context.Context, domain string) (*rollout.Verdict, rollout.Facts, error) {
	f, t, err := p.facts(ctx, domain)
	if err != nil {
		return nil, f, err
	}
	v := rollout.Evaluate(f, t)
	return &v, f, nil
}

// PlanChange computes what req would publish now, without storing it.
func (p *Promoter) PlanChange(ctx context.Context, req ChangeRequest) (*Plan, error) {
	return p.planChange(ctx, req, nil)
}

// planChange is PlanChange with the verdict computed already (nil: compute
// it), so one page can plan several changes from one verdict.
func (p *Promoter) planChange(ctx context.Context, req ChangeRequest, v *rollout.Verdict) (*Plan, error) {
	domain, err := db.NormalizeDomain(req.Domain)
	if err != nil {
		return nil, fmt.Errorf("planning a change: %w", err)
	}
	if v == nil {
		if v, _, err = p.verdict(ctx, domain); err != nil {
			return nil, err
		}
	}
	pl := &Plan{Domain: domain, Kind: req.Kind, Verdict: v}
	versions, err := p.DB.PolicyVersions(ctx, domain, 0)
	if err != nil {
		return nil, err
	}
	for _, ver := range versions {
		pl.Taken = append(pl.Taken, ver.ID)
	}
	if len(versions) > 0 {
		pl.Latest = &versions[0]
		cur := versions[0].Policy
		pl.Current, pl.CurrentID = &cur, versions[0].ID
	} else if ep := v.Evidence.Policy; ep.Mode != "" && len(ep.MX) > 0 {
		pl.Current = &rollout.Policy{Mode: ep.Mode, MX: ep.MX, MaxAge: ep.MaxAge}
		pl.CurrentID = ep.ID
		if ep.ID != "" {
			pl.Taken = append(pl.Taken, ep.ID)
		}
	}
	var next rollout.Policy
	switch req.Kind {
	case rollout.KindPromote:
		if pl.Current != nil && pl.Current.Mode == rollout.ModeEnforce && pl.Latest != nil {
			pl.NoPlan = "the domain is in enforce already"
			return pl, nil
		}
		if v.Proposal == nil {
			reason := v.Evidence.ProposalError
			switch {
			case reason != "":
			case v.Mode == rollout.ModeEnforce:
				reason = "the verdict sees the domain in enforce already"
			default:
				reason = "the verdict proposes no policy (no mx list is known)"
			}
			if !strings.Contains(reason, "nothing to propose") {
				reason = "nothing to propose: " + reason
			}
			pl.NoPlan = reason
			return pl, nil
		}
		prop, err := rollout.ParsePolicy(v.Proposal.Policy)
		if err != nil {
			return nil, fmt.Errorf("reading the proposal of %s: %w", domain, err)
		}
		next = rollout.Policy{Mode: rollout.ModeEnforce, MX: prop.MX, MaxAge: v.Evidence.Thresholds.EnforceMaxAge}
		if pl.Latest != nil && len(pl.Latest.Policy.MX) > 0 {
			next.MX = pl.Latest.Policy.MX
		}
	case rollout.KindRollback, rollout.KindRetire, rollout.KindMXMove:
		if pl.Current == nil {
			pl.NoPlan = "no current policy is known (no version published by tlsrpt, no policy in the reports)"
			return pl, nil
		}
		next = *pl.Current
		switch req.Kind {
		case rollout.KindRollback:
			next.Mode, next.MaxAge = rollout.ModeTesting, rollout.DefaultMaxAgeTesting
		case rollout.KindRetire:
			next.Mode, next.MaxAge = rollout.ModeNone, rollout.DefaultMaxAgeTesting
		case rollout.KindMXMove:
			if len(req.MX) == 0 {
				pl.NoPlan = "an mx move needs the new mx list"
				return pl, nil
			}
			next.MX = req.MX
		}
	default:
		return nil, fmt.Errorf("planning a change of %s: unknown kind %q", domain, req.Kind)
	}
	id := req.ID
	if id == "" {
		id = rollout.NextID(p.now(), pl.Taken...)
	}
	g, _, err := rollout.Generate(rollout.GenerateOptions{Domain: domain, Mode: next.Mode, MX: next.MX,
		MaxAge: next.MaxAge, ZeroMaxAge: next.MaxAge == 0, ID: id, Now: p.now()})
	if err != nil {
		return nil, &Error{Status: 422, Message: "the new policy is not valid: " + err.Error(), Err: err}
	}
	for _, t := range pl.Taken {
		if t == g.ID {
			return nil, &Error{Status: 409, Message: fmt.Sprintf("the id %s was used before for %s: reload to get a new one", g.ID, domain), Err: db.ErrIDUsed}
		}
	}
	pl.Next = &g
	pl.Policy, _ = rollout.ParsePolicy(g.Policy)
	if pl.Current != nil && pl.Latest != nil && rollout.SamePolicy(pl.Policy, *pl.Current) && req.Kind != rollout.KindPromote {
		pl.NoPlan = "the new policy would equal the published one"
		pl.Next = nil
	}
	return pl, nil
}

// Change makes the version req asks for, records it in the audit log and
// starts publishing it: the policy file first (at once when tlsrpt hosts
// it), then, after one verification poll, the record.
func (p *Promoter) Change(ctx context.Context, req ChangeRequest) (db.PolicyVersion, error) {
	pl, err := p.PlanChange(ctx, req)
	if err != nil {
		return db.PolicyVersion{}, err
	}
	domain := pl.Domain
	if pl.Next == nil {
		return db.PolicyVersion{}, fmt.Errorf("%s of %s: %w: %s", req.Kind, domain, ErrUnchanged, pl.NoPlan)
	}
	override := false
	if req.Kind == rollout.KindPromote && !pl.Verdict.Ready {
		codes := []string{} // an empty list in the audit log, never null
		for _, b := range pl.Verdict.Blockers {
			codes = append(codes, b.Code)
		}
		if !req.Override {
			p.audit(ctx, req.Actor, "policy.promote.refused", domain, map[string]any{"blockers": codes})
			return db.PolicyVersion{}, fmt.Errorf("promoting %s: %w (%s): promote with the override, the domain typed again and a reason", domain, ErrBlocked, strings.Join(codes, ", "))
		}
		confirm, _ := db.NormalizeDomain(req.Confirm)
		if confirm != domain || strings.TrimSpace(req.Reason) == "" {
			p.audit(ctx, req.Actor, "policy.promote.refused", domain, map[string]any{"blockers": codes, "confirm": req.Confirm, "reason": req.Reason})
			return db.PolicyVersion{}, fmt.Errorf("promoting %s: %w", domain, ErrConfirmation)
		}
		override = true
		p.audit(ctx, req.Actor, "policy.override", domain, map[string]any{"blockers": codes, "confirm": req.Confirm, "reason": req.Reason})
	}
	evidence, err := json.Marshal(pl.Verdict)
	if err != nil {
		return db.PolicyVersion{}, fmt.Errorf("encoding the evidence of %s: %w", domain, err)
	}
	v, err := p.DB.AddPolicyVersion(ctx, db.PolicyVersion{Domain: domain, Kind: req.Kind, Policy: pl.Policy,
		ID: pl.Next.ID, CreatedBy: req.Actor, Reason: req.Reason, Override: override, Evidence: evidence,
		PolicyMethod: p.policyMethod(), RecordMethod: p.recordMethod()})
	if err != nil {
		return v, err
	}
	p.audit(ctx, req.Actor, "policy."+req.Kind, domain, map[string]any{"seq": v.Seq, "id": v.ID, "mode": v.Policy.Mode,
		"mx": v.Policy.MX, "max_age": v.Policy.MaxAge, "reason": req.Reason, "override": override})
	if p.HostPolicy {
		if err := p.DB.MarkPolicyPublished(ctx, v.Seq, p.now()); err != nil {
			return v, err
		}
	}
	timeout := p.VerifyTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nv, err := p.Verify(vctx, domain)
	if err != nil && vctx.Err() != nil && ctx.Err() == nil {
		// The poll ran out of time: the version is made; the next poll
		// (tlsrpt serve's, or "Verify now") goes on.
		p.log().WarnContext(ctx, "Verification took too long", "domain", domain, "error", err)
		return p.DB.LatestPolicyVersion(ctx, domain)
	}
	return nv, err
}

// audit records an entry; a failure is logged, not returned: the change
// itself is what the caller asked for, and it is in policy_versions.
func (p *Promoter) audit(ctx context.Context, actor, action, domain string, detail any) {
	if actor == "" {
		actor = "unknown"
	}
	if _, err := p.DB.AddAudit(ctx, db.AuditEntry{Actor: actor, Action: action, Domain: domain, Detail: detail}); err != nil {
		p.log().ErrorContext(ctx, "Writing the audit log failed", "action", action, "domain", domain, "error", err)
	}
}

// Verify runs one verification poll of domain's newest version and moves
// its publishing on: it checks the live state, pushes the record once the
// policy file is served (the safe order), and stores the steps. Without an
// inspector it pushes the record after a hosted policy and stores no
// steps.
func (p *Promoter) Verify(ctx context.Context, domain string) (db.PolicyVersion, error) {
	versions, err := p.DB.PolicyVersions(ctx, domain, 2)
	if err != nil {
		return db.PolicyVersion{}, err
	}
	if len(versions) == 0 {
		return db.PolicyVersion{}, fmt.Errorf("verifying %s: no policy version: %w", domain, db.ErrNotFound)
	}
	v := versions[0]
	exp := rollout.Expected{Domain: v.Domain, Policy: v.Policy, ID: v.ID, Verified: v.VerifiedAt != nil}
	if len(versions) > 1 {
		exp.PreviousID = versions[1].ID
	}
	if v.PolicyMethod == rollout.PolicyHosted && v.PolicyPublishedAt == nil {
		if err := p.DB.MarkPolicyPublished(ctx, v.Seq, p.now()); err != nil {
			return v, err
		}
	}
	var steps []rollout.Step
	if p.Checker != nil {
		steps = rollout.VerifySteps(exp, p.Checker.Check(ctx, v.Domain))
	}
	policyLive := rollout.StepState(steps, rollout.StepPolicy) == rollout.StateDone ||
		(p.Checker == nil && v.PolicyMethod == rollout.PolicyHosted)
	if policyLive && v.RecordPublishedAt == nil && p.Records != nil && v.RecordMethod == p.Records.Method() {
		perr := p.pushRecord(ctx, v)
		if perr == nil && p.Checker != nil {
			steps = rollout.VerifySteps(exp, p.Checker.Check(ctx, v.Domain))
		}
	}
	if p.Checker != nil {
		if err := p.DB.SetVersionSteps(ctx, v.Seq, steps, p.now()); err != nil {
			return v, err
		}
		p.recordVerification(ctx, v, steps)
	}
	return p.DB.LatestPolicyVersion(ctx, v.Domain)
}

// actor is who the publisher's own entries in the audit log name.
func (p *Promoter) actor() string {
	if p.Actor != "" {
		return p.Actor
	}
	return "publisher"
}

// pushRecord pushes the TXT record of v and stores the outcome. It logs
// every push and audits it; a failure repeating the stored error (the
// poll retries every round) is logged only.
func (p *Promoter) pushRecord(ctx context.Context, v db.PolicyVersion) error {
	name, value := "_mta-sts."+v.Domain, rollout.Record{ID: v.ID}.String()
	perr := p.Records.PublishTXT(ctx, name, value)
	detail := map[string]any{"seq": v.Seq, "id": v.ID, "method": v.RecordMethod, "name": name + ".", "value": value}
	msg := ""
	if perr != nil {
		msg = perr.Error()
		p.log().WarnContext(ctx, "Pushing the MTA-STS record failed", "domain", v.Domain, "id", v.ID, "method", v.RecordMethod, "error", perr)
		detail["outcome"], detail["error"] = "failed", msg
	} else {
		p.log().InfoContext(ctx, "Pushed the MTA-STS record", "domain", v.Domain, "id", v.ID, "method", v.RecordMethod)
		detail["outcome"] = "pushed"
	}
	if perr == nil || msg != v.RecordError {
		p.audit(ctx, p.actor(), "policy.txt_push", v.Domain, detail)
	}
	if err := p.DB.MarkRecordPublished(ctx, v.Seq, p.now(), msg); err != nil {
		p.log().ErrorContext(ctx, "Storing the record push failed", "domain", v.Domain, "error", err)
	}
	return perr
}

// recordVerification logs each step of a verification poll of v, audits
// the poll when a step changed state since the stored poll (a poll runs
// every round: an entry per poll would bury the log), and notifies drift
// once per episode: when a step turns drifted that was not drifted.
func (p *Promoter) recordVerification(ctx context.Context, v db.PolicyVersion, steps []rollout.Step) {
	for _, s := range steps {
		p.log().InfoContext(ctx, "Verified a publishing step", "domain", v.Domain, "id", v.ID, "step", s.Name, "state", s.State, "detail", s.Detail)
	}
	live := rollout.StepsDone(steps)
	if !sameStates(v.Steps, steps) {
		outcome := "pending"
		switch {
		case live:
			outcome = "live"
		case drifted(steps):
			outcome = "drifted"
		}
		p.audit(ctx, p.actor(), "policy.verify", v.Domain, map[string]any{"seq": v.Seq, "id": v.ID, "outcome": outcome, "steps": steps})
	}
	if !drifted(steps) || drifted(v.Steps) {
		return
	}
	var what []string
	for _, s := range steps {
		if s.State == rollout.StateDrifted {
			what = append(what, s.Detail)
		}
	}
	p.log().WarnContext(ctx, "The published policy drifted", "domain", v.Domain, "id", v.ID)
	detail := map[string]any{"seq": v.Seq, "id": v.ID, "steps": steps}
	if p.Notifier.Configured() {
		a := Alert{Domain: v.Domain, Subject: "MTA-STS drift on " + v.Domain,
			Message: fmt.Sprintf("the live state is no longer version %s (mode %s): %s", v.ID, v.Policy.Mode, strings.Join(what, "; ")),
			Link:    p.domainLink(v.Domain), OpenedAt: p.now()}
		if err := p.Notifier.Notify(ctx, a); err != nil {
			p.log().WarnContext(ctx, "Notifying drift failed", "domain", v.Domain, "error", err)
			detail["notify_error"] = err.Error()
		} else {
			detail["notified"] = true
		}
	}
	p.audit(ctx, p.actor(), "policy.drift", v.Domain, detail)
}

// sameStates reports whether two polls saw every step in the same state.
func sameStates(a, b []rollout.Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].State != b[i].State {
			return false
		}
	}
	return true
}

func drifted(steps []rollout.Step) bool {
	for _, s := range steps {
		if s.State == rollout.StateDrifted {
			return true
		}
	}
	return false
}

// WaitVerified polls Verify every interval until the newest version of
// domain is verified, ctx ends or timeout passes; it returns the last
// state.
func (p *Promoter) WaitVerified(ctx context.Context, domain string, interval, timeout time.Duration) (db.PolicyVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		v, err := p.Verify(ctx, domain)
		if err != nil || rollout.StepsDone(v.Steps) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, nil
		case <-t.C:
		}
	}
}
