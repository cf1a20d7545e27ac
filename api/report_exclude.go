package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
)

// checkReason trims and bounds a reason; required says whether it may be
// empty.
func checkReason(reason string, required bool) (string, error) {
	reason = strings.TrimSpace(reason)
	if required && reason == "" {
		return "", errorf(http.StatusBadRequest, "give a reason: it is shown on the report and kept in the audit log")
	}
	if len(reason) > maxReason {
		return "", errorf(http.StatusBadRequest, "the reason is longer than %d bytes", maxReason)
	}
	return reason, nil
}

// reportAudit is the audit detail of a change to a stored report: which
// one, as the report names itself and as verified.
func reportAudit(r *db.StoredReport, reason string) map[string]any {
	d := map[string]any{"id": r.ID, "report_id": r.Report.ReportID, "organization": r.Report.OrganizationName,
		"reporter": r.Reporter}
	if reason != "" {
		d["reason"] = reason
	}
	return d
}

// excludeReport takes report id out of every count (db.ExcludeReport)
// and records who did it and why.
func (s *Server) excludeReport(c echo.Context, id int64, reason string) error {
	ctx := c.Request().Context()
	r, err := s.cfg.DB.Report(ctx, id)
	if err != nil {
		return err
	}
	if err := s.cfg.DB.ExcludeReport(ctx, id, actor(c), reason, s.now()); err != nil {
		if errors.Is(err, db.ErrExcluded) {
			return &Error{Status: http.StatusConflict, Message: fmt.Sprintf("report %d is excluded already", id), Err: err}
		}
		return err
	}
	// The rollups changed: the stored verdict badges of its domains are
	// stale (a trigger says so); recompute them now rather than later.
	s.kickRefresher()
	return s.audit(c, "report.exclude", "", reportAudit(r, reason))
}

// includeReport makes an excluded report count again.
func (s *Server) includeReport(c echo.Context, id int64) error {
	ctx := c.Request().Context()
	r, err := s.cfg.DB.Report(ctx, id)
	if err != nil {
		return err
	}
	if err := s.cfg.DB.IncludeReport(ctx, id); err != nil {
		if errors.Is(err, db.ErrExcluded) {
			return &Error{Status: http.StatusConflict, Message: fmt.Sprintf("report %d is not excluded: it counts already", id), Err: err}
		}
		return err
	}
	// As in excludeReport.
	s.kickRefresher()
	return s.audit(c, "report.include", "", reportAudit(r, r.ExcludedReason))
}

// deleteReport removes a stored report for good; the audit entry keeps
// what it was.
func (s *Server) deleteReport(c echo.Context, id int64, reason string) error {
	ctx := c.Request().Context()
	r, err := s.cfg.DB.Report(ctx, id)
	if err != nil {
		return err
	}
	if err := s.cfg.DB.DeleteReport(ctx, id); err != nil {
		return err
	}
	// As in excludeReport.
	s.kickRefresher()
	return s.audit(c, "report.delete", "", reportAudit(r, reason))
}

// excludeForm is the report page's "Exclude" button.
func (s *Server) excludeForm(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	reason, err := checkReason(c.FormValue("reason"), true)
	if err != nil {
		return err
	}
	if err := s.excludeReport(c, id, reason); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/reports/"+strconv.FormatInt(id, 10)+"?done=excluded")
}

// includeForm is the report page's "Include again" button.
func (s *Server) includeForm(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := s.includeReport(c, id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/reports/"+strconv.FormatInt(id, 10)+"?done=included")
}

// deleteReportForm is the report page's "Delete": the admin types the
// report's number, so a stray click deletes nothing.
func (s *Server) deleteReportForm(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if strings.TrimSpace(c.FormValue("confirm")) != strconv.FormatInt(id, 10) {
		return errorf(http.StatusBadRequest, "type the report's number, %d, to delete it", id)
	}
	reason, err := checkReason(c.FormValue("reason"), false)
	if err != nil {
		return err
	}
	if err := s.deleteReport(c, id, reason); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/reports?done=report-deleted")
}

// apiExcludeReport is POST /api/v1/reports/:id/exclude {"reason": "..."}.
func (s *Server) apiExcludeReport(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	var in struct {
		Reason string `json:"reason"`
	}
	if err := readJSON(c, &in); err != nil {
		return err
	}
	reason, err := checkReason(in.Reason, true)
	if err != nil {
		return err
	}
	if err := s.excludeReport(c, id, reason); err != nil {
		return err
	}
	return s.apiReport(c)
}

// apiIncludeReport is POST /api/v1/reports/:id/include.
func (s *Server) apiIncludeReport(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	if err := s.includeReport(c, id); err != nil {
		return err
	}
	return s.apiReport(c)
}

// apiDeleteReport is DELETE /api/v1/reports/:id; an optional ?reason= is
// kept in the audit log.
func (s *Server) apiDeleteReport(c echo.Context) error {
	id, err := idParam(c)
	if err != nil {
		return err
	}
	reason, err := checkReason(c.QueryParam("reason"), false)
	if err != nil {
		return err
	}
	if err := s.deleteReport(c, id, reason); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
