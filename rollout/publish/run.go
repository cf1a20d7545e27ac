package publish

import (
	"context"
	"errors"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// driftInterval is how often the poll loop checks a verified version.
const driftInterval = time.Hour

// Follow-ups of a kicked domain: a pass right after the change, then every
// followEvery while it is not live, for at most followFor (DNS caches and
// the policy host's certificate take a while); the interval takes over
// after that.
const (
	followEvery = 5 * time.Second
	followFor   = 2 * time.Minute
)

// Run is tlsrpt serve's reconciler loop, until ctx ends: every interval,
// pollOnce (each domain whose newest version is not live is reconciled;
// a live one is checked for drift hourly; the watch runs); a domain kicked
// (Kick) after a change in this process is reconciled at once and followed
// every few seconds until live. Errors are logged; the next round tries
// again.
func (p *Promoter) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	follow := time.NewTicker(followEvery)
	defer follow.Stop()
	following := map[string]time.Time{} // domain → until (wall clock)
	kicks := p.kickChan()
	for {
		p.pollOnce(ctx)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				waiting = false
			case d := <-kicks:
				if !p.kicked(ctx, d) {
					following[d] = time.Now().Add(followFor)
				}
			case <-follow.C:
				for d, until := range following {
					if time.Now().After(until) || p.kicked(ctx, d) {
						delete(following, d)
					}
				}
			}
		}
	}
}

// kicked reconciles domain for Run after a kick; it reports whether the
// domain needs no follow-up (live, gone, or a hard error logged).
func (p *Promoter) kicked(ctx context.Context, domain string) bool {
	v, err := p.reconcile(ctx, domain, false, false)
	switch {
	case errors.Is(err, ErrBusy):
		return false // another pass runs now; follow up later
	case errors.Is(err, db.ErrNotFound):
		return true
	case err != nil:
		p.log().WarnContext(ctx, "Publishing the policy failed", "domain", domain, "error", err)
		return false
	}
	return rollout.StepsDone(v.Steps) || p.Checker == nil
}

// pollOnce is one round of Run; it returns how many domains it looked at.
func (p *Promoter) pollOnce(ctx context.Context) int {
	domains, err := p.DB.Domains(ctx)
	if err != nil {
		p.log().ErrorContext(ctx, "Listing domains for the publisher failed", "error", err)
		return 0
	}
	n := 0
	for _, d := range domains {
		if ctx.Err() != nil {
			return n
		}
		v, err := p.DB.LatestPolicyVersion(ctx, d.Name)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			p.log().WarnContext(ctx, "Reading the policy version failed", "domain", d.Name, "error", err)
			continue
		}
		n++
		// A version that is not live is reconciled every round; a live
		// one is checked for drift once per driftInterval, not at every
		// poll: each check is DNS and HTTPS traffic to the domain.
		live := v.VerifiedAt != nil && rollout.StepsDone(v.Steps)
		if !live || v.LastCheckedAt == nil || p.now().Sub(*v.LastCheckedAt) >= driftInterval {
			if _, err := p.reconcile(ctx, d.Name, false, false); err != nil && !errors.Is(err, ErrBusy) {
				p.log().WarnContext(ctx, "Publishing the policy failed", "domain", d.Name, "error", err)
			}
		}
		if _, err := p.Watch(ctx, d.Name); err != nil {
			p.log().WarnContext(ctx, "Watching the domain failed", "domain", d.Name, "error", err)
		}
	}
	return n
}

// PollOnce is one round of Run, for tests and tools that drive the loop
// themselves; it returns how many domains it looked at.
func (p *Promoter) PollOnce(ctx context.Context) int { return p.pollOnce(ctx) }
