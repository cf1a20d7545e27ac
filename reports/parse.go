package reports

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/klauspost/compress/gzip"
)

// gzipMagic starts every gzip stream (RFC 1952 §2.3.1). Reports are
// recognised as gzip by these bytes only: application/tlsrpt+gzip parts
// holding plain JSON exist in the wild.
var gzipMagic = [2]byte{0x1f, 0x8b}

// utf8BOM is skipped before the JSON: some Windows tooling writes one.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// Parse reads one report, JSON or gzip-compressed JSON, with the default
// limits.
func Parse(r io.Reader) (*Report, error) {
	rep, _, err := ParseLimited(r, DefaultLimits())
	return rep, err
}

// ParseLimited reads one report, JSON or gzip-compressed JSON recognised by
// its magic bytes, within lim. It returns the report and its decompressed
// JSON (for storage, so that it can be re-parsed after a parser fix).
// Errors wrap ErrTooLarge or ErrMalformed, or are read errors of r.
func ParseLimited(r io.Reader, lim Limits) (*Report, []byte, error) {
	return parseLimited(r, lim, "")
}

// parseLimited is ParseLimited taking policyDomain as the policy domain of
// policies that name none ("" refuses them).
func parseLimited(r io.Reader, lim Limits, policyDomain string) (*Report, []byte, error) {
	lim = lim.withDefaults()
	// The input is read whole first: it is the JSON itself, or the
	// compressed report, smaller still; both are bounded by the report limit.
	raw, err := readAtMost(r, lim.MaxReportBytes, lenHint(r))
	if err != nil {
		return nil, nil, err
	}
	data := raw
	if len(raw) >= 2 && raw[0] == gzipMagic[0] && raw[1] == gzipMagic[1] {
		if data, err = gunzip(raw, lim.MaxReportBytes); err != nil {
			return nil, nil, err
		}
	}
	rep, err := decode(data, lim, policyDomain)
	if err != nil {
		return nil, nil, err
	}
	return rep, data, nil
}

// ParseBytes is ParseLimited for a report already in memory.
func ParseBytes(b []byte, lim Limits) (*Report, []byte, error) {
	return ParseLimited(bytes.NewReader(b), lim)
}

// IsReportData says whether data, the start of a file or body, is a bare
// report (gzip magic bytes, or a JSON object) rather than a mail message.
// Importers use it to sniff files: names and declared types are not
// trusted.
func IsReportData(data []byte) bool {
	if len(data) >= 2 && data[0] == gzipMagic[0] && data[1] == gzipMagic[1] {
		return true
	}
	data = bytes.TrimLeft(bytes.TrimPrefix(data, utf8BOM), " \t\r\n")
	return len(data) > 0 && data[0] == '{'
}

// gunzipInMemory is how much of a gzip report gunzip inflates straight
// into memory. Nearly every real report is smaller (the largest mailed
// ones are a few hundred KiB of JSON) and costs one pass. Past it, the
// rest is counted into nothing first, and only a stream that ends within
// the limit is inflated again into a buffer of the size counted: refusing
// a bomb then costs this much memory, not the limit, whatever the stream
// claims.
const gunzipInMemory = 128 << 10

// gunzip decompresses z, stopping with ErrTooLarge as soon as more than
// max bytes come out. Only the bytes actually produced count: the gzip
// trailer's size field (RFC 1952 §2.3.1, ISIZE) is written by the sender,
// comes last, and is ignored here (the inflater still checks it, with the
// CRC, at the end of a stream that fits). A bomb whose trailer claims a
// few bytes used to size the buffer from that claim and grow it to the
// limit: 25 of them at once took a server past 3.5 GB. klauspost/compress's
// gzip inflates about twice as fast as compress/gzip (BenchmarkGunzip,
// docs/bench-parse.md), which keeps the second pass of large reports cheap.
func gunzip(z []byte, max int64) ([]byte, error) {
	zr, err := newGzipReader(z)
	if err != nil {
		return nil, fmt.Errorf("%w: reading gzip header: %v", ErrMalformed, err)
	}
	defer putGzipReader(zr)
	tooLarge := func() error {
		return fmt.Errorf("%w: decompressed report exceeds %d bytes", ErrTooLarge, max)
	}
	malformed := func(err error) error {
		return fmt.Errorf("%w: decompressing report: %v", ErrMalformed, err)
	}
	probe := min(gunzipInMemory, max)
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(zr, probe+1))
	if err != nil {
		return nil, malformed(err)
	}
	if n <= probe {
		return buf.Bytes(), nil
	}
	if n > max {
		return nil, tooLarge()
	}
	// Longer than the probe: count the rest, keeping nothing.
	rest, err := io.Copy(io.Discard, io.LimitReader(zr, max+1-n))
	if n+rest > max {
		return nil, tooLarge()
	}
	if err != nil {
		return nil, malformed(err)
	}
	buf = bytes.Buffer{}
	if err := zr.Reset(bytes.NewReader(z)); err != nil {
		return nil, fmt.Errorf("%w: reading gzip header: %v", ErrMalformed, err)
	}
	data := make([]byte, n+rest)
	if _, err := io.ReadFull(zr, data); err != nil {
		return nil, malformed(err)
	}
	return data, nil
}

