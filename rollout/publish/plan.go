package publish

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// ChangeRequest asks for a new policy version.
type ChangeRequest struct {
	Domain string
	// Kind is rollout.KindPromote, KindRollback, KindRetire, KindMXMove
	// or KindRamp.
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
	// MaxAge is the max_age to publish; 0 means the kind's default (the
	// domain's enforce max_age for a promotion, a day for a rollback or
	// a retirement, the current one for an mx move). A ramp needs it.
	MaxAge int64
}

// Plan is what a change would publish, computed from the verdict and the
// history: the promote panel shows it before anyone clicks.
type Plan struct {
	Domain  string
	Kind    string
	Verdict *rollout.Verdict
	// Current is the policy being published (the newest version, else
	// what the reports show); nil when unknown.
	Current   *rollout.Policy
	CurrentID string
	// Latest is the newest version, nil when tlsrpt made none; Live is
	// the newest version that was verified live, nil when none was.
	Latest *db.PolicyVersion
	Live   *db.PolicyVersion
	// Next is the policy, id and records to publish; nil with NoPlan set
	// when there is nothing to publish.
	Next   *rollout.Generated
	Policy rollout.Policy
	NoPlan string
	// Taken are the ids used before; a new id is never one of them.
	Taken []string
	// PolicyMethod and RecordMethod are how the new version would be
	// published (rollout.Policy*, rollout.Record*).
	PolicyMethod, RecordMethod string
}

// facts gathers what the verdict of domain reads: the facts from the
// store with the mode of the newest version tlsrpt made (the desired state:
// what the domain serves now or is being moved to, days before the reports
// show it; the mode comes from tlsrpt's own versions first), and the
// thresholds.
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
	case err == nil:
		f.ApplyVersion(pv.Policy, pv.ID)
	case !errors.Is(err, db.ErrNotFound):
		return f, t, err
	}
	return f, t, nil
}

// Facts is the facts and thresholds the verdict of domain reads (facts),
// for the pages that add a live check before they evaluate.
func (p *Promoter) Facts(ctx context.Context, domain string) (rollout.Facts, rollout.Thresholds, error) {
	return p.facts(ctx, domain)
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
	return p.PlanWithVerdict(ctx, req, nil)
}

