package autopilot

import (
	"context"
	"log/slog"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/rollout/publish"
)

// New returns the engine that makes its versions through p: the same
// versions, reconciler, watch and notifier as a promotion by hand.
func New(p *publish.Promoter) *Engine {
	e := &Engine{DB: p.DB, Publisher: Promoter{P: p}, Now: p.Now, Log: p.Log, PublicURL: p.PublicURL}
	if p.Notifier.Configured() {
		e.Notifier = notifier{p.Notifier}
	}
	return e
}

// Promoter is the Publisher over the promotion service.
type Promoter struct {
	P *publish.Promoter
	// ReconcileTimeout bounds the reconciler pass a change runs before it
	// returns; 0 means 20 seconds. A pass cut short is taken up by serve's
	// loop (or the next "tlsrpt status").
	ReconcileTimeout time.Duration
}

var _ Publisher = Promoter{}

// Verdict is the readiness verdict of domain as the promote panel computes
// it, with the live check's findings when the promoter has a checker.
func (a Promoter) Verdict(ctx context.Context, domain string) (*rollout.Verdict, *rollout.CheckResult, error) {
	f, t, err := a.P.Facts(ctx, domain)
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
func (a Promoter) Regression(ctx context.Context, domain string) (*rollout.Finding, error) {
	res, err := a.P.Watch(ctx, domain)
	return res.Regression, err
}

// Change records the version c asks for and runs one pass of the
// reconciler, so that the version is published (and, with a live check,
// verified) when it returns as far as DNS and HTTPS allow; serve's loop
// goes on with it otherwise.
func (a Promoter) Change(ctx context.Context, c Change) (db.PolicyVersion, error) {
	v, err := a.P.Change(ctx, publish.ChangeRequest{Domain: c.Domain, Kind: c.Kind, Actor: c.Actor, Reason: c.Reason, MaxAge: c.MaxAge})
	if err != nil {
		return v, err
	}
	timeout := a.ReconcileTimeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nv, err := a.P.Reconcile(rctx, v.Domain)
	if err != nil || nv.Seq != v.Seq {
		if err != nil && ctx.Err() == nil {
			logger(a.P.Log).WarnContext(ctx, "Publishing the autopilot's version goes on in the background", "domain", v.Domain, "id", v.ID, "error", err)
		}
		return v, nil
	}
	return nv, nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

// notifier sends the autopilot's alerts through the promoter's notifier.
type notifier struct{ n *publish.Notifier }

func (an notifier) Notify(ctx context.Context, a Alert) error {
	return an.n.Notify(ctx, publish.Alert{Domain: a.Domain, Subject: a.Subject, Message: a.Message, Link: a.Link, OpenedAt: a.At})
}
