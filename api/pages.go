package api

import (
	"context"
	"errors"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
	"github.com/tlsrpt/tlsrpt/ui"
)

// windows are the chart windows the domain page offers, in days.
var windows = []int{7, 30, 90, 365}

// dayRange is [from, to) in whole UTC days: the last days complete days,
// the windows the verdict uses (today is not over; its reports arrive
// tomorrow).
func (s *Server) dayRange(days int) (from, to time.Time) {
	to = rollout.UTCDay(s.now())
	return to.AddDate(0, 0, -days), to
}

// windowParam reads ?days=, one of windows, default 30.
func windowParam(c echo.Context) (int, error) {
	v := c.QueryParam("days")
	if v == "" {
		return 30, nil
	}
	n, err := strconv.Atoi(v)
	if err == nil {
		for _, w := range windows {
			if n == w {
				return n, nil
			}
		}
	}
	return 0, errorf(http.StatusBadRequest, "days must be one of 7, 30, 90 or 365, not %q", v)
}

// domainParam is the :domain path parameter, normalised.
func domainParam(c echo.Context) (string, error) {
	raw := c.Param("domain")
	if u, err := url.PathUnescape(raw); err == nil {
		raw = u
	}
	d, err := db.NormalizeDomain(raw)
	if err != nil {
		return "", errorf(http.StatusBadRequest, "%q is not a valid domain name", raw)
	}
	return d, nil
}

// fillDays turns sparse rollup days into one entry per day of [from, to).
func fillDays(days []db.DashboardDay, from, to time.Time) []ui.Day {
	byDay := map[time.Time]db.DashboardDay{}
	for _, d := range days {
		byDay[d.Day] = d
	}
	var out []ui.Day
	for d := from; d.Before(to); d = d.AddDate(0, 0, 1) {
		x := byDay[d]
		out = append(out, ui.Day{Day: d, Sessions: x.Sessions(), Failures: x.Failed})
	}
	return out
}

func sumDays(days []ui.Day, last int) (sessions, failures int64) {
	for _, d := range days[max(0, len(days)-last):] {
		sessions = satAdd(sessions, d.Sessions)
		failures = satAdd(failures, d.Failures)
	}
	return sessions, failures
}

// overviewPage lists one page of the domains with their numbers and
// stored verdict badges (verdict_badges.go): its cost follows the page,
// not the listed domains or the history.
func (s *Server) overviewPage(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := overviewParams(c)
	if err != nil {
		return err
	}
	rows, total, err := s.overviewRows(ctx, q)
	if err != nil {
		return err
	}
	page := ui.OverviewPage{Layout: s.layout(c, "Overview", "overview"), Total: int64(total),
		Filter: ui.OverviewFilter{Name: q.Name, Kind: q.Kind, Sort: q.Sort, PerPage: q.PerPage, Mode: q.Mode, Stage: q.Stage, Autopilot: q.Autopilot},
		Kinds:  db.BadgeKinds[:], Page: q.Page, Pages: max(1, (total+q.PerPage-1)/q.PerPage),
		Modes: fleetModes, Stages: fleetStages, AutopilotStates: fleetStates}
	for _, r := range rows {
		row := ui.DomainRow{Name: r.Domain, Trend: ui.NewSparkline(r.Days, 120, 28), Badge: uiBadge(r.OverviewRow), Mode: rowMode(r.OverviewRow)}
		row.Sessions7, row.Failures7 = sumDays(r.Days, 7)
		row.Sessions30, row.Failures30 = sumDays(r.Days, 30)
		page.Domains = append(page.Domains, row)
	}
	if err := s.fleetColumns(c, page.Domains); err != nil {
		return err
	}
	if q.Page > 1 {
		page.PrevURL = q.url(q.Page - 1)
	}
	if q.Page*q.PerPage < total {
		page.NextURL = q.url(q.Page + 1)
	}
	if err := s.unlisted(ctx, &page); err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "overview", page)
}

