package api

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/ui"
)

// contentSecurityPolicy forbids inline scripts and styles and everything
// from elsewhere: whatever a hostile report slips past the escaping cannot
// run.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders sets the headers every answer carries.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if s.cfg.SecureCookies {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if !strings.HasPrefix(c.Request().URL.Path, ui.StaticPrefix) {
			h.Set("Cache-Control", "no-store")
		}
		return next(c)
	}
}

// checkQuery refuses, for every route, a query string that does not parse
// or whose names or values hold a NUL byte or invalid UTF-8: PostgreSQL
// text holds neither, so ?org=%00 or ?q=%ff reached the store and answered
// 500. Handlers may then take any parameter as clean text.
func (s *Server) checkQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := validQuery(c.Request().URL.RawQuery); err != nil {
			return err
		}
		return next(c)
	}
}

// validQuery checks a raw query string; the error names the parameter.
func validQuery(raw string) error {
	if raw == "" {
		return nil
	}
	vs, err := url.ParseQuery(raw)
	if err != nil {
		return errorf(http.StatusBadRequest, "the query string is not valid: %s", clip(strings.ToValidUTF8(err.Error(), "?")))
	}
	names := make([]string, 0, len(vs))
	for k := range vs {
		names = append(names, k)
	}
	slices.Sort(names) // the same parameter is named every time
	for _, k := range names {
		if !cleanText(k) {
			return errorf(http.StatusBadRequest, "the query parameter %q has a name with a NUL byte or invalid UTF-8", clip(k))
		}
		for _, v := range vs[k] {
			if !cleanText(v) {
				return errorf(http.StatusBadRequest, "the query parameter %s holds a NUL byte or invalid UTF-8", clip(k))
			}
		}
	}
	return nil
}

// cleanText is whether s can be PostgreSQL text: UTF-8 without NUL.
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// recoverPanic turns a handler panic into a logged 500, so one bad request
// does not take the server down.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("handler panic: %v\n%s", r, debug.Stack())
			}
		}()
		return next(c)
	}
}

// static serves the embedded assets under their content-hash names,
// cached for a year: a changed file gets a new name.
func (s *Server) static(c echo.Context) error {
	a, ok := s.pages.Asset(c.Request().URL.Path)
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("ETag", a.ETag)
	if c.Request().Header.Get("If-None-Match") == a.ETag {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, a.ContentType, a.Body)
}

// render writes a page.
func (s *Server) render(c echo.Context, status int, page string, data any) error {
	var buf bytes.Buffer
	if err := s.pages.Render(&buf, page, data); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// layout is the shared part of a page for the caller.
func (s *Server) layout(c echo.Context, title, nav string) ui.Layout {
	l := ui.Layout{Title: title, Nav: nav, Notices: s.cfg.Notices}
	if n := s.replicaNotice(c.Request().Context()); n != "" {
		l.Notices = append(l.Notices[:len(l.Notices):len(l.Notices)], n)
	}
	if p := principalOf(c); p != nil {
		l.User, l.Role, l.CanEdit, l.CSRF = p.Name, p.Role, p.admin(), p.CSRF
	}
	// The flash is a code, not text: a crafted link cannot put words in
	// the server's mouth.
	l.Flash = flashes[c.QueryParam("done")]
	return l
}

// healthz answers 200 when the database answers.
func (s *Server) healthz(c echo.Context) error {
	if err := s.cfg.DB.Pool.Ping(c.Request().Context()); err != nil {
		s.log.WarnContext(c.Request().Context(), "Health check failed", "error", err)
		return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "database unreachable"})
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// flashes are the messages a redirect after a form can show (?done=code).
var flashes = map[string]string{
	"added":      "Domain added.",
	"removed":    "Domain removed from the list; its reports stay stored.",
	"saved":      "Settings saved.",
	"publishing": "Publishing setting saved; it applies to the next version published.",
	// The domain's own publishing setting removed (publishing.go).
	"publishing-reset": "This domain uses the fleet default publishing setting again.",
	"reprocessed":      "Message reprocessed.",
	"deleted":          "Message deleted.",
	// The report page and list (report_exclude.go).
	"excluded":       "Report excluded: its sessions no longer count.",
	"included":       "Report included again: its sessions count.",
	"report-deleted": "Report deleted.",
	// Settings, trusted reporters (reporter_rules.go).
	"rule-added":   "Reporter rule added; it applies to reports stored from now on.",
	"rule-deleted": "Reporter rule deleted.",
	// Users, API tokens, your account (accounts.go).
	"user-added":       "User added.",
	"user-role":        "Role changed.",
	"user-password":    "Password reset; that user's sessions ended.",
	"user-removed":     "User removed; its sessions ended.",
	"token-revoked":    "Token revoked.",
	"password-changed": "Password changed; your other sessions ended.",
	// The autopilot panel (autopilot.go).
	"autopilot-on":        "Autopilot switched on: it evaluates the domain once a day.",
	"autopilot-off":       "Autopilot switched off.",
	"autopilot-hold-days": "Autopilot hold days set.",
}
