package publish

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// WatchResult is what one watch poll of a domain found.
type WatchResult struct {
	Domain     string
	Regression *rollout.Finding
	// Opened: a new episode began; Notified: a notification went out.
	Opened   bool
	Notified bool
}

// Watch is the post-enforce watch of one domain (docs/publishing.md, "The
// watch"): when its newest version is in enforce and live, the verdict is
// computed as for an enforcing domain, its trend window holding only the
// full days after the version went live (the live day mixes both
// policies; days before are the old version's); a regression opens an
// episode of that version and notifies once per episode, with the rollback
// proposal and a link to the domain page; no regression closes the
// episode. A new version gets its own episode.
func (p *Promoter) Watch(ctx context.Context, domain string) (WatchResult, error) {
	res := WatchResult{Domain: domain}
	// It opens and closes episodes from what it reads: the primary's
	// facts, not a replica's (db.Primary).
	ctx = db.Primary(ctx)
	v, err := p.DB.LatestPolicyVersion(ctx, domain)
	if errors.Is(err, db.ErrNotFound) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	if v.Policy.Mode != rollout.ModeEnforce {
		_, err := p.DB.CloseWatchEpisode(ctx, v.Domain, p.now())
		return res, err
	}
	liveAt := v.VerifiedAt
	if liveAt == nil && p.Checker == nil {
		liveAt = v.PolicyPublishedAt // no verification: published is live
	}
	firstDay := time.Time{}
	if liveAt != nil {
		firstDay = rollout.UTCDay(*liveAt).AddDate(0, 0, 1)
	}
	today := rollout.UTCDay(p.now())
	if liveAt == nil || !firstDay.Before(today) {
		// Not live yet, or no full day under it: nothing to compare.
		_, err := p.DB.CloseWatchEpisode(ctx, v.Domain, p.now())
		return res, err
	}
	t, err := p.DB.DomainThresholds(ctx, v.Domain)
	if err != nil {
		return res, err
	}
	f, err := p.DB.Facts(ctx, v.Domain, p.now(), t.SpanDays())
	if err != nil {
		return res, err
	}
	if trendFrom := today.AddDate(0, 0, -t.RisingDays); trendFrom.Before(firstDay) {
		f.DropDays(trendFrom, firstDay)
	}
	// The reports lag behind a promotion by a day or more; the version
	// is what is published.
	f.Policy = rollout.CurrentPolicy{Mode: rollout.ModeEnforce, MX: v.Policy.MX, MaxAge: v.Policy.MaxAge, ID: v.ID, Source: rollout.PolicySourceLive}
	verdict := rollout.Evaluate(f, t)
	for i := range verdict.Warnings {
		if verdict.Warnings[i].Code == rollout.WarningRegression {
			res.Regression = &verdict.Warnings[i]
		}
	}
	if res.Regression == nil {
		_, err := p.DB.CloseWatchEpisode(ctx, v.Domain, p.now())
		return res, err
	}
	ep, opened, err := p.DB.OpenWatchEpisode(ctx, v.Domain, v.Seq, p.now(), res.Regression)
	if err != nil {
		return res, err
	}
	res.Opened = opened
	if opened {
		p.audit(ctx, "watch", "watch.regression", v.Domain, map[string]any{"seq": v.Seq, "id": v.ID, "regression": res.Regression})
		p.log().WarnContext(ctx, "Failures rose after enforce", "domain", v.Domain, "id", v.ID, "message", res.Regression.Message)
	}
	if ep.NotifiedAt != nil || !p.Notifier.Configured() {
		return res, nil
	}
	a := Alert{Domain: v.Domain, Message: res.Regression.Message, Link: p.DomainLink(v.Domain), Rollback: verdict.Proposal, OpenedAt: ep.OpenedAt}
	nerr := p.Notifier.Notify(ctx, a)
	msg := ""
	if nerr != nil {
		msg = nerr.Error()
		p.log().WarnContext(ctx, "Notifying a regression failed", "domain", v.Domain, "error", nerr)
	}
	if err := p.DB.MarkEpisodeNotified(ctx, ep.ID, p.now(), msg); err != nil {
		return res, err
	}
	res.Notified = nerr == nil
	return res, nil
}

// DomainLink is the URL of domain's page on the dashboard, for
// notifications.
func (p *Promoter) DomainLink(domain string) string {
	if p.PublicURL == "" {
		return "/domains/" + domain
	}
	return strings.TrimRight(p.PublicURL, "/") + "/domains/" + domain
}
