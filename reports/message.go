package reports

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 headers (RFC 2047) of real report mails
	"github.com/emersion/go-message/mail"
)

// Message is a report mail: the headers that matter and every report-like
// part found in it.
type Message struct {
	MessageID    string // without angle brackets
	From         string // the address of the From header
	Subject      string
	ReportDomain string // TLS-Report-Domain, RFC 8460 §5.3
	Submitter    string // TLS-Report-Submitter, RFC 8460 §5.3
	Date         time.Time
	Attachments  []Attachment
}

// Attachment is one report-like part of a message: either Report and JSON
// are set, or Err says why the part is not a valid report (corrupt gzip,
// not a report, a missing field...). Err wraps ErrMalformed or ErrTooLarge.
type Attachment struct {
	Name        string // file name from Content-Disposition or Content-Type
	ContentType string
	Report      *Report
	JSON        []byte // decompressed JSON of Report
	Err         error
}

// Reports returns the valid reports of m, in message order.
func (m *Message) Reports() []*Report {
	var out []*Report
	for _, a := range m.Attachments {
		if a.Report != nil {
			out = append(out, a.Report)
		}
	}
	return out
}

// reportTypes are the content types whose parts are read as reports
// whatever their name (RFC 8460 §5.3 and what senders use instead).
var reportTypes = map[string]bool{
	"application/tlsrpt+gzip": true,
	"application/tlsrpt+json": true,
	"application/tlsrpt":      true, // bare, seen in stalwart-mail-auth samples
	"application/gzip":        true,
	"application/x-gzip":      true,
	"application/json":        true,
}

// ReadMessage reads an RFC 5322 message and parses every report-like part
// of it: multipart/report, multipart/mixed, a non-multipart body, forwarded
// message/rfc822 parts, any transfer encoding. It returns ErrNoReport when
// the message has no report-like part at all. When report-like parts exist
// but all are broken, it returns the Message with each Attachment.Err set
// and a nil error: the caller decides. Going over a limit returns
// ErrTooLarge.
func ReadMessage(r io.Reader, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	in := &limitedReader{r: r, n: lim.MaxMessageBytes}
	e, err := message.Read(in)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		if in.over {
			return nil, fmt.Errorf("reading message: %w: over %d bytes", ErrTooLarge, lim.MaxMessageBytes)
		}
		return nil, fmt.Errorf("%w: reading message header: %v", ErrMalformed, err)
	}
	m := &Message{}
	h := mail.Header{Header: e.Header}
	m.MessageID, _ = h.MessageID()
	if from, err := h.AddressList("From"); err == nil && len(from) > 0 {
		m.From = from[0].Address
	} else {
		m.From = strings.TrimSpace(h.Get("From"))
	}
	if m.Subject, err = h.Subject(); err != nil {
		m.Subject = h.Get("Subject")
	}
	m.Date, _ = h.Date()
	m.ReportDomain = strings.TrimSpace(headerText(e.Header, "TLS-Report-Domain"))
	m.Submitter = strings.TrimSpace(headerText(e.Header, "TLS-Report-Submitter"))

	w := walker{lim: lim, in: in, msg: m}
	if err := w.walk(e, 0); err != nil {
		if in.over || errors.Is(err, ErrTooLarge) {
			if !errors.Is(err, ErrTooLarge) {
				err = fmt.Errorf("%w: message over %d bytes", ErrTooLarge, lim.MaxMessageBytes)
			}
			return nil, fmt.Errorf("reading message: %w", err)
		}
		// A broken MIME structure after the reports were read (a truncated
		// trailer, a missing final boundary) loses nothing: keep them.
		if len(m.Attachments) == 0 {
			return nil, fmt.Errorf("%w: reading message: %v", ErrMalformed, err)
		}
	}
	if in.over {
		return nil, fmt.Errorf("reading message: %w: over %d bytes", ErrTooLarge, lim.MaxMessageBytes)
	}
	if len(m.Attachments) == 0 {
		return m, ErrNoReport
	}
	return m, nil
}

func headerText(h message.Header, key string) string {
	if v, err := h.Text(key); err == nil {
		return v
	}
	return h.Get(key)
}

// walker visits the MIME tree of one message within the limits.
type walker struct {
	lim   Limits
	in    *limitedReader
	msg   *Message
	parts int
}

func (w *walker) walk(e *message.Entity, depth int) error {
	if depth > w.lim.MaxDepth {
		return fmt.Errorf("%w: mime nesting deeper than %d", ErrTooLarge, w.lim.MaxDepth)
	}
	w.parts++
	if w.parts > w.lim.MaxParts {
		return fmt.Errorf("%w: more than %d mime parts", ErrTooLarge, w.lim.MaxParts)
	}
	if mr := e.MultipartReader(); mr != nil {
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
				return fmt.Errorf("reading mime part: %w", err)
			}
			if err := w.walk(p, depth+1); err != nil {
				return err
			}
		}
	}
	ctype, params, _ := e.Header.ContentType()
	ctype = strings.ToLower(ctype)
	if ctype == "message/rfc822" || ctype == "message/global" {
		inner, err := message.Read(e.Body)
		if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
			return fmt.Errorf("reading forwarded message: %w", err)
		}
		return w.walk(inner, depth+1)
	}
	_, dparams, _ := e.Header.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if !reportLike(ctype, name) {
		return nil
	}
	a := Attachment{Name: name, ContentType: ctype}
	a.Report, a.JSON, a.Err = ParseLimited(e.Body, w.lim)
	if a.Err != nil {
		if w.in.over {
			return fmt.Errorf("%w: message over %d bytes", ErrTooLarge, w.lim.MaxMessageBytes)
		}
		a.Err = fmt.Errorf("parsing part %d (%s %q): %w", w.parts, ctype, name, a.Err)
	}
	w.msg.Attachments = append(w.msg.Attachments, a)
	return nil
}

// reportLike says whether a leaf part should hold a report: by its type,
// or by a .json/.json.gz name (application/octet-stream from senders that
// do not know the tlsrpt types). The content itself is then sniffed.
func reportLike(ctype, name string) bool {
	if reportTypes[ctype] {
		return true
	}
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".json") || strings.HasSuffix(n, ".json.gz")
}
