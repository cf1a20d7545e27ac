package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/errtext"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// ErrBusy: another process reconciles the domain right now (the
// per-domain lock is taken); its pass publishes the same version.
var ErrBusy = errors.New("publish: the domain is being published by another process")

// Reconcile runs one pass of the reconciler over domain's newest version
// (the package doc): the hosted policy file served, the live state
// checked, the TXT record pushed once the policy file is live, checked
// again, and the steps stored, logged and audited. It is idempotent and
// waits for the per-domain lock, so two processes never push at once; the
// second pass sees what the first did. A failed push is stored on the
// version (RecordError), not returned: the caller reads the version.
func (p *Promoter) Reconcile(ctx context.Context, domain string) (db.PolicyVersion, error) {
	return p.reconcile(ctx, domain, true, false)
}

// Verify is Reconcile: the name of the page's "Verify now" button and of
// POST /api/v1/domains/{domain}/verify.
func (p *Promoter) Verify(ctx context.Context, domain string) (db.PolicyVersion, error) {
	return p.Reconcile(ctx, domain)
}

// Push is the "push again" action (the page's button, POST
// /api/v1/domains/{domain}/push, "tlsrpt status DOMAIN --push"): one
// reconciler pass that pushes the TXT record of the newest version even
// when it was pushed before (a drifted or hand-edited record). It refuses
// with ErrNotPushable while the policy file is not live (the record must
// never name a policy that is not served) or when the domain's record is
// set by hand. actor is audited with the request; the push itself is
// audited as every push is.
func (p *Promoter) Push(ctx context.Context, domain, actor string) (db.PolicyVersion, error) {
	v, err := p.reconcile(ctx, domain, true, true)
	detail := map[string]any{"seq": v.Seq, "id": v.ID}
	if err != nil {
		detail["refused"] = err.Error()
	}
	if v.Seq != 0 || err == nil {
		p.audit(ctx, actor, "policy.push_again", v.Domain, detail)
	}
	return v, err
}

func (p *Promoter) reconcile(ctx context.Context, domain string, wait, force bool) (db.PolicyVersion, error) {
	domain, err := db.NormalizeDomain(domain)
	if err != nil {
		return db.PolicyVersion{}, fmt.Errorf("publishing: %w", err)
	}
	// At most maxPasses passes hold a lock at once in this process: each
	// holds a pool connection for its lock and needs others for its work.
	select {
	case p.passSlots() <- struct{}{}:
		defer func() { <-p.passSlots() }()
	case <-ctx.Done():
		return db.PolicyVersion{}, fmt.Errorf("publishing %s: %w", domain, ctx.Err())
	}
	var out db.PolicyVersion
	locked, err := p.DB.WithPublishLock(ctx, domain, wait, func() error {
		var perr error
		out, perr = p.pass(ctx, domain, force)
		return perr
	})
	if err == nil && !locked {
		return out, fmt.Errorf("publishing %s: %w", domain, ErrBusy)
	}
	return out, err
}

// maxPasses bounds the concurrent passes of one process (pgxpool's
// default pool has four connections).
const maxPasses = 2

func (p *Promoter) passSlots() chan struct{} {
	p.slotsOnce.Do(func() { p.slots = make(chan struct{}, maxPasses) })
	return p.slots
}

// pass is one reconciler pass; the caller holds the domain's lock.
func (p *Promoter) pass(ctx context.Context, domain string, force bool) (db.PolicyVersion, error) {
	versions, err := p.DB.PolicyVersions(ctx, domain, 0)
	if err != nil {
		return db.PolicyVersion{}, err
	}
	if len(versions) == 0 {
		return db.PolicyVersion{}, fmt.Errorf("publishing %s: no policy version: %w", domain, db.ErrNotFound)
	}
	v := versions[0]
	exp := rollout.Expected{Domain: v.Domain, Policy: v.Policy, ID: v.ID, Verified: v.VerifiedAt != nil}
	if len(versions) > 1 {
		exp.PreviousID = versions[1].ID
	}
	for _, old := range versions[1:] {
		exp.Known = append(exp.Known, old.ID)
	}
	// Step 1: the policy file. A hosted one is served from the moment it
	// is marked; a downloaded one is the operator's to serve.
	if v.PolicyMethod == rollout.PolicyHosted && v.PolicyPublishedAt == nil {
		if err := p.servePolicy(ctx, p.actor(), v); err != nil {
			return v, err
		}
	}
	pub, err := p.publisher(ctx, v)
	if err != nil {
		return v, err
	}
	var steps []rollout.Step
	if p.Checker != nil {
		steps = rollout.VerifySteps(exp, p.Checker.Check(ctx, v.Domain))
	}
	policyLive := rollout.StepState(steps, rollout.StepPolicy) == rollout.StateDone ||
		(p.Checker == nil && v.PolicyMethod == rollout.PolicyHosted)
	if force {
		switch {
		case pub == nil:
			return v, fmt.Errorf("pushing the record of %s: %w: the record is set by %s, not by a publisher this process has", domain, ErrNotPushable, v.RecordMethod)
		case !policyLive:
			return v, fmt.Errorf("pushing the record of %s: %w: the policy file is not live yet (%s)", domain, ErrNotPushable,
				stepDetail(steps, rollout.StepPolicy))
		}
	}
	// Step 2: the record, only once the file is live (the safe order).
	if policyLive && pub != nil && (v.RecordPublishedAt == nil || force) {
		perr := p.pushRecord(ctx, pub, v)
		if perr == nil && p.Checker != nil {
			steps = rollout.VerifySteps(exp, p.Checker.Check(ctx, v.Domain))
		}
	}
	// Step 3: both verified (stored with the state of each step).
	if p.Checker != nil {
		if err := p.DB.SetVersionSteps(ctx, v.Seq, steps, p.now()); err != nil {
			return v, err
		}
		p.recordVerification(ctx, v, steps)
	}
	return p.DB.LatestPolicyVersion(ctx, v.Domain)
}

