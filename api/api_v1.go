package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/rollout"
)

// maxJSONBody bounds the JSON bodies of the API's POST and PUT requests.
const maxJSONBody = 64 << 10

// readJSON decodes a bounded JSON body into v, refusing unknown fields.
func readJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(io.LimitReader(c.Request().Body, maxJSONBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "the request body is not the JSON this route takes: %v", err)
	}
	return nil
}

// domainJSON is one domain of GET /api/v1/domains.
type domainJSON struct {
	Domain      string     `json:"domain"`
	Mode        string     `json:"mode"`
	Sessions7d  int64      `json:"sessions_7d"`
	Failures7d  int64      `json:"failures_7d"`
	Sessions30d int64      `json:"sessions_30d"`
	Failures30d int64      `json:"failures_30d"`
	Verdict     badgeJSON  `json:"verdict"`
	AddedAt     *time.Time `json:"added_at,omitempty"`
}

type badgeJSON struct {
	Status string `json:"status"` // ready, blocked, enforcing, regression, unknown
	Reason string `json:"reason,omitempty"`
	// Stale: the inputs changed since ComputedAt; a refresh is under way.
	Stale      bool       `json:"stale"`
	ComputedAt *time.Time `json:"computed_at,omitempty"`
}

// apiDomains lists one page of the allow-listed domains with their
// numbers and stored verdict badges (?q=, ?kind=, ?sort=, ?page=,
// ?per_page= as on the overview), and the unlisted domains that send
// reports.
func (s *Server) apiDomains(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := overviewParams(c)
	if err != nil {
		return err
	}
	rows, total, err := s.overviewRows(ctx, q)
	if err != nil {
		return err
	}
	from, _ := s.dayRange(30)
	out := struct {
		Domains  []domainJSON        `json:"domains"`
		Total    int                 `json:"total"`
		Page     int                 `json:"page"`
		PerPage  int                 `json:"per_page"`
		Unlisted []db.UnlistedDomain `json:"unlisted"`
		// UnlistedCount counts the unlisted domains up to
		// db.MaxUnlistedCount; UnlistedMore says there are more.
		UnlistedCount int  `json:"unlisted_count"`
		UnlistedMore  bool `json:"unlisted_more,omitempty"`
	}{Domains: []domainJSON{}, Total: total, Page: q.Page, PerPage: q.PerPage}
	for _, r := range rows {
		j := domainJSON{Domain: r.Domain, AddedAt: &r.AddedAt, Mode: rowMode(r.OverviewRow)}
		j.Sessions7d, j.Failures7d = sumDays(r.Days, 7)
		j.Sessions30d, j.Failures30d = sumDays(r.Days, 30)
		j.Verdict = badgeJSON{Status: db.BadgeUnknown, Stale: r.Stale}
		if b := r.Badge; b != nil {
			j.Verdict.Status, j.Verdict.Reason, j.Verdict.ComputedAt = b.Kind, b.Reason, &b.ComputedAt
		}
		out.Domains = append(out.Domains, j)
	}
	if out.Unlisted, err = s.cfg.DB.UnlistedDomains(ctx, from, 100); err != nil {
		return err
	}
	if out.Unlisted == nil {
		out.Unlisted = []db.UnlistedDomain{}
	}
	out.UnlistedCount = len(out.Unlisted)
	if len(out.Unlisted) == 100 {
		if out.UnlistedCount, out.UnlistedMore, err = s.cfg.DB.UnlistedCount(ctx, from); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, out)
}

// apiAddDomain adds {"domain": "..."} to the allow-list.
func (s *Server) apiAddDomain(c echo.Context) error {
	var in struct {
		Domain string `json:"domain"`
	}
	if err := readJSON(c, &in); err != nil {
		return err
	}
	d, err := db.NormalizeDomain(in.Domain)
	if err != nil {
		return errorf(http.StatusBadRequest, "%q is not a valid domain name", in.Domain)
	}
	if err := s.addDomain(c, d); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, map[string]string{"domain": d})
}

