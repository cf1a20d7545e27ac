package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/ui"
)

// Stored verdict badges (migration 070): the overview and GET /api/v1/domains
// read db.OverviewDomains, one row per listed domain of the page; the
// refresher recomputes the stale ones in the background (several
// instances may run it against one database: db.RefreshVerdict takes a
// per-domain advisory lock). A stale badge is shown with its last value
// and "updating"; a missing one is computed on request, a few per page.

const (
	// DefaultOverviewPage is how many domains a page of the overview
	// lists unless ?per_page= says otherwise.
	DefaultOverviewPage = 50
	// refreshBatch is how many stale badges one refresher round takes.
	refreshBatch = 20
	// DefaultRefreshInterval is how often the refresher looks for stale
	// badges when it found none.
	DefaultRefreshInterval = 5 * time.Second
	// maxOnDemand bounds the badges one overview request computes itself
	// (domains without a badge yet, or every stale one when no refresher
	// runs in this process); the others show "updating".
	maxOnDemand = 5
)

// verdictRefresher is the state of RunVerdictRefresher, shared by the
// requests that kick it.
type verdictRefresher struct {
	running atomic.Bool
	kick    chan struct{}
}

// badgeOf turns a verdict into the stored badge, with the mode the
// overview shows.
func (s *Server) badgeOf(ctx context.Context, domain string, v *rollout.Verdict) db.VerdictBadge {
	b := badge(v)
	now := s.now()
	return db.VerdictBadge{Kind: b.Kind, Label: b.Label, Reason: b.Reason, Mode: s.mode(ctx, domain, v),
		ComputedAt: now, ComputedDay: rollout.UTCDay(now)}
}

// refreshBadge recomputes and stores one domain's badge; false when
// another instance is doing it.
func (s *Server) refreshBadge(ctx context.Context, domain string) (bool, error) {
	return s.cfg.DB.RefreshVerdict(ctx, domain, func(ctx context.Context) (db.VerdictBadge, error) {
		v, err := s.verdict(ctx, domain)
		if err != nil {
			return db.VerdictBadge{}, err
		}
		return s.badgeOf(ctx, domain, v), nil
	})
}

// RefreshVerdicts recomputes up to limit stale badges (missing first,
// then the oldest) and returns how many it stored. A domain whose verdict
// fails is logged and left stale.
func (s *Server) RefreshVerdicts(ctx context.Context, limit int) (int, error) {
	names, err := s.cfg.DB.StaleVerdicts(ctx, rollout.UTCDay(s.now()), limit)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		done, err := s.refreshBadge(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			s.log.WarnContext(ctx, "Refreshing a verdict badge failed", "domain", name, "error", err)
			continue
		}
		if done {
			n++
		}
	}
	return n, nil
}

// RunVerdictRefresher keeps the badges fresh until ctx ends: a round of
// refreshBatch badges after another while there are stale ones, then a
// wait of interval (or until a request finds a stale badge). Errors are
// logged; the next round tries again.
func (s *Server) RunVerdictRefresher(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultRefreshInterval
	}
	if !s.refresher.running.CompareAndSwap(false, true) {
		return // one per server
	}
	defer s.refresher.running.Store(false)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.refreshOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "Refreshing verdict badges failed", "error", err)
		}
		if n == refreshBatch && err == nil {
			continue // more to do
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.refresher.kick:
		}
	}
}

// startVerdictRefresher runs RunVerdictRefresher until ctx ends or the
// returned stop is called; stop waits for it to return.
func (s *Server) startVerdictRefresher(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.RunVerdictRefresher(ctx, DefaultRefreshInterval)
	}()
	return func() {
		cancel()
		<-done
	}
}

// refreshOnce is one round of RunVerdictRefresher.
func (s *Server) refreshOnce(ctx context.Context) (int, error) {
	if _, err := s.cfg.DB.PruneVerdictInvalidations(ctx); err != nil {
		return 0, err
	}
	return s.RefreshVerdicts(ctx, refreshBatch)
}

// kickRefresher wakes the refresher without waiting for it.
func (s *Server) kickRefresher() {
	select {
	case s.refresher.kick <- struct{}{}:
	default:
	}
}

// overviewQuery is what ?q=, ?kind=, ?sort=, ?page= and ?per_page= ask of
// the overview and of GET /api/v1/domains.
type overviewQuery struct {
	Name    string
	Kind    string
	Sort    string // name or severity
	Page    int    // from 1
	PerPage int
	// Mode, Stage and Autopilot are the fleet filters (autopilot.go).
	Mode      string
	Stage     string
	Autopilot string
}

