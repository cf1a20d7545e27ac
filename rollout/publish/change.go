package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Change records the version req asks for (the desired state), audits it
// and returns without waiting for DNS or HTTPS: the reconciler publishes
// it (Reconcile; Kick wakes serve's loop at once). A hosted policy file is
// served from the moment the version is made.
func (p *Promoter) Change(ctx context.Context, req ChangeRequest) (db.PolicyVersion, error) {
	pl, err := p.PlanChange(ctx, req)
	if err != nil {
		return db.PolicyVersion{}, err
	}
	domain := pl.Domain
	if pl.Next == nil {
		return db.PolicyVersion{}, fmt.Errorf("%s of %s: %w: %s", req.Kind, domain, ErrUnchanged, pl.NoPlan)
	}
	override, err := p.gate(ctx, req, pl)
	if err != nil {
		return db.PolicyVersion{}, err
	}
	evidence, err := json.Marshal(pl.Verdict)
	if err != nil {
		return db.PolicyVersion{}, fmt.Errorf("encoding the evidence of %s: %w", domain, err)
	}
	pm, rm := pl.PolicyMethod, pl.RecordMethod
	v, err := p.DB.AddPolicyVersion(ctx, db.PolicyVersion{Domain: domain, Kind: req.Kind, Policy: pl.Policy,
		ID: pl.Next.ID, CreatedBy: req.Actor, Reason: req.Reason, Override: override, Evidence: evidence,
		PolicyMethod: pm, RecordMethod: rm})
	if err != nil {
		return v, err
	}
	detail := map[string]any{"seq": v.Seq, "id": v.ID, "mode": v.Policy.Mode, "mx": v.Policy.MX,
		"max_age": v.Policy.MaxAge, "reason": req.Reason, "override": override, "policy_method": pm, "record_method": rm}
	if pl.Latest != nil && pl.Latest.VerifiedAt == nil {
		// The version replaces one that never went live.
		detail["replaces"] = pl.Latest.ID
	}
	p.audit(ctx, req.Actor, "policy."+req.Kind, domain, detail)
	p.log().InfoContext(ctx, "Made a policy version", "domain", domain, "id", v.ID, "kind", v.Kind, "mode", v.Policy.Mode,
		"policy_method", pm, "record_method", rm, "actor", req.Actor)
	if pm == rollout.PolicyHosted {
		if err := p.servePolicy(ctx, req.Actor, v); err != nil {
			return v, err
		}
		if v, err = p.DB.LatestPolicyVersion(ctx, domain); err != nil {
			return v, err
		}
	}
	p.Kick(domain)
	return v, nil
}

// gate is the readiness gate of a promotion: a blocked verdict needs the
// override with the domain typed again and a reason. It audits a refusal
// and an override, always with a list of blockers (never null), and
// returns whether the override was used. A promotion that replaces an
// enforce version that never went live passes: that version passed the
// gate when it was made.
func (p *Promoter) gate(ctx context.Context, req ChangeRequest, pl *Plan) (bool, error) {
	domain := pl.Domain
	if req.Kind != rollout.KindPromote || pl.Verdict.Ready {
		return false, nil
	}
	if pl.Latest != nil && pl.Latest.Policy.Mode == rollout.ModeEnforce && pl.Latest.VerifiedAt == nil {
		return false, nil
	}
	codes := []string{} // an empty list in the audit log, never null
	for _, b := range pl.Verdict.Blockers {
		codes = append(codes, b.Code)
	}
	why := strings.Join(codes, ", ")
	if why == "" {
		why = "the verdict sees mode " + string(pl.Verdict.Mode) + ", not testing"
	}
	if !req.Override {
		p.audit(ctx, req.Actor, "policy.promote.refused", domain, map[string]any{"blockers": codes, "reason": why})
		return false, fmt.Errorf("promoting %s: %w (%s): promote with the override, the domain typed again and a reason", domain, ErrBlocked, why)
	}
	confirm, _ := db.NormalizeDomain(req.Confirm)
	if confirm != domain || strings.TrimSpace(req.Reason) == "" {
		p.audit(ctx, req.Actor, "policy.promote.refused", domain, map[string]any{"blockers": codes, "confirm": req.Confirm, "reason": req.Reason})
		return false, fmt.Errorf("promoting %s: %w", domain, ErrConfirmation)
	}
	p.audit(ctx, req.Actor, "policy.override", domain, map[string]any{"blockers": codes, "confirm": req.Confirm, "reason": req.Reason})
	return true, nil
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
