package api

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/ui"
)

// auditFilter reads ?domain= (optional) and ?limit= (1..500, default 200).
func auditFilter(c echo.Context) (domain string, limit int, err error) {
	if d := c.QueryParam("domain"); d != "" {
		if domain, err = db.NormalizeDomain(d); err != nil {
			return "", 0, errorf(http.StatusBadRequest, "domain %q is not a valid domain name", d)
		}
	}
	limit = 200
	if l := c.QueryParam("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 500 {
			return "", 0, errorf(http.StatusBadRequest, "limit must be a number from 1 to 500")
		}
		limit = n
	}
	return domain, limit, nil
}

// auditEntries reads the entries the request asks for (auditFilter).
func (s *Server) auditEntries(c echo.Context) (domain string, out []auditJSON, err error) {
	domain, limit, err := auditFilter(c)
	if err != nil {
		return "", nil, err
	}
	es, err := s.cfg.DB.AuditLog(c.Request().Context(), domain, limit)
	if err != nil {
		return "", nil, err
	}
	out = []auditJSON{}
	for _, e := range es {
		detail, _ := e.Detail.(json.RawMessage)
		out = append(out, auditJSON{ID: e.ID, At: e.At.UTC(), Actor: e.Actor, Action: e.Action, Domain: e.Domain, Detail: detail})
	}
	return domain, out, nil
}

// auditPage is the audit log for admins: promotes, overrides, rollbacks,
// settings, users, tokens, reports taken back, reporter rules.
func (s *Server) auditPage(c echo.Context) error {
	domain, es, err := s.auditEntries(c)
	if err != nil {
		return err
	}
	page := ui.AuditPage{Layout: s.layout(c, "Audit log", "audit"), Domain: domain}
	for _, e := range es {
		page.Rows = append(page.Rows, ui.AuditRow{At: e.At.Format(time.RFC3339), Actor: e.Actor, Action: e.Action,
			Domain: e.Domain, Detail: string(e.Detail)})
	}
	return s.render(c, http.StatusOK, "audit", page)
}

// auditJSON is one audit entry in the API.
type auditJSON struct {
	ID     int64           `json:"id"`
	At     time.Time       `json:"at"`
	Actor  string          `json:"actor"`
	Action string          `json:"action"`
	Domain string          `json:"domain,omitempty"`
	Detail json.RawMessage `json:"detail"`
}

// apiAudit is GET /api/v1/audit: the newest entries, ?domain= and ?limit=.
func (s *Server) apiAudit(c echo.Context) error {
	_, es, err := s.auditEntries(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"entries": es})
}
