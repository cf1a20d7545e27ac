package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/db"
	"github.com/tlsrpt/tlsrpt/internal/errtext"
	"github.com/tlsrpt/tlsrpt/ui"
)

// Error is an error with the HTTP status and the message a person reads.
// Handlers return it for everything that is the client's fault; anything
// else becomes a 500 and is logged (handleError, the one place that maps
// errors to statuses).
type Error struct {
	Status  int
	Message string
	Err     error // the cause, logged, never shown
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Message: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON of every error answer.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
	// Field names the invalid field of a 422 (publishing settings).
	Field string `json:"field,omitempty"`
}

// classify maps err to the status and message shown.
func classify(err error) (int, string, bool) {
	var ae *Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &ae):
		return ae.Status, ae.Message, ae.Status >= 500
	case errors.As(err, &he):
		msg := http.StatusText(he.Code)
		switch he.Code {
		case http.StatusNotFound:
			msg = "there is no page or API route at this address"
		case http.StatusMethodNotAllowed:
			msg = "this address does not take that method"
		case http.StatusRequestEntityTooLarge:
			msg = "the request body is too large"
		case http.StatusUnsupportedMediaType:
			msg = "the request body has a type this address does not take"
		}
		return he.Code, msg, he.Code >= 500
	case errors.Is(err, db.ErrNotFound):
		return http.StatusNotFound, "there is nothing with this id or name", false
	case errors.Is(err, db.ErrExcluded):
		return http.StatusConflict, "the report is already in that state", false
	case errors.Is(err, db.ErrBadRule):
		// The message says what is wrong with the rule; it names no
		// stored data.
		return http.StatusBadRequest, PlainMessage(err), false
	case errors.Is(err, db.ErrNoCredential):
		return http.StatusUnauthorized, "log in or send a valid API token", false
	case errors.Is(err, context.Canceled):
		return 499, "the request was cancelled", false
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "the server took too long; try again", true
	case db.Unavailable(err):
		// No primary during a failover, or the database down: not the
		// client's fault, and over in seconds (handleError adds
		// Retry-After).
		return http.StatusServiceUnavailable, "the database cannot be reached now; try again in a few seconds", true
	}
	return http.StatusInternalServerError, "something went wrong on the server; the log has the details", true
}

// unavailableRetry is the Retry-After (seconds) of a 503 without one of
// its own: a failover is over in seconds (RELIABILITY.md, "Failover").
const unavailableRetry = 5

// wantsJSON tells whether the answer to this request is JSON rather than
// an HTML page.
func wantsJSON(c echo.Context) bool {
	p := c.Request().URL.Path
	return strings.HasPrefix(p, "/api/") || p == "/tlsrpt" || p == "/healthz" || p == "/metrics" ||
		strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "application/json")
}

// handleError is Echo's HTTPErrorHandler: the one place where errors
// become answers.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg, internal := classify(err)
	if status == http.StatusServiceUnavailable && c.Response().Header().Get("Retry-After") == "" {
		c.Response().Header().Set("Retry-After", strconv.Itoa(unavailableRetry))
	}
	if internal {
		s.log.ErrorContext(c.Request().Context(), "Request failed", "method", clip(c.Request().Method),
			"path", clip(c.Request().URL.Path), "user_agent", clip(c.Request().UserAgent()), "status", status, "error", clipErr(err))
	}
	if status == 499 {
		return
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	if wantsJSON(c) {
		_ = c.JSON(status, errorBody{Error: errorDetail{Status: status, Message: msg}})
		return
	}
	page := ui.ErrorPage{Layout: s.layout(c, http.StatusText(status), ""), Status: status, Message: msg}
	if err := s.render(c, status, "error", page); err != nil {
		s.log.ErrorContext(c.Request().Context(), "Rendering error page failed", "error", clipErr(err))
		_ = c.String(status, msg)
	}
}

// PlainMessage is err's message for people: without the package names
// that sentinel errors carry for programmers ("api: ", "db: ",
// "publish: ", "pubconf: "), at the start or after a wrapping ": " (errtext.Plain).
// errors.Is still works on err itself.
func PlainMessage(err error) string { return errtext.Plain(err) }
