package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/ui"
)

// reportsPageSize is the number of reports per page.
const reportsPageSize = 50

// maxFilterLen bounds every filter field typed into the list.
const maxFilterLen = 256

// reportFilter reads the list filters from the query string.
func reportFilter(c echo.Context) (db.ReportListFilter, ui.ReportFilter, error) {
	q := c.QueryParams()
	uf := ui.ReportFilter{
		Domain: q.Get("domain"), Org: q.Get("org"), Result: q.Get("result"), MX: q.Get("mx"),
		IP: q.Get("ip"), From: q.Get("from"), To: q.Get("to"),
	}
	for _, v := range []string{uf.Domain, uf.Org, uf.Result, uf.MX, uf.IP, uf.From, uf.To} {
		if len(v) > maxFilterLen {
			return db.ReportListFilter{}, uf, errorf(http.StatusBadRequest, "a filter is longer than %d characters", maxFilterLen)
		}
	}
	f := db.ReportListFilter{Org: uf.Org, ResultType: uf.Result, MX: uf.MX, SendingIP: uf.IP, Limit: reportsPageSize}
	if uf.Domain != "" {
		d, err := db.NormalizeDomain(uf.Domain)
		if err != nil {
			return f, uf, errorf(http.StatusBadRequest, "%q is not a valid domain name", uf.Domain)
		}
		f.Domain = d
	}
	var err error
	if f.From, err = parseDay("from", uf.From); err != nil {
		return f, uf, err
	}
	if f.To, err = parseDay("to", uf.To); err != nil {
		return f, uf, err
	}
	if !f.To.IsZero() {
		f.To = f.To.AddDate(0, 0, 1) // the form's "to" day is included
	}
	if b := q.Get("before"); b != "" {
		cur, err := db.ParseReportCursor(b)
		if err != nil {
			return f, uf, errorf(http.StatusBadRequest, "the page position %q is not valid", b)
		}
		f.Before = &cur
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > db.MaxDashboardRows {
			return f, uf, errorf(http.StatusBadRequest, "limit must be 1..%d", db.MaxDashboardRows)
		}
		f.Limit = n
	}
	return f, uf, nil
}

func parseDay(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "%s must be a date like 2026-11-30, not %q", name, v)
	}
	return t, nil
}

// nextPage is the URL of the page after rows, "" on the last page.
func nextPage(c echo.Context, base string, rows []db.ReportListRow, limit int) string {
	if len(rows) < limit {
		return ""
	}
	q := c.QueryParams()
	last := rows[len(rows)-1]
	q.Set("before", db.ReportCursor{Start: last.Start, ID: last.ID}.String())
	return base + "?" + q.Encode()
}

// reportsPage is the filtered report list.
func (s *Server) reportsPage(c echo.Context) error {
	f, uf, err := reportFilter(c)
	if err != nil {
		return err
	}
	rows, err := s.cfg.DB.DashboardReports(c.Request().Context(), f)
	if err != nil {
		return err
	}
	page := ui.ReportsPage{Layout: s.layout(c, "Reports", "reports"), Filter: uf, NextURL: nextPage(c, "/reports", rows, f.Limit)}
	if f.Before != nil {
		q := c.QueryParams()
		q.Del("before")
		page.PrevURL = "/reports?" + q.Encode()
	}
	for _, r := range rows {
		page.Rows = append(page.Rows, ui.ReportRow{
			ID: r.ID, Org: r.OrganizationName, ReportID: r.ReportID, Day: r.Day.Format(time.DateOnly),
			Domains: strings.Join(r.Domains, ", "), Sessions: satAdd(r.Successful, r.Failed), Failures: r.Failed,
			Source: r.Source, DKIM: r.DKIM, Unverified: !r.Trusted, Excluded: r.ExcludedAt != nil,
			Reporter: reporterView(r.Reporter, reports.ReporterMethod(r.ReporterMethod), r.NameMismatch, r.Trusted),
		})
	}
	return s.render(c, http.StatusOK, "reports", page)
}

func idParam(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, errorf(http.StatusBadRequest, "%q is not a valid id", c.Param("id"))
	}
	return id, nil
}

