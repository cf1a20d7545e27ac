package reports

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // decode non-UTF-8 headers (RFC 2047) of real report mails
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
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
// message/rfc822 parts, base64 or quoted-printable. When the message has no
// report-like part at all (or is not a mail message), it returns the
// Message read so far (possibly nil) and an error wrapping ErrNoReport.
// When report-like parts exist but all are broken, it returns the Message
// with each Attachment.Err set and a nil error: the caller decides. Going
// over a limit returns ErrTooLarge.
func ReadMessage(r io.Reader, lim Limits) (*Message, error) {
	lim = lim.withDefaults()
	in := &limitedReader{r: r, n: lim.MaxMessageBytes}
	br := bufio.NewReader(in)
	th, err := textproto.ReadHeader(br)
	if err != nil {
		if in.over {
			return nil, fmt.Errorf("reading message: %w: over %d bytes", ErrTooLarge, lim.MaxMessageBytes)
		}
		return nil, fmt.Errorf("%w: not a mail message: reading header: %v", ErrNoReport, err)
	}
	h := mail.Header{Header: message.Header{Header: th}}
	m := &Message{}
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
	m.ReportDomain = strings.TrimSpace(headerText(h.Header, "TLS-Report-Domain"))
	m.Submitter = strings.TrimSpace(headerText(h.Header, "TLS-Report-Submitter"))

	w := walker{lim: lim, in: in, msg: m}
	werr := w.walk(h.Header, br, 0)
	if in.over || errors.Is(werr, ErrTooLarge) {
		if !errors.Is(werr, ErrTooLarge) {
			werr = fmt.Errorf("%w: message over %d bytes", ErrTooLarge, lim.MaxMessageBytes)
		}
		return nil, fmt.Errorf("reading message: %w", werr)
	}
	if werr != nil && len(m.Attachments) == 0 {
		return m, fmt.Errorf("%w: reading message: %v", ErrMalformed, werr)
	}
	// A broken MIME structure after the reports were read (a truncated
	// trailer, a missing final boundary) loses nothing: keep them.
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

// walker visits the MIME tree of one message within the limits. It works
// on raw part bodies (go-message's textproto layer) so that it can decode
// report parts itself, tolerating what the stricter decoders refuse.
type walker struct {
	lim   Limits
	in    *limitedReader
	msg   *Message
	parts int
}

func (w *walker) walk(h message.Header, raw io.Reader, depth int) error {
	if depth > w.lim.MaxDepth {
		return fmt.Errorf("%w: mime nesting deeper than %d", ErrTooLarge, w.lim.MaxDepth)
	}
	w.parts++
	if w.parts > w.lim.MaxParts {
		return fmt.Errorf("%w: more than %d mime parts", ErrTooLarge, w.lim.MaxParts)
	}
	ctype, params, _ := h.ContentType()
	ctype = strings.ToLower(ctype)
	switch {
	case strings.HasPrefix(ctype, "multipart/"):
		// The transfer encoding of a multipart is ignored, as go-message
		// does: RFC 2045 §6.4 allows only identity ones there.
		mr := textproto.NewMultipartReader(raw, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading mime part: %w", err)
			}
			if err := w.walk(message.Header{Header: p.Header}, unterminatedPart{p}, depth+1); err != nil {
				return err
			}
		}
	case ctype == "message/rfc822" || ctype == "message/global":
		br := bufio.NewReader(transferDecoder(h, raw))
		th, err := textproto.ReadHeader(br)
		if err != nil {
			return fmt.Errorf("reading forwarded message header: %w", err)
		}
		return w.walk(message.Header{Header: th}, br, depth+1)
	}
	_, dparams, _ := h.ContentDisposition()
	name := dparams["filename"]
	if name == "" {
		name = params["name"]
	}
	if !reportLike(ctype, name) {
		return nil
	}
	a := Attachment{Name: name, ContentType: ctype}
	a.Report, a.JSON, a.Err = parseLimited(transferDecoder(h, raw), w.lim, mailPolicyDomain(w.msg.ReportDomain, name))
	if a.Err != nil {
		if w.in.over {
			return fmt.Errorf("%w: message over %d bytes", ErrTooLarge, w.lim.MaxMessageBytes)
		}
		if !errors.Is(a.Err, ErrMalformed) && !errors.Is(a.Err, ErrTooLarge) {
			// A read error of the part (broken base64 or quoted-printable)
			// is a broken report too, as Attachment.Err documents.
			a.Err = fmt.Errorf("%w: %w", ErrMalformed, a.Err)
		}
		a.Err = fmt.Errorf("parsing part %d (%s %q): %w", w.parts, ctype, name, a.Err)
	}
	w.msg.Attachments = append(w.msg.Attachments, a)
	return nil
}

// unterminatedPart reads a multipart part whose closing boundary is
// missing (the tlsrpt-be sample mail ends right after its base64
// attachment) to its end instead of failing: the gzip checksum and the
// JSON syntax still catch a report that is really cut short.
type unterminatedPart struct {
	r io.Reader
}

func (p unterminatedPart) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	return n, err
}

// transferDecoder undoes the Content-Transfer-Encoding of a part. Unknown
// encodings are read as identity: the content sniffing then decides.
func transferDecoder(h message.Header, raw io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "base64":
		return base64.NewDecoder(base64.RawStdEncoding, &base64Filter{r: raw})
	case "quoted-printable":
		return quotedprintable.NewReader(raw)
	}
	return raw
}

// base64Filter passes only base64 alphabet bytes, dropping line breaks,
// whitespace and "=" padding, so that the decoder accepts a body whose
// final padding is missing (the tlsrpt-be sample mail: its gzip attachment
// ends in an unpadded quantum that strict decoders refuse, losing the last
// byte of the gzip trailer).
type base64Filter struct {
	r io.Reader
}

func (f *base64Filter) Read(p []byte) (int, error) {
	for range 100 {
		n, err := f.r.Read(p)
		j := 0
		for _, c := range p[:n] {
			if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
	return 0, io.ErrNoProgress // a body of only whitespace, read in tiny pieces
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

// mailPolicyDomain is the policy domain a report mail names outside the
// report: the TLS-Report-Domain header, else the second field of an RFC
// 8460 §5.1 file name (sender!policy-domain!begin!end[!id].ext); "" when
// neither is a domain name. Some senders leave policy-domain out of the
// report itself (Postfix with tlsrpt-reporter 0.5.0,
// https://github.com/sys4/tlsrpt-reporter/issues/51); their reports are
// attributed to this domain instead of being refused. A report that names
// its policy domain keeps it.
func mailPolicyDomain(header, filename string) string {
	if d := domainName(header); d != "" {
		return d
	}
	if f := strings.Split(filename, "!"); len(f) >= 4 {
		return domainName(f[1])
	}
	return ""
}

// domainName returns s lower case without a trailing dot when it is a
// DNS name of letters, digits and hyphens with at least two labels, else "".
func domainName(s string) string {
	s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
	if len(s) > 253 || !strings.Contains(s, ".") {
		return ""
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return ""
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return ""
			}
		}
	}
	return s
}