// unlisted fills the overview's list of unlisted domains: the 100 seen
// most recently and a count bounded by db.MaxUnlistedCount, both read
// from indexes whatever a flood of reports added.
func (s *Server) unlisted(ctx context.Context, page *ui.OverviewPage) error {
	from, _ := s.dayRange(30)
	us, err := s.cfg.DB.UnlistedDomains(ctx, from, 100)
	if err != nil {
		return err
	}
	for _, u := range us {
		page.Unlisted = append(page.Unlisted, ui.UnlistedRow{Name: u.Domain, Reports: u.Reports, Sessions: u.Sessions, LastDay: u.LastDay.Format(time.DateOnly)})
	}
	if len(us) < 100 {
		page.UnlistedCount = int64(len(us))
		return nil
	}
	n, more, err := s.cfg.DB.UnlistedCount(ctx, from)
	page.UnlistedCount, page.UnlistedMore = int64(n), more
	return err
}

// mode is the domain's mode: the verdict's (live or reports) when known,
// else the newest policy-string.
func (s *Server) mode(ctx context.Context, domain string, v *rollout.Verdict) string {
	if v != nil && v.Mode != "" {
		return string(v.Mode)
	}
	m, err := s.cfg.DB.DomainMode(ctx, domain)
	if err != nil {
		s.log.WarnContext(ctx, "Reading mode failed", "domain", clip(domain), "error", clipErr(err))
	}
	if m == "" {
		return "unknown"
	}
	return m
}

// badge summarises a verdict: ready, blocked with the first reason,
// enforcing, or regression.
func badge(v *rollout.Verdict) ui.Badge {
	for _, w := range v.Warnings {
		if w.Code == rollout.WarningRegression {
			return ui.Badge{Kind: "regression", Label: "regression", Reason: w.Message}
		}
	}
	switch {
	case v.Mode == rollout.ModeEnforce:
		return ui.Badge{Kind: "enforcing", Label: "enforcing"}
	case v.Ready:
		return ui.Badge{Kind: "ready", Label: "ready"}
	case len(v.Blockers) > 0:
		return ui.Badge{Kind: "blocked", Label: "blocked", Reason: v.Blockers[0].Message}
	}
	return ui.Badge{Kind: "unknown", Label: "unknown"}
}

// breakdownTitles are the domain page's tables, in order.
var breakdownTitles = []struct{ by, title, label, param string }{
	{db.ByResultType, "Failures by result type", "Result type", "result"},
	{db.ByMX, "Failures by receiving MX", "Receiving MX", "mx"},
	{db.ByOrg, "Sessions by reporting organisation", "Organisation", "org"},
	{db.BySendingIP, "Failures by sending IP", "Sending IP", "ip"},
}