// gzipReaders keeps inflaters for reuse: a new one allocates about 40 KiB
// of window and tables, which was two thirds of the time to parse a 1 KiB
// gzip report (BenchmarkParse/gzip/1KiB: 67 µs and 43 KB allocated per
// report before, see docs/bench-parse.md). A pool, not state: a reader is
// Reset before every use.
var gzipReaders sync.Pool

// newGzipReader returns a reader from the pool, or a new one, reading z.
// The caller gives it back with putGzipReader when err is nil.
func newGzipReader(z []byte) (*gzip.Reader, error) {
	if zr, ok := gzipReaders.Get().(*gzip.Reader); ok {
		if err := zr.Reset(bytes.NewReader(z)); err != nil {
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(bytes.NewReader(z))
}

// putGzipReader returns zr to the pool, without the input it read: a
// pooled reader must not keep a 64 MiB report alive. Resetting it on no
// input fails (no gzip header), as expected.
func putGzipReader(zr *gzip.Reader) {
	_ = zr.Reset(bytes.NewReader(nil))
	gzipReaders.Put(zr)
}

// lenHint returns the bytes left in r when r knows (in-memory readers),
// else -1.
func lenHint(r io.Reader) int64 {
	if l, ok := r.(interface{ Len() int }); ok {
		return int64(l.Len())
	}
	return -1
}

// readAtMost reads all of r, or fails with ErrTooLarge when r has more than
// max bytes. hint, when not negative, is the expected size: the buffer is
// allocated once. An in-memory reader holding more than max fails at once.
func readAtMost(r io.Reader, max, hint int64) ([]byte, error) {
	if hint > max {
		return nil, fmt.Errorf("%w: report over %d bytes", ErrTooLarge, max)
	}
	var buf bytes.Buffer
	if hint >= 0 {
		// bytes.Buffer.ReadFrom wants bytes.MinRead free before each read;
		// without the margin it would double the buffer at the very end.
		buf.Grow(int(min(hint, max+1)) + bytes.MinRead)
	}
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, fmt.Errorf("%w: report over %d bytes", ErrTooLarge, max)
	}
	return buf.Bytes(), nil
}

// limitedReader is io.LimitReader that remembers it hit the limit, so that
// a message over its limit is told from a truncated one.
type limitedReader struct {
	r    io.Reader
	n    int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		l.over = true
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// decode checks the JSON nesting and decodes data into a Report.
func decode(data []byte, lim Limits, policyDomain string) (*Report, error) {
	data = bytes.TrimPrefix(data, utf8BOM)
	if err := checkJSONDepth(data, lim.MaxJSONDepth); err != nil {
		return nil, err
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrMalformed)
	}
	if trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object (starts with %q)", ErrMalformed, abbrev(trimmed[:min(len(trimmed), 16)]))
	}
	var w wireReport
	// encoding/json semantics where senders might rely on them: invalid
	// UTF-8 is replaced, duplicate names take the last value, names match
	// without regard to case (except inside failure-details, decoded by
	// hand: see detailList).
	if err := json.Unmarshal(data, &w, jsontext.AllowInvalidUTF8(true), jsontext.AllowDuplicateNames(true), json.MatchCaseInsensitiveNames(true)); err != nil {
		return nil, fmt.Errorf("%w: decoding json: %v", ErrMalformed, err)
	}
	return w.toReport(policyDomain, lim)
}

// checkJSONDepth refuses JSON nested deeper than max, with one cheap pass
// over the bytes before the decoder (whose own limit is 10000) sees them.
// It only tracks strings and brackets; syntax errors are left to the
// decoder. Strings, most of a report's bytes, are skipped with
// bytes.IndexByte.
func checkJSONDepth(data []byte, max int) error {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '"':
			// Find the closing quote: one not preceded by an odd number
			// of backslashes.
			for {
				j := bytes.IndexByte(data[i+1:], '"')
				if j < 0 {
					return nil // unterminated string: the decoder says so
				}
				i += 1 + j
				k := i - 1
				for k >= 0 && data[k] == '\\' {
					k--
				}
				if (i-1-k)%2 == 0 {
					break
				}
			}
		case '{', '[':
			depth++
			if depth > max {
				return fmt.Errorf("%w: json nested deeper than %d levels", ErrTooLarge, max)
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}