// overviewParams reads and checks the overview's query parameters.
func overviewParams(c echo.Context) (overviewQuery, error) {
	q := overviewQuery{Name: strings.TrimSpace(c.QueryParam("q")), Kind: c.QueryParam("kind"),
		Sort: c.QueryParam("sort"), Page: 1, PerPage: DefaultOverviewPage}
	if len(q.Name) > 253 {
		return q, errorf(http.StatusBadRequest, "q is at most 253 characters")
	}
	if q.Kind != "" && !validKind(q.Kind) {
		return q, errorf(http.StatusBadRequest, "kind must be one of %s, not %q", strings.Join(db.BadgeKinds[:], ", "), q.Kind)
	}
	switch q.Sort {
	case "":
		q.Sort = "name"
	case "name", "severity":
	default:
		return q, errorf(http.StatusBadRequest, "sort must be name or severity, not %q", q.Sort)
	}
	num := func(name string, dst *int, most int) error {
		v := c.QueryParam(name)
		if v == "" {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > most {
			return errorf(http.StatusBadRequest, "%s must be a whole number from 1 to %d, not %q", name, most, v)
		}
		*dst = n
		return nil
	}
	if err := num("page", &q.Page, 1_000_000); err != nil {
		return q, err
	}
	if err := num("per_page", &q.PerPage, db.MaxOverviewPage); err != nil {
		return q, err
	}
	if err := fleetParams(c, &q); err != nil {
		return q, err
	}
	return q, nil
}

func validKind(k string) bool {
	for _, x := range db.BadgeKinds {
		if x == k {
			return true
		}
	}
	return false
}

// values is q as URL parameters, without the defaults, at page p.
func (q overviewQuery) values(p int) url.Values {
	v := url.Values{}
	if q.Name != "" {
		v.Set("q", q.Name)
	}
	if q.Kind != "" {
		v.Set("kind", q.Kind)
	}
	if q.Sort != "name" {
		v.Set("sort", q.Sort)
	}
	for _, f := range [][2]string{{"mode", q.Mode}, {"stage", q.Stage}, {"autopilot", q.Autopilot}} {
		if f[1] != "" {
			v.Set(f[0], f[1])
		}
	}
	if q.PerPage != DefaultOverviewPage {
		v.Set("per_page", strconv.Itoa(q.PerPage))
	}
	if p > 1 {
		v.Set("page", strconv.Itoa(p))
	}
	return v
}

// url is the overview's URL of q at page p.
func (q overviewQuery) url(p int) string {
	if v := q.values(p).Encode(); v != "" {
		return "/?" + v
	}
	return "/"
}

// overviewRow is one listed domain as the overview and the API show it.
type overviewRow struct {
	db.OverviewRow
	Days []ui.Day // the 30-day window, one entry per day
}

// overviewRows reads one page of the allow-list with the badges and the
// 30-day series of the page's domains. Badges missing (or, with no
// refresher running here, stale) are computed on request, at most
// maxOnDemand; any other stale badge wakes the refresher.
func (s *Server) overviewRows(ctx context.Context, q overviewQuery) ([]overviewRow, int, error) {
	today := rollout.UTCDay(s.now())
	dq := db.OverviewQuery{Name: q.Name, Kind: q.Kind, BySeverity: q.Sort == "severity",
		Offset: (q.Page - 1) * q.PerPage, Limit: q.PerPage, Today: today,
		Mode: q.Mode, Autopilot: q.Autopilot, Stage: stageFilter(q.Stage)}
	list, total, err := s.cfg.DB.OverviewDomains(ctx, dq)
	if err != nil {
		return nil, 0, err
	}
	background := s.refresher.running.Load()
	budget := maxOnDemand
	for i := range list {
		r := &list[i]
		if !r.Stale || (r.Badge != nil && background) {
			continue
		}
		if budget == 0 {
			break
		}
		budget--
		done, err := s.refreshBadge(ctx, r.Domain)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return nil, 0, err
			}
			s.log.WarnContext(ctx, "Computing a verdict badge failed", "domain", r.Domain, "error", err)
			continue
		}
		if !done {
			continue // another instance is at it
		}
		// Read the stored badge back: a change committed meanwhile
		// keeps it stale, and it says so.
		again, err := s.cfg.DB.OverviewDomain(ctx, r.Domain, today)
		if err != nil {
			if errors.Is(err, db.ErrNotFound) {
				continue // removed meanwhile
			}
			return nil, 0, err
		}
		*r = again
	}
	names := make([]string, 0, len(list))
	for _, r := range list {
		names = append(names, r.Domain)
		if r.Stale {
			s.kickRefresher()
		}
	}
	from, to := s.dayRange(30)
	series, err := s.cfg.DB.DomainsSeries(ctx, names, from, to)
	if err != nil {
		return nil, 0, err
	}
	out := make([]overviewRow, len(list))
	for i, r := range list {
		out[i] = overviewRow{OverviewRow: r, Days: fillDays(series[r.Domain], from, to)}
	}
	return out, total, nil
}

// uiBadge is the badge the overview shows for a row: the stored one, or
// "computing" when there is none yet.
func uiBadge(r db.OverviewRow) ui.Badge {
	if r.Badge == nil {
		return ui.Badge{Kind: db.BadgeUnknown, Label: "computing…", Updating: true}
	}
	b := ui.Badge{Kind: r.Badge.Kind, Label: r.Badge.Label, Reason: r.Badge.Reason, Updating: r.Stale,
		ComputedAt: r.Badge.ComputedAt.UTC().Format(time.RFC3339)}
	return b
}

// rowMode is the mode the overview shows for a row.
func rowMode(r db.OverviewRow) string {
	if r.Badge == nil || r.Badge.Mode == "" {
		return "unknown"
	}
	return r.Badge.Mode
}
