package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/tlsrpt/tlsrpt/ingest"
	"github.com/tlsrpt/tlsrpt/reports"
)

// reportMediaTypes are the bodies POST /tlsrpt takes (RFC 8460 §5.4 names
// the first two; plain JSON and gzip are what hand-made clients send).
var reportMediaTypes = map[string]bool{
	"application/tlsrpt+gzip": true,
	"application/tlsrpt+json": true,
	"application/json":        true,
	"application/gzip":        true,
}

// postResult is the answer to POST /tlsrpt.
type postResult struct {
	Stored     int    `json:"stored"`
	Duplicates int    `json:"duplicates"`
	Message    string `json:"message"`
}

// postReport is the HTTPS rua endpoint (RFC 8460 §5.4): the body is one
// report, stored through the same pipeline as mail. A duplicate is a
// success: senders retry, and the report is stored.
func (s *Server) postReport(c echo.Context) error {
	if s.cfg.Pipeline == nil {
		return errorf(http.StatusServiceUnavailable, "this server does not take reports over HTTPS")
	}
	req := c.Request()
	mt, _, err := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	if err != nil || !reportMediaTypes[mt] {
		s.metrics.https.WithLabelValues("refused").Inc()
		return errorf(http.StatusUnsupportedMediaType, "send the report as application/tlsrpt+json or application/tlsrpt+gzip (RFC 8460 §5.4)")
	}
	if req.ContentLength > s.cfg.MaxReportBytes {
		s.metrics.https.WithLabelValues("refused").Inc()
		return errorf(http.StatusRequestEntityTooLarge, "the report is larger than %d bytes", s.cfg.MaxReportBytes)
	}
	// The body and what it may decompress to are charged to the parse
	// budget before it is read (all of the body limit when its length is
	// not given), and only its own cost is kept once it is read: a flood
	// of bombs is refused with 503 instead of holding gigabytes.
	expect := req.ContentLength
	if expect < 0 {
		expect = s.cfg.MaxReportBytes
	}
	res, err := s.intake.Reserve(ingest.ParseCost(expect, s.cfg.Pipeline.Limits))
	if err != nil {
		return s.postNotTaken(c, err)
	}
	defer res.Release()
	body, err := io.ReadAll(io.LimitReader(req.Body, s.cfg.MaxReportBytes+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "reading the request body failed")
	}
	if int64(len(body)) > s.cfg.MaxReportBytes {
		s.metrics.https.WithLabelValues("refused").Inc()
		return errorf(http.StatusRequestEntityTooLarge, "the report is larger than %d bytes", s.cfg.MaxReportBytes)
	}
	res.Shrink(ingest.ParseCost(int64(len(body)), s.cfg.Pipeline.Limits))
	// Who posted it: the reporter of a posted report is proven only by the
	// forward-confirmed reverse name of the address (docs/reporters.md); without one it is stored unverified. A DNS failure is not
	// proof of anything: the sender is asked to post again later.
	ctx := req.Context()
	remote := ingest.Remote{}
	if a, err := netip.ParseAddr(c.RealIP()); err == nil {
		remote.Addr = a.Unmap()
		if remote.Name, err = ingest.ConfirmedName(ctx, s.cfg.Resolver, remote.Addr); err != nil {
			s.metrics.https.WithLabelValues("unavailable").Inc()
			s.log.WarnContext(ctx, "Checking a poster's reverse DNS failed", "remote_addr", clip(c.RealIP()), "error", clipErr(err))
			c.Response().Header().Set("Retry-After", strconv.Itoa(300))
			return &Error{Status: http.StatusServiceUnavailable, Message: "the reverse DNS of your address could not be checked now; try again later"}
		}
	}
	// Stored together with the reports of concurrent requests (one
	// transaction for many: intake.go); the answer is this report's own.
	out, err := s.intake.Report(ingest.WithRemote(ctx, remote), body, reports.SourceHTTPS, c.RealIP())
	if err != nil {
		return s.postNotTaken(c, err)
	}
	switch {
	case out.New > 0:
		s.metrics.https.WithLabelValues("stored").Inc()
		return c.JSON(http.StatusOK, postResult{Stored: out.New, Message: "report stored"})
	case out.Duplicates > 0:
		s.metrics.https.WithLabelValues("duplicate").Inc()
		return c.JSON(http.StatusOK, postResult{Duplicates: out.Duplicates, Message: "report already stored"})
	}
	s.metrics.https.WithLabelValues("refused").Inc()
	msg := "the body is not a valid TLS report"
	if out.Reason != "" {
		msg += ": " + out.Reason
	}
	return errorf(http.StatusBadRequest, "%s", msg)
}

