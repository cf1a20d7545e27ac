package api

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/autopilot"
)

// AutopilotPublisher is the autopilot's publishing path over the Promoter:
// the same versions, record pushes, verification and watch as a promotion
// by hand, with the max_age the ramp asks for.
type AutopilotPublisher struct {
	P *Promoter
}

var _ autopilot.Publisher = AutopilotPublisher{}

// Verdict is the readiness verdict of domain as the promote panel computes
// it, with the live check's findings when the promoter has a checker.
func (a AutopilotPublisher) Verdict(ctx context.Context, domain string) (*rollout.Verdict, *rollout.CheckResult, error) {
	f, t, err := a.P.facts(ctx, domain)
	if err != nil {
		return nil, nil, err
	}
	var check *rollout.CheckResult
	if a.P.Checker != nil {
		check = a.P.Checker.Check(ctx, domain)
		f.ApplyCheck(check)
	}
	v := rollout.Evaluate(f, t)
	return &v, check, nil
}

// Regression runs the post-enforce watch of domain (which opens and
// notifies its episode) and returns its finding.
func (a AutopilotPublisher) Regression(ctx context.Context, domain string) (*rollout.Finding, error) {
	res, err := a.P.Watch(ctx, domain)
	return res.Regression, err
}

// Change makes the version c asks for and runs one verification poll, as
// Promoter.Change does. A rollback is Promoter.Change itself; a promotion
// and a ramp step carry the max_age of the ramp.
func (a AutopilotPublisher) Change(ctx context.Context, c autopilot.Change) (db.PolicyVersion, error) {
	p := a.P
	switch c.Kind {
	case rollout.KindRollback:
		return p.Change(ctx, ChangeRequest{Domain: c.Domain, Kind: c.Kind, Actor: c.Actor, Reason: c.Reason})
	case rollout.KindPromote:
		pl, err := p.PlanChange(ctx, ChangeRequest{Domain: c.Domain, Kind: rollout.KindPromote})
		if err != nil {
			return db.PolicyVersion{}, err
		}
		if pl.Next == nil {
			return db.PolicyVersion{}, fmt.Errorf("promoting %s: %w: %s", pl.Domain, ErrUnchanged, pl.NoPlan)
		}
		if !pl.Verdict.Ready {
			return db.PolicyVersion{}, fmt.Errorf("promoting %s: %w", pl.Domain, ErrBlocked)
		}
		pol := pl.Policy
		if c.MaxAge > 0 {
			pol.MaxAge = c.MaxAge
		}
		return a.add(ctx, c, pol, pl.Next.ID, pl.Verdict)
	case autopilot.KindRamp:
		versions, err := p.DB.PolicyVersions(ctx, c.Domain, 0)
		if err != nil {
			return db.PolicyVersion{}, err
		}
		if len(versions) == 0 || versions[0].Policy.Mode != rollout.ModeEnforce {
			return db.PolicyVersion{}, fmt.Errorf("raising the max_age of %s: %w: the domain is not in enforce", c.Domain, ErrUnchanged)
		}
		if c.MaxAge == versions[0].Policy.MaxAge {
			return db.PolicyVersion{}, fmt.Errorf("raising the max_age of %s: %w: max_age is %d already", c.Domain, ErrUnchanged, c.MaxAge)
		}
		taken := make([]string, 0, len(versions))
		for _, v := range versions {
			taken = append(taken, v.ID)
		}
		pol := versions[0].Policy
		pol.MaxAge = c.MaxAge
		return a.add(ctx, c, pol, rollout.NextID(p.now(), taken...), nil)
	}
	return db.PolicyVersion{}, fmt.Errorf("changing %s: unknown kind %q", c.Domain, c.Kind)
}

// add stores the version, audits it as policy.<kind> and starts publishing
// it: the hosted file at once, the record after one verification poll.
func (a AutopilotPublisher) add(ctx context.Context, c autopilot.Change, pol rollout.Policy, id string, verdict *rollout.Verdict) (db.PolicyVersion, error) {
	p := a.P
	var evidence json.RawMessage
	if verdict != nil {
		b, err := json.Marshal(verdict)
		if err != nil {
			return db.PolicyVersion{}, fmt.Errorf("encoding the evidence of %s: %w", c.Domain, err)
		}
		evidence = b
	}
	v, err := p.DB.AddPolicyVersion(ctx, db.PolicyVersion{Domain: c.Domain, Kind: c.Kind, Policy: pol, ID: id,
		CreatedBy: c.Actor, Reason: c.Reason, Evidence: evidence, PolicyMethod: p.policyMethod(), RecordMethod: p.recordMethod()})
	if err != nil {
		return v, err
	}
	p.audit(ctx, c.Actor, "policy."+c.Kind, v.Domain, map[string]any{"seq": v.Seq, "id": v.ID, "mode": v.Policy.Mode,
		"mx": v.Policy.MX, "max_age": v.Policy.MaxAge, "reason": c.Reason, "override": false})
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
	nv, err := p.Verify(vctx, v.Domain)
	if err != nil && vctx.Err() != nil && ctx.Err() == nil {
		return p.DB.LatestPolicyVersion(ctx, v.Domain)
	}
	return nv, err
}

// autopilotNotifier sends the autopilot's alerts through the Notifier.
type autopilotNotifier struct{ n *Notifier }

func (an autopilotNotifier) Notify(ctx context.Context, a autopilot.Alert) error {
	return an.n.Notify(ctx, Alert{Domain: a.Domain, Subject: a.Subject, Message: a.Message, Link: a.Link, OpenedAt: a.At})
}

// NewAutopilot returns the autopilot engine over p, alerting through p's
// notifier.
func NewAutopilot(p *Promoter) *autopilot.Engine {
	e := &autopilot.Engine{DB: p.DB, Publisher: AutopilotPublisher{P: p}, Now: p.Now, Log: p.Log, PublicURL: p.PublicURL}
	if p.Notifier.Configured() {
		e.Notifier = autopilotNotifier{p.Notifier}
	}
	return e
}

// Autopilot returns the server's autopilot engine.
func (s *Server) Autopilot() *autopilot.Engine { return NewAutopilot(s.Promoter()) }
