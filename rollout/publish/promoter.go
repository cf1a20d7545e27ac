package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Errors of a policy change; the handlers turn them into 409/422 with the
// message, the CLI into exit codes.
var (
	// ErrBlocked: the verdict is blocked and no override was given.
	ErrBlocked = errors.New("publish: the verdict is blocked")
	// ErrConfirmation: an override without the domain typed again or
	// without a reason.
	ErrConfirmation = errors.New("publish: the override needs the domain typed again and a reason")
	// ErrNoPolicy: no current policy or mx list is known to change.
	ErrNoPolicy = errors.New("publish: no policy to change")
	// ErrUnchanged: the change would publish what is published.
	ErrUnchanged = errors.New("publish: nothing to change")
	// ErrInvalid: the policy the change would publish is not valid (a
	// bad mx pattern or max_age).
	ErrInvalid = errors.New("publish: the new policy is not valid")
	// ErrNotPushable: a push was asked for while the policy file is not
	// live, or the domain has no record publisher.
	ErrNotPushable = errors.New("publish: the record cannot be pushed now")
)

// PromoteConfig is how the server publishes policy versions when no
// per-domain settings exist (Promoter.Domains nil), and the checker and
// notifier every domain shares (docs/publishing.md).
type PromoteConfig struct {
	// HostPolicy: tlsrpt serves /.well-known/mta-sts.txt for
	// mta-sts.<domain> itself, so a version's policy file is live the
	// moment it is made. Off, the file is handed over for download and
	// the record waits until verification sees the file served.
	HostPolicy bool
	// Records pushes the _mta-sts TXT record; nil means by hand (the page
	// shows the provider steps).
	Records rollout.RecordPublisher
	// Checker checks the live state; nil means no verification (a
	// hosted file counts as live and the record is pushed at once).
	Checker *rollout.Inspector
	// Notifier tells about regressions of enforcing domains and drift;
	// nil means the watch only records episodes.
	Notifier *Notifier
}

// DomainConfig is how one domain is published: the answer of
// Promoter.Domains.
type DomainConfig struct {
	// HostPolicy: tlsrpt serves the domain's policy file.
	HostPolicy bool
	// Records pushes the domain's TXT record; nil means by hand.
	Records rollout.RecordPublisher
}

// policyMethod is the rollout.Policy* method of c.
func (c DomainConfig) policyMethod() string {
	if c.HostPolicy {
		return rollout.PolicyHosted
	}
	return rollout.PolicyDownload
}

// recordMethod is the rollout.Record* method of c.
func (c DomainConfig) recordMethod() string {
	if c.Records != nil {
		return c.Records.Method()
	}
	return rollout.RecordManual
}

// Promoter makes, publishes and verifies policy versions: the one
// implementation behind the promote panel, the JSON API, "tlsrpt
// promote"/"rollback"/"status" and serve's poll loop.
type Promoter struct {
	DB *db.DB
	PromoteConfig
	// Domains returns how domain is published (the per-domain settings);
	// nil means PromoteConfig for every domain (see the package doc).
	Domains func(ctx context.Context, domain string) (DomainConfig, error)
	// PublicURL is the dashboard's base URL, for links in notifications.
	PublicURL string
	Now       func() time.Time
	Log       *slog.Logger
	// Actor names the publisher in the audit log entries of pushes,
	// verifications and drift; "" means "publisher" (tlsrpt serve).
	Actor string

	kickOnce  sync.Once
	kicks     chan string
	slotsOnce sync.Once
	slots     chan struct{}
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

// DomainConfig returns how domain is published: Domains, else the static
// PromoteConfig.
func (p *Promoter) DomainConfig(ctx context.Context, domain string) (DomainConfig, error) {
	if p.Domains != nil {
		c, err := p.Domains(ctx, domain)
		if err != nil {
			return c, fmt.Errorf("reading how %s is published: %w", domain, err)
		}
		return c, nil
	}
	return DomainConfig{HostPolicy: p.HostPolicy, Records: p.Records}, nil
}

// methods returns the policy and record methods a new version of domain
// records: from the domain's config; without per-domain settings a method
// the process lacks is inherited from prev, so a shell without
// TLSRPT_HOST_POLICY never turns a hosted domain into a download one.
func (p *Promoter) methods(ctx context.Context, domain string, prev *db.PolicyVersion) (string, string, error) {
	c, err := p.DomainConfig(ctx, domain)
	if err != nil {
		return "", "", err
	}
	pm, rm := c.policyMethod(), c.recordMethod()
	if p.Domains == nil && prev != nil {
		if pm == rollout.PolicyDownload && prev.PolicyMethod == rollout.PolicyHosted {
			pm = rollout.PolicyHosted
		}
		if rm == rollout.RecordManual && prev.RecordMethod != "" {
			rm = prev.RecordMethod
		}
	}
	return pm, rm, nil
}

// Kick asks Run to reconcile domain now instead of at the next interval;
// it never blocks (a full queue drops the kick: the interval catches up).
func (p *Promoter) Kick(domain string) {
	select {
	case p.kickChan() <- domain:
	default:
	}
}

func (p *Promoter) kickChan() chan string {
	p.kickOnce.Do(func() { p.kicks = make(chan string, 1024) })
	return p.kicks
}
