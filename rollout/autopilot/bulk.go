package autopilot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// Outcomes of a bulk promotion, per domain.
const (
	OutcomePromoted = "promoted" // a version in enforce was made (or would be, in a dry run)
	OutcomeBlocked  = "blocked"  // the domain's own verdict is blocked: listed and skipped
	OutcomeSkipped  = "skipped"  // nothing to promote (in enforce already, retired, not listed)
	OutcomeError    = "error"    // the promotion failed
)

// MaxBulkDomains bounds one bulk promotion.
const MaxBulkDomains = 10000

// bulkWorkers is how many domains a bulk promotion handles at once: the
// work is database round trips and the publisher's first poll.
const bulkWorkers = 4

// BulkRequest asks to promote many domains, each on its own verdict.
type BulkRequest struct {
	Domains []string
	Reason  string
	Actor   string
	DryRun  bool
}

// BulkResult is the outcome for one domain.
type BulkResult struct {
	Domain  string `json:"domain"`
	Outcome string `json:"outcome"`
	// ID is the id of the version made (or, in a dry run, "").
	ID     string `json:"id,omitempty"`
	MaxAge int64  `json:"max_age,omitempty"`
	// Blockers are the codes of the blocked verdict.
	Blockers []string `json:"blockers"`
	Message  string   `json:"message,omitempty"`
}

// ErrTooManyDomains is returned for a bulk promotion of more than
// MaxBulkDomains domains.
var ErrTooManyDomains = errors.New("autopilot: too many domains")

// BulkPromote promotes each domain of req whose own verdict is ready; the
// blocked ones are listed with their blockers and left alone (an override
// is made one domain at a time, through the single promotion). A domain
// whose autopilot is on starts at the first stage of its ramp; the others
// get the max_age the verdict proposes, as a promotion by hand. Each
// version is audited by the publisher; the whole request once more as
// "promotions.bulk".
func (e *Engine) BulkPromote(ctx context.Context, req BulkRequest) ([]BulkResult, error) {
	if len(req.Domains) > MaxBulkDomains {
		return nil, fmt.Errorf("promoting %d domains: %w (at most %d at once)", len(req.Domains), ErrTooManyDomains, MaxBulkDomains)
	}
	start := time.Now()
	all, err := e.DB.AllAutopilotSettings(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]BulkResult, len(req.Domains))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range bulkWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i] = e.promoteOne(ctx, req, req.Domains[i], all)
			}
		}()
	}
	for i := range req.Domains {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	counts := map[string]int{}
	for _, r := range out {
		counts[r.Outcome]++
	}
	if !req.DryRun {
		e.auditAs(ctx, req.Actor, "promotions.bulk", "", map[string]any{"domains": len(req.Domains), "outcomes": counts,
			"reason": req.Reason, "results": out})
	}
	e.log().InfoContext(ctx, "Bulk promotion", "domains", len(req.Domains), "promoted", counts[OutcomePromoted],
		"blocked", counts[OutcomeBlocked], "dry_run", req.DryRun, "took", time.Since(start))
	return out, nil
}

func (e *Engine) promoteOne(ctx context.Context, req BulkRequest, name string, all map[string]db.AutopilotSettings) BulkResult {
	r := BulkResult{Domain: name, Blockers: []string{}}
	domain, err := db.NormalizeDomain(name)
	if err != nil {
		r.Outcome, r.Message = OutcomeError, err.Error()
		return r
	}
	r.Domain = domain
	listed, err := e.DB.HasDomain(ctx, domain)
	if err != nil {
		r.Outcome, r.Message = OutcomeError, err.Error()
		return r
	}
	if !listed {
		r.Outcome, r.Message = OutcomeSkipped, "not a listed domain"
		return r
	}
	latest, err := e.DB.LatestPolicyVersion(ctx, domain)
	switch {
	case err == nil && latest.Policy.Mode == rollout.ModeEnforce:
		r.Outcome, r.Message = OutcomeSkipped, "in enforce already (version "+latest.ID+")"
		return r
	case err == nil && latest.Policy.Mode == rollout.ModeNone:
		r.Outcome, r.Message = OutcomeSkipped, "retired (mode none)"
		return r
	case err != nil && !errors.Is(err, db.ErrNotFound):
		r.Outcome, r.Message = OutcomeError, err.Error()
		return r
	}
	v, _, err := e.Publisher.Verdict(ctx, domain)
	if err != nil {
		r.Outcome, r.Message = OutcomeError, err.Error()
		return r
	}
	if !v.Ready {
		for _, b := range v.Blockers {
			r.Blockers = append(r.Blockers, b.Code)
		}
		r.Outcome, r.Message = OutcomeBlocked, "the verdict is blocked: promote it alone, with the override, if you must"
		return r
	}
	s := Resolve(all[db.FleetDefault], all[domain])
	if s.Enabled {
		r.MaxAge = s.Ramp().Stage(1).MaxAge
	} else if v.Proposal != nil {
		r.MaxAge = v.Evidence.Thresholds.EnforceMaxAge
	}
	if req.DryRun {
		r.Outcome, r.Message = OutcomePromoted, "dry run: would promote"
		return r
	}
	reason := req.Reason
	if reason == "" {
		reason = "bulk promotion"
	}
	ver, err := e.Publisher.Change(ctx, Change{Domain: domain, Kind: rollout.KindPromote, Actor: req.Actor, Reason: reason, MaxAge: r.MaxAge})
	if err != nil {
		r.Outcome, r.Message = OutcomeError, err.Error()
		return r
	}
	r.Outcome, r.ID, r.MaxAge = OutcomePromoted, ver.ID, ver.Policy.MaxAge
	return r
}

func (e *Engine) auditAs(ctx context.Context, actor, action, domain string, detail any) {
	if actor == "" {
		actor = "unknown"
	}
	if _, err := e.DB.AddAudit(ctx, db.AuditEntry{Actor: actor, Action: action, Domain: domain, Detail: detail}); err != nil {
		e.log().ErrorContext(ctx, "Writing the audit log failed", "action", action, "error", err)
	}
}