// apiRemoveDomain removes a domain from the allow-list.
func (s *Server) apiRemoveDomain(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	if err := s.removeDomain(c, d); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// windowJSON is the day range of an answer.
type windowJSON struct {
	Domain string    `json:"domain"`
	Days   int       `json:"days"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

func (s *Server) window(c echo.Context) (windowJSON, error) {
	d, err := domainParam(c)
	if err != nil {
		return windowJSON{}, err
	}
	days, err := windowParam(c)
	if err != nil {
		return windowJSON{}, err
	}
	from, to := s.dayRange(days)
	return windowJSON{Domain: d, Days: days, From: from, To: to}, nil
}

// apiSummary is the domain's totals over the window.
func (s *Server) apiSummary(c echo.Context) error {
	ctx := c.Request().Context()
	w, err := s.window(c)
	if err != nil {
		return err
	}
	series, err := s.cfg.DB.DomainSeries(ctx, w.Domain, w.From, w.To)
	if err != nil {
		return err
	}
	out := struct {
		windowJSON
		Mode        string  `json:"mode"`
		Reports     int64   `json:"reports"`
		Sessions    int64   `json:"sessions"`
		Failures    int64   `json:"failures"`
		FailureRate float64 `json:"failure_rate"`
		DaysWith    int     `json:"days_with_reports"`
	}{windowJSON: w, DaysWith: len(series)}
	for _, d := range series {
		out.Reports = satAdd(out.Reports, d.Reports)
		out.Sessions = satAdd(out.Sessions, d.Sessions())
		out.Failures = satAdd(out.Failures, d.Failed)
	}
	out.FailureRate = ratio(out.Failures, out.Sessions)
	m, err := s.cfg.DB.DomainMode(ctx, w.Domain)
	if err != nil {
		return err
	}
	out.Mode = m
	return c.JSON(http.StatusOK, out)
}

// apiSeries is the domain's daily totals, one entry per day of the window.
func (s *Server) apiSeries(c echo.Context) error {
	w, err := s.window(c)
	if err != nil {
		return err
	}
	series, err := s.cfg.DB.DomainSeries(c.Request().Context(), w.Domain, w.From, w.To)
	if err != nil {
		return err
	}
	byDay := map[time.Time]db.DashboardDay{}
	for _, d := range series {
		byDay[d.Day] = d
	}
	type dayJSON struct {
		db.DashboardDay
		FailureRate float64 `json:"failure_rate"`
	}
	out := struct {
		windowJSON
		Series []dayJSON `json:"series"`
	}{windowJSON: w, Series: []dayJSON{}}
	for d := w.From; d.Before(w.To); d = d.AddDate(0, 0, 1) {
		x := byDay[d]
		x.Day = d
		out.Series = append(out.Series, dayJSON{DashboardDay: x, FailureRate: ratio(x.Failed, x.Sessions())})
	}
	return c.JSON(http.StatusOK, out)
}

// apiBreakdown groups the window's failures by one dimension.
func (s *Server) apiBreakdown(c echo.Context) error {
	w, err := s.window(c)
	if err != nil {
		return err
	}
	by := c.Param("by")
	valid := false
	for _, d := range db.BreakdownDimensions {
		valid = valid || d == by
	}
	if !valid {
		return errorf(http.StatusBadRequest, "breakdown %q is not one of result-type, mx, org, ip", by)
	}
	rows, err := s.cfg.DB.Breakdown(c.Request().Context(), w.Domain, by, w.From, w.To, db.MaxDashboardRows)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []db.BreakdownRow{}
	}
	return c.JSON(http.StatusOK, struct {
		windowJSON
		By   string            `json:"by"`
		Rows []db.BreakdownRow `json:"rows"`
	}{w, by, rows})
}

// apiVerdict is the readiness verdict.
func (s *Server) apiVerdict(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	// ?check=1 runs the live check first and lets it into the verdict.
	var check *rollout.CheckResult
	if c.QueryParam("check") == "1" {
		if check, err = s.liveCheck(c, d); err != nil {
			return err
		}
	}
	v, err := s.verdictWithCheck(ctx, d, check)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// apiCheck runs the live check now.
func (s *Server) apiCheck(c echo.Context) error {
	d, err := domainParam(c)
	if err != nil {
		return err
	}
	check, err := s.liveCheck(c, d)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, check)
}

// errNoInspector answers a live check on a server without an inspector.
var errNoInspector = errorf(http.StatusServiceUnavailable, "the live check is not configured on this server")

// liveCheck runs the live check of domain for the caller. It costs DNS
// queries and an HTTPS fetch of any name the caller types, so each user
// or API token gets CheckRate of them (429 with Retry-After beyond).
func (s *Server) liveCheck(c echo.Context, domain string) (*rollout.CheckResult, error) {
	if s.cfg.Inspector == nil {
		return nil, errNoInspector
	}
	if ok, wait := s.checks.allowKey(checkKey(principalOf(c))); !ok {
		secs := retryAfter(wait)
		c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
		return nil, errorf(http.StatusTooManyRequests, "too many live checks from your account; try again in %d seconds", secs)
	}
	res := s.cfg.Inspector.Check(c.Request().Context(), domain)
	s.keepCheck(c.Request().Context(), domain, res)
	return res, nil
}

// checkKey names the caller's live-check bucket: a user's sessions share
// one, each API token has its own.
func checkKey(p *principal) string {
	switch {
	case p == nil:
		return "anonymous" // not reached: the routes need a viewer
	case p.Bearer:
		return "token\x00" + p.Name
	}
	return "user\x00" + p.Name
}

// apiReports lists reports with the same filters as the page.
func (s *Server) apiReports(c echo.Context) error {
	f, _, err := reportFilter(c)
	if err != nil {
		return err
	}
	rows, err := s.cfg.DB.DashboardReports(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if rows == nil {
		rows = []db.ReportListRow{}
	}
	return c.JSON(http.StatusOK, struct {
		Reports []db.ReportListRow `json:"reports"`
		Next    string             `json:"next,omitempty"`
	}{rows, nextPage(c, "/api/v1/reports", rows, f.Limit)})
}

// reportJSON is GET /api/v1/reports/:id: the report and its provenance.
type reportJSON struct {
	ID         int64              `json:"id"`
	Day        time.Time          `json:"day"`
	Trusted    bool               `json:"trusted"`
	Source     reports.Source     `json:"source"`
	SourceRef  string             `json:"source_ref"`
	ReceivedAt time.Time          `json:"received_at"`
	MessageID  string             `json:"message_id,omitempty"`
	From       string             `json:"from,omitempty"`
	Submitter  string             `json:"submitter,omitempty"`
	DKIM       reports.DKIMResult `json:"dkim"`
	DKIMDomain string             `json:"dkim_domain,omitempty"`
	// Who sent it as far as proven (docs/reporters.md), and
	// whether an operator took it back.
	Reporter       string                 `json:"reporter,omitempty"`
	ReporterMethod reports.ReporterMethod `json:"reporter_method,omitempty"`
	NameMismatch   string                 `json:"name_mismatch,omitempty"`
	RemoteAddr     string                 `json:"remote_addr,omitempty"`
	RemoteName     string                 `json:"remote_name,omitempty"`
	ExcludedAt     *time.Time             `json:"excluded_at,omitempty"`
	ExcludedBy     string                 `json:"excluded_by,omitempty"`
	ExcludedReason string                 `json:"excluded_reason,omitempty"`
	Report         *reports.Report        `json:"report"`
}

// apiReport is one report.
func (s *Server) apiReport(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	r, err := s.cfg.DB.Report(c.Request().Context(), id)
	if err != nil {
		return err
	}
	out := reportJSON{ID: r.ID, Day: r.Day, Trusted: r.Trusted, Source: r.Source, SourceRef: r.SourceRef,
		ReceivedAt: r.ReceivedAt.UTC(), MessageID: r.MessageID, From: r.From, Submitter: r.Submitter, DKIM: r.DKIM,
		DKIMDomain: r.DKIMDomain, Reporter: r.Reporter, ReporterMethod: r.ReporterMethod, NameMismatch: r.NameMismatch,
		RemoteName: r.RemoteName, ExcludedBy: r.ExcludedBy, ExcludedReason: r.ExcludedReason, Report: r.Report}
	if r.RemoteAddr.IsValid() {
		out.RemoteAddr = r.RemoteAddr.String()
	}
	if r.ExcludedAt != nil {
		at := r.ExcludedAt.UTC()
		out.ExcludedAt = &at
	}
	return c.JSON(http.StatusOK, out)
}

// quarantineJSON is one quarantine entry.
type quarantineJSON struct {
	ID            int64          `json:"id"`
	CreatedAt     time.Time      `json:"created_at"`
	Source        reports.Source `json:"source"`
	SourceRef     string         `json:"source_ref"`
	Reason        string         `json:"reason"`
	Size          int            `json:"size"`
	Kept          int            `json:"kept"`
	Truncated     string         `json:"truncated,omitempty"`
	ReprocessedAt *time.Time     `json:"reprocessed_at,omitempty"`
}

// apiQuarantine lists quarantined inputs.
func (s *Server) apiQuarantine(c echo.Context) error {
	es, err := s.cfg.DB.QuarantineList(c.Request().Context(), db.QuarantineFilter{Limit: 1000, IncludeResolved: c.QueryParam("all") == "1"})
	if err != nil {
		return err
	}
	out := []quarantineJSON{}
	for _, e := range es {
		out = append(out, quarantineJSON{ID: e.ID, CreatedAt: e.CreatedAt.UTC(), Source: e.Source, SourceRef: e.SourceRef,
			Reason: e.Reason, Size: e.Size, Kept: e.Kept, Truncated: e.Truncated, ReprocessedAt: e.ReprocessedAt})
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": out})
}

// apiReprocess reprocesses a quarantined input.
func (s *Server) apiReprocess(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	out, err := s.reprocess(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"reports": out.Reports, "new": out.New, "duplicates": out.Duplicates,
		"refused": out.Refused, "quarantined": out.Quarantined, "reason": out.Reason})
}

// apiDeleteQuarantine deletes a quarantined input.
func (s *Server) apiDeleteQuarantine(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := s.deleteQuarantine(c, id); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