// reportPage shows one report.
func (s *Server) reportPage(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := idParam(c)
	if err != nil {
		return err
	}
	r, err := s.cfg.DB.Report(ctx, id)
	if err != nil {
		return err
	}
	raw, err := s.cfg.DB.ReportJSON(ctx, id)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, raw, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(raw)
	}
	rp := r.Report
	page := ui.ReportPage{
		Layout: s.layout(c, "Report "+rp.ReportID, "reports"),
		ID:     id, Org: rp.OrganizationName, ReportID: rp.ReportID, Contact: rp.ContactInfo,
		Start: rp.DateRange.Start.Format(time.RFC3339), End: rp.DateRange.End.Format(time.RFC3339),
		ReceivedAt: r.ReceivedAt.UTC().Format(time.RFC3339), Source: string(r.Source), SourceRef: r.SourceRef,
		Submitter: r.Submitter, From: r.From, DKIM: string(r.DKIM), DKIMDomain: r.DKIMDomain,
		Unverified: !r.Trusted, RawJSON: pretty.String(), RawJSONLink: "/reports/" + strconv.FormatInt(id, 10) + "/raw",
		Reporter:   reporterView(r.Reporter, r.ReporterMethod, r.NameMismatch, r.Trusted),
		RemoteName: r.RemoteName, MaxReason: maxReason,
	}
	if r.RemoteAddr.IsValid() {
		page.RemoteAddr = r.RemoteAddr.String()
	}
	if r.ExcludedAt != nil {
		page.Excluded, page.ExcludedAt = true, r.ExcludedAt.UTC().Format(time.RFC3339)
		page.ExcludedBy, page.ExcludedReason = r.ExcludedBy, r.ExcludedReason
	}
	for _, p := range rp.Policies {
		pv := ui.PolicyView{Type: p.Policy.Type, Domain: p.Policy.Domain, Strings: p.Policy.Strings, MXHosts: p.Policy.MXHosts,
			Success: p.Summary.TotalSuccessfulSessionCount, Failure: p.Summary.TotalFailureSessionCount}
		for _, f := range p.FailureDetails {
			pv.Failures = append(pv.Failures, failureView(f))
		}
		page.Policies = append(page.Policies, pv)
	}
	return s.render(c, http.StatusOK, "report", page)
}

// reporterView is a report's verified reporter as the pages show it;
// trusted says whether the report counts.
func reporterView(reporter string, m reports.ReporterMethod, mismatch string, trusted bool) ui.ReporterView {
	v := ui.ReporterView{Domain: reporter, Mismatch: mismatch}
	switch m {
	case reports.ReporterDKIM:
		v.Method = "DKIM signer"
	case reports.ReporterReverseDNS:
		v.Method = "reverse DNS of the posting address"
	case reports.ReporterNetwork:
		v.Method = "posted from an operator's network"
	case reports.ReporterFile:
		v.Method = "imported file"
	case reports.ReporterFileName:
		v.Method = "imported file, by organisation name"
	default:
		// Unverified, or a counted row stored before reporters were
		// recorded.
		v.Domain, v.Method, v.Unrecorded = "", "unverified", trusted
	}
	return v
}

func failureView(f reports.FailureDetail) ui.FailureView {
	return ui.FailureView{ResultType: f.ResultType, SendingIP: f.SendingMTAIP, ReceivingMX: f.ReceivingMXHostname,
		ReceivingHelo: f.ReceivingMXHelo, ReceivingIP: f.ReceivingIP, Count: f.FailedSessionCount,
		AdditionalInfo: f.AdditionalInformation, ReasonCode: f.FailureReasonCode}
}

// apiReportRaw returns the report as received. It is served as an
// attachment with a JSON type and nosniff, so a browser never renders it.
func (s *Server) apiReportRaw(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	raw, err := s.cfg.DB.ReportJSON(c.Request().Context(), id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="report-`+strconv.FormatInt(id, 10)+`.json"`)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, raw)
}

// quarantinePage lists quarantined messages.
func (s *Server) quarantinePage(c echo.Context) error {
	es, err := s.cfg.DB.QuarantineList(c.Request().Context(), db.QuarantineFilter{Limit: 200})
	if err != nil {
		return err
	}
	page := ui.QuarantinePage{Layout: s.layout(c, "Quarantine", "quarantine")}
	for _, e := range es {
		page.Rows = append(page.Rows, ui.QuarantineRow{ID: e.ID, ReceivedAt: e.CreatedAt.UTC().Format(time.RFC3339),
			Source: string(e.Source), SourceRef: e.SourceRef, Reason: e.Reason, Size: int64(e.Size), Kept: int64(e.Kept), Truncated: e.Truncated})
	}
	return s.render(c, http.StatusOK, "quarantine", page)
}

// quarantineRaw downloads a quarantined message as an opaque attachment.
func (s *Server) quarantineRaw(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	e, err := s.cfg.DB.QuarantineGet(c.Request().Context(), id)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="quarantine-`+strconv.FormatInt(id, 10)+`.eml"`)
	return c.Blob(http.StatusOK, echo.MIMEOctetStream, e.Raw)
}

// reprocessForm runs a quarantined message through the pipeline again.
func (s *Server) reprocessForm(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if _, err := s.reprocess(c, id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/quarantine?done=reprocessed")
}

// deleteQuarantineForm deletes a quarantined message.
func (s *Server) deleteQuarantineForm(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := s.deleteQuarantine(c, id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/quarantine?done=deleted")
}

func (s *Server) deleteQuarantine(c echo.Context, id int64) error {
	if err := s.cfg.DB.QuarantineDelete(c.Request().Context(), id); err != nil {
		return err
	}
	return s.audit(c, "quarantine.delete", "", map[string]int64{"id": id})
}