// servePolicy marks the hosted policy file of v published: from now on
// the policy host serves it. Logged and audited once (the state change).
func (p *Promoter) servePolicy(ctx context.Context, actor string, v db.PolicyVersion) error {
	if err := p.DB.MarkPolicyPublished(ctx, v.Seq, p.now()); err != nil {
		return err
	}
	p.log().InfoContext(ctx, "Serving the hosted policy file", "domain", v.Domain, "id", v.ID)
	p.audit(ctx, actor, "policy.file_served", v.Domain, map[string]any{"seq": v.Seq, "id": v.ID, "url": rollout.PolicyURL(v.Domain)})
	return nil
}

// publisher returns the record publisher of v when this process has the
// one v's record method names; nil for a record set by hand or pushed by a
// publisher another process has (serve's).
func (p *Promoter) publisher(ctx context.Context, v db.PolicyVersion) (rollout.RecordPublisher, error) {
	c, err := p.DomainConfig(ctx, v.Domain)
	if err != nil {
		return nil, err
	}
	if c.Records == nil || c.Records.Method() != v.RecordMethod {
		return nil, nil
	}
	return c.Records, nil
}

func stepDetail(steps []rollout.Step, name string) string {
	for _, s := range steps {
		if s.Name == name {
			return s.Detail
		}
	}
	return "not verified"
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
func (p *Promoter) pushRecord(ctx context.Context, pub rollout.RecordPublisher, v db.PolicyVersion) error {
	name, value := "_mta-sts."+v.Domain, rollout.Record{ID: v.ID}.String()
	perr := pub.PublishTXT(ctx, name, value)
	detail := map[string]any{"seq": v.Seq, "id": v.ID, "method": v.RecordMethod, "name": name + ".", "value": value}
	msg := ""
	if perr != nil {
		// Stored and shown on the page, the API and the CLI: without
		// package prefixes (the log keeps the error as it is).
		msg = errtext.Plain(perr)
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

// recordVerification logs the steps of a verification pass of v (Info when
// a step changed state since the stored pass, Debug otherwise: serve
// polls every domain), audits the pass when a step changed state, and
// notifies drift once per episode: when a step turns drifted that was not
// drifted.
func (p *Promoter) recordVerification(ctx context.Context, v db.PolicyVersion, steps []rollout.Step) {
	changed := !sameStates(v.Steps, steps)
	for _, s := range steps {
		if changed {
			p.log().InfoContext(ctx, "Verified a publishing step", "domain", v.Domain, "id", v.ID, "step", s.Name, "state", s.State, "detail", s.Detail)
		} else {
			p.log().DebugContext(ctx, "Verified a publishing step", "domain", v.Domain, "id", v.ID, "step", s.Name, "state", s.State)
		}
	}
	live := rollout.StepsDone(steps)
	if changed {
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
			Link:    p.DomainLink(v.Domain), OpenedAt: p.now()}
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

// WaitLive runs Reconcile every interval until the newest version of
// domain is verified live, ctx ends or timeout passes; it returns the last
// state. Without a server running, this is what completes a publication
// from the CLI.
func (p *Promoter) WaitLive(ctx context.Context, domain string, interval, timeout time.Duration) (db.PolicyVersion, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	var last db.PolicyVersion
	for {
		v, err := p.Reconcile(ctx, domain)
		if err != nil && ctx.Err() != nil && last.Seq != 0 {
			// Cut short by the timeout mid-pass: the last full pass
			// stands.
			return last, nil
		}
		if err != nil || rollout.StepsDone(v.Steps) {
			return v, err
		}
		last = v
		select {
		case <-ctx.Done():
			return v, nil
		case <-t.C:
		}
	}
}