// domainPage shows one domain: chart, breakdowns, verdict, live check.
func (s *Server) domainPage(c echo.Context) error {
	ctx := c.Request().Context()
	domain, err := domainParam(c)
	if err != nil {
		return err
	}
	window, err := windowParam(c)
	if err != nil {
		return err
	}
	known, err := s.cfg.DB.DomainKnown(ctx, domain)
	if err != nil {
		return err
	}
	if !known {
		// Nothing to show: not a page of zeros and "nothing to propose",
		// but the one action that helps.
		page := ui.ErrorPage{Layout: s.layout(c, http.StatusText(http.StatusNotFound), ""), Status: http.StatusNotFound,
			Message: domain + " is not on the list and no stored report names it.", AddDomain: domain}
		return s.render(c, http.StatusNotFound, "error", page)
	}
	from, to := s.dayRange(window)
	series, err := s.cfg.DB.DomainSeries(ctx, domain, from, to)
	if err != nil {
		return err
	}
	days := fillDays(series, from, to)
	page := ui.DomainPage{
		Layout: s.layout(c, domain, "overview"), Domain: domain, Window: window, Windows: windows,
		Chart: ui.NewDailyChart(days, 760, 260),
	}
	page.Sessions, page.Failures = sumDays(days, window)
	windowFrom := from
	if len(days) > 0 {
		windowFrom = days[max(0, len(days)-window)].Day
	}
	types, err := s.cfg.DB.PolicyTypeTotals(ctx, domain, windowFrom, to)
	if err != nil {
		return err
	}
	if len(types) > 1 || len(types) == 1 && types[reports.PolicySTS] == 0 {
		var parts []string
		for _, t := range slices.Sorted(maps.Keys(types)) {
			parts = append(parts, ui.Num(types[t])+" "+t)
		}
		page.PolicyTypes = strings.Join(parts, ", ")
	}
	page.NoPolicy = types[reports.PolicySTS] == 0 && types[reports.PolicyNoPolicyFound] > 0
	listed, err := s.cfg.DB.HasDomain(ctx, domain)
	if err != nil {
		return err
	}
	page.Unlisted = !listed
	for _, b := range breakdownTitles {
		rows, err := s.cfg.DB.Breakdown(ctx, domain, b.by, from, to, 50)
		if err != nil {
			return err
		}
		t := ui.Breakdown{Title: b.title, Label: b.label, WithSessions: b.by == db.ByOrg}
		for _, r := range rows {
			label := r.Key
			if label == "" {
				label = "(not named)"
			}
			q := url.Values{"domain": {domain}, b.param: {r.Key}, "from": {from.Format(time.DateOnly)}}
			row := ui.BreakdownRow{Label: label, Sessions: r.Sessions, Failures: r.Failed, Link: "/reports?" + q.Encode()}
			if b.by == db.ByOrg {
				row.Share = ui.Percent(ratio(r.Failed, r.Sessions))
			} else {
				row.Share = ui.Percent(ratio(r.Failed, page.Failures))
			}
			t.Rows = append(t.Rows, row)
		}
		page.Breakdowns = append(page.Breakdowns, t)
	}
	// The live check runs on request (it queries DNS and fetches the
	// policy now); its result then feeds the verdict too.
	var check *rollout.CheckResult
	if c.QueryParam("check") == "1" {
		var err error
		check, err = s.liveCheck(c, domain)
		switch {
		case errors.Is(err, errNoInspector):
			page.CheckError = "The live check is not configured on this server."
		case err != nil:
			return err
		default:
			page.Check = checkView(check)
		}
	}
	if check == nil {
		lp, err := s.lastProbe(ctx, domain)
		if err != nil {
			return err
		}
		page.LastProbe = lp
	}
	v, err := s.verdictWithCheck(ctx, domain, check)
	if err != nil {
		page.VerdictError = "No verdict: " + PlainMessage(err)
	} else {
		page.Verdict = verdictView(v)
	}
	page.Mode = s.mode(ctx, domain, v)
	page.Promote = s.promoteView(c, domain, v)
	page.Autopilot = s.autopilotView(c, domain)
	// The promote panel shows the policy a promotion publishes, with its
	// id and record: the verdict points there instead of a second copy.
	if page.Verdict != nil && page.Promote.Next != nil {
		page.Verdict.Proposal, page.Verdict.ProposalInPanel = "", true
	}
	return s.render(c, http.StatusOK, "domain", page)
}

// ratio is a/b in [0, 1], 0 when b is not positive: a share or a failure
// rate, which the JSON API encodes (NaN or Inf would fail the encoding, a
// 500) and the pages print. Saturated sums can make a larger than b.
func ratio(a, b int64) float64 {
	if b <= 0 || a <= 0 {
		return 0
	}
	return min(float64(a)/float64(b), 1)
}

// satAdd is a + b for counts, saturating at math.MaxInt64: the store's
// sums saturate there (db "Every sum saturates"), and adding two of them
// must not wrap to a negative total.
func satAdd(a, b int64) int64 {
	if a > 0 && b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

// addDomainForm adds a domain to the allow-list.
func (s *Server) addDomainForm(c echo.Context) error {
	d, err := db.NormalizeDomain(c.FormValue("domain"))
	if err != nil {
		return errorf(http.StatusBadRequest, "%q is not a valid domain name", c.FormValue("domain"))
	}
	if err := s.addDomain(c, d); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/?done=added")
}

func (s *Server) addDomain(c echo.Context, d string) error {
	ctx := c.Request().Context()
	stored, added, err := s.cfg.DB.AddDomain(ctx, d)
	if err != nil {
		return err
	}
	if !added {
		return nil
	}
	return s.audit(c, "domain.add", stored, nil)
}

func (s *Server) removeDomain(c echo.Context, d string) error {
	ctx := c.Request().Context()
	stored, removed, err := s.cfg.DB.RemoveDomain(ctx, d)
	if err != nil {
		return err
	}
	if !removed {
		return errorf(http.StatusNotFound, "%s is not on the list", d)
	}
	return s.audit(c, "domain.remove", stored, nil)
}

// audit records a change in the audit log with who made it.
func (s *Server) audit(c echo.Context, action, domain string, detail any) error {
	actor := "unknown"
	if p := principalOf(c); p != nil {
		actor = p.Name
	}
	_, err := s.cfg.DB.AddAudit(c.Request().Context(), db.AuditEntry{Actor: actor, Action: action, Domain: domain, Detail: detail})
	return err
}