// PlanWithVerdict is PlanChange with the verdict computed already (nil:
// compute it), so one page can plan several changes from one verdict.
func (p *Promoter) PlanWithVerdict(ctx context.Context, req ChangeRequest, v *rollout.Verdict) (*Plan, error) {
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
	for i, ver := range versions {
		pl.Taken = append(pl.Taken, ver.ID)
		if pl.Live == nil && ver.VerifiedAt != nil {
			pl.Live = &versions[i]
		}
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
	if pl.PolicyMethod, pl.RecordMethod, err = p.methods(ctx, domain, pl.Latest); err != nil {
		return nil, err
	}
	// latestLive: the newest version is live. A newest version that never
	// went live can always be replaced by another policy, or by the same
	// policy published another way (the methods differ); the same policy
	// the same way needs no new version: the reconciler publishes the
	// pending one (pendingNoPlan).
	latestLive := pl.Latest != nil && pl.Live == pl.Latest
	samePending := pl.Latest != nil && !latestLive && pl.Latest.PolicyMethod == pl.PolicyMethod && pl.Latest.RecordMethod == pl.RecordMethod
	var next rollout.Policy
	switch req.Kind {
	case rollout.KindPromote:
		if latestLive && pl.Latest.Policy.Mode == rollout.ModeEnforce {
			pl.NoPlan = "the domain is in enforce already (version " + pl.Latest.ID + " is live)"
			return pl, nil
		}
		if samePending && pl.Latest.Policy.Mode == rollout.ModeEnforce {
			pl.NoPlan = pendingNoPlan(*pl.Latest)
			return pl, nil
		}
		var mx []string
		switch {
		case pl.Latest != nil && len(pl.Latest.Policy.MX) > 0:
			mx = pl.Latest.Policy.MX
		case v.Proposal != nil:
			prop, err := rollout.ParsePolicy(v.Proposal.Policy)
			if err != nil {
				return nil, fmt.Errorf("reading the proposal of %s: %w", domain, err)
			}
			mx = prop.MX
		}
		if len(mx) == 0 {
			reason := v.Evidence.ProposalError
			switch {
			case reason != "":
			case v.Mode == rollout.ModeEnforce:
				reason = "the reports show the domain in enforce already and tlsrpt made no version of it"
			default:
				reason = "no mx list is known (no version, no policy in the reports or the live check)"
			}
			if !strings.Contains(reason, "nothing to propose") {
				reason = "nothing to propose: " + reason
			}
			pl.NoPlan = reason
			return pl, nil
		}
		next = rollout.Policy{Mode: rollout.ModeEnforce, MX: mx, MaxAge: v.Evidence.Thresholds.EnforceMaxAge}
		if next.MaxAge == 0 {
			next.MaxAge = rollout.DefaultMaxAgeEnforce
		}
	case rollout.KindRollback, rollout.KindRetire, rollout.KindMXMove, rollout.KindRamp:
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
		case rollout.KindRamp:
			if next.Mode != rollout.ModeEnforce {
				pl.NoPlan = fmt.Sprintf("a ramp changes the max_age of an enforcing policy; the policy is in mode %s", next.Mode)
				return pl, nil
			}
			if req.MaxAge <= 0 {
				pl.NoPlan = "a ramp needs the new max_age"
				return pl, nil
			}
		}
	default:
		return nil, fmt.Errorf("planning a change of %s: unknown kind %q", domain, req.Kind)
	}
	if req.MaxAge > 0 {
		next.MaxAge = req.MaxAge
	}
	id := req.ID
	if id == "" {
		id = rollout.NextID(p.now(), pl.Taken...)
	}
	g, _, err := rollout.Generate(rollout.GenerateOptions{Domain: domain, Mode: next.Mode, MX: next.MX,
		MaxAge: next.MaxAge, ZeroMaxAge: next.MaxAge == 0, ID: id, Now: p.now()})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if slices.Contains(pl.Taken, g.ID) {
		return nil, fmt.Errorf("the id %s was used before for %s: reload to get a new one: %w", g.ID, domain, db.ErrIDUsed)
	}
	pl.Next = &g
	pl.Policy, _ = rollout.ParsePolicy(g.Policy)
	switch {
	case latestLive && rollout.SamePolicy(pl.Policy, pl.Latest.Policy):
		pl.NoPlan = "the new policy would equal the live one (version " + pl.Latest.ID + ")"
		pl.Next = nil
	case samePending && rollout.SamePolicy(pl.Policy, pl.Latest.Policy):
		pl.NoPlan = pendingNoPlan(*pl.Latest)
		pl.Next = nil
	}
	return pl, nil
}

// pendingNoPlan says why a change that would repeat the pending version v
// makes none, and what publishes v instead.
func pendingNoPlan(v db.PolicyVersion) string {
	return fmt.Sprintf("version %s (mode %s) is being published the same way and is not live yet (%s): "+
		"no new version is needed; \"tlsrpt status %s --wait 10m\" or \"Verify now\" publishes and verifies it", v.ID, v.Policy.Mode, PendingSteps(v), v.Domain)
}

// PendingSteps names the steps of v that are not done, with their state
// ("policy pending, record pending"); "not verified yet" before the first
// check.
func PendingSteps(v db.PolicyVersion) string {
	var pending []string
	for _, st := range v.Steps {
		if st.State != rollout.StateDone {
			pending = append(pending, st.Name+" "+st.State)
		}
	}
	if len(pending) == 0 {
		if len(v.Steps) == 0 {
			return "not verified yet"
		}
		return "all steps done"
	}
	return strings.Join(pending, ", ")
}