// postNotTaken answers a posted report that was not taken (the parse
// budget or the queue is full, the store is down): 503 with Retry-After,
// nothing acknowledged.
func (s *Server) postNotTaken(c echo.Context, err error) error {
	req := c.Request()
	var re *ingest.RetryError
	switch {
	case errors.As(err, &re):
		// The parse budget or the queue is full, or the store down:
		// refused at once, so the sender retries instead of hanging.
		s.metrics.https.WithLabelValues("unavailable").Inc()
		// Logged at Debug: the batcher logs the store's failure once per
		// batch, and an overloaded server must not also flood its log.
		s.log.DebugContext(req.Context(), "Posted report not taken", "remote_addr", clip(c.RealIP()), "error", clipErr(err))
		c.Response().Header().Set("Retry-After", re.RetryAfterSeconds())
		return &Error{Status: http.StatusServiceUnavailable, Message: "the report could not be taken now (" + re.Reason + "); try again later"}
	case errors.Is(err, ingest.ErrRetryLater):
		// The quarantine of a broken body failed: the store is down.
		s.log.ErrorContext(req.Context(), "Storing a posted report failed", "remote_addr", clip(c.RealIP()), "error", clipErr(err))
		c.Response().Header().Set("Retry-After", strconv.Itoa(60))
		return &Error{Status: http.StatusServiceUnavailable, Message: "the report could not be stored now; try again later", Err: err}
	}
	return err
}

// reprocess runs a quarantined input through the pipeline again: a mail
// as a message, anything else sniffed as a report or a message. When it
// now yields reports, the entry is marked reprocessed.
func (s *Server) reprocess(c echo.Context, id int64) (ingest.Outcome, error) {
	ctx := c.Request().Context()
	if s.cfg.Pipeline == nil {
		return ingest.Outcome{}, errorf(http.StatusServiceUnavailable, "reprocessing needs the ingest pipeline, which this server was started without")
	}
	e, err := s.cfg.DB.QuarantineGet(ctx, id)
	if err != nil {
		return ingest.Outcome{}, err
	}
	if e.Truncated != "" {
		// Parsing a prefix would only fail again, or worse, read a cut
		// report as a whole one.
		return ingest.Outcome{}, errorf(http.StatusConflict, "quarantine entry %d cannot be reprocessed: %s (of %d bytes)", id, e.Truncated, e.Size)
	}
	var out ingest.Outcome
	if e.Source != reports.SourceIMAP && reports.IsReportData(e.Raw) {
		out, err = s.cfg.Pipeline.Report(ctx, e.Raw, e.Source, e.SourceRef)
	} else {
		out, err = s.cfg.Pipeline.Message(ctx, e.Raw, e.Source, e.SourceRef)
	}
	if err != nil {
		return out, err
	}
	if out.Reports == 0 {
		return out, errorf(http.StatusUnprocessableEntity, "still no valid report in message %d: %s", id, out.Reason)
	}
	if !out.Quarantined {
		if err := s.cfg.DB.QuarantineResolved(ctx, id, s.now()); err != nil {
			return out, err
		}
	}
	return out, s.audit(c, "quarantine.reprocess", "", map[string]any{"id": id, "new": out.New, "duplicates": out.Duplicates})
}
