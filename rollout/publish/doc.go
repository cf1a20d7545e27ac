// Package publish is the promotion service of tlsrpt (docs/publishing.md):
// it makes policy versions (promote, rollback, retire, mx move, ramp),
// drives the newest version of each domain to live with one reconciler,
// hosts the policy files, watches enforcing domains and notifies people.
// api (HTTP) and cmd/tlsrpt (the CLI and serve's poll loop) both call it;
// it knows nothing of HTTP routing.
//
// # Desired state and the reconciler
//
// The newest version of a domain is what should be live. Change only
// records it (and audits it) and returns: making the version of 1,000
// domains takes seconds. Reconcile drives one domain's newest version step
// by step, in the only safe order:
//
//  1. the policy file is served (at once when tlsrpt hosts it; the
//     operator serves a downloaded file);
//  2. the _mta-sts TXT record is pushed, only once step 1 is verified live
//     (a record naming a policy that is not served is a misconfiguration);
//  3. both are verified against DNS and HTTPS.
//
// Reconcile is idempotent and holds a per-domain PostgreSQL advisory lock
// (db.WithPublishLock) for its pass, so tlsrpt serve's loop, the page and
// a CLI run in another process never push at once. Every step and failure
// is logged (slog), audited when its state changes, and stored on the
// version with its cause and the one action that helps (rollout.Step).
// Run is serve's loop: it reconciles every domain whose newest version is
// not live each interval, checks live ones for drift hourly, and runs the
// watch; Kick(domain) wakes it at once after a change made in the process.
//
// # How each domain is published
//
// Promoter.Domains is the one hook for per-domain settings:
//
//	Domains func(ctx context.Context, domain string) (DomainConfig, error)
//
// It says whether tlsrpt hosts the policy file of the domain and which
// rollout.RecordPublisher pushes its TXT record (nil: by hand). A version
// records both methods when it is made, from this hook, never from the
// environment of the process that happens to run the command. When the hook
// is nil the static PromoteConfig applies (serve's and the CLI's
// environment), with one rule that keeps a domain's publishing its own: a
// domain whose previous version was hosted (or pushed by a publisher)
// keeps that method even when the process making the change has none.
package publish
