package torture

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/tlsrpt/tlsrpt/reports"
)

// MaxInput bounds a generated input (before compression): mutations never
// grow a seed past it, so a run's memory is the parser's, not the
// generator's. Zip bombs are small compressed and expand far past it.
const MaxInput = 4 << 20

// Kind names a mutation.
type Kind string

// The mutations. Each one is something real senders, broken relays or
// attackers send.
const (
	BitFlip      Kind = "bit-flip"      // 1-16 random bits flipped
	Truncate     Kind = "truncate"      // cut at a random byte
	TypeSwap     Kind = "type-swap"     // a JSON value replaced by one of another type
	HugeNumber   Kind = "huge-number"   // a number replaced by 1e400, 2^64, -1, 400 digits...
	DeepNesting  Kind = "deep-nesting"  // [[[[... or {"a":{"a":... up to 200,000 deep
	InvalidUTF8  Kind = "invalid-utf8"  // 0xff, overlong forms, lone surrogates, NUL in strings
	ZipBomb      Kind = "zip-bomb"      // gzip expanding to 96 MiB, or gzip in gzip
	HeaderInject Kind = "header-inject" // CR/LF in header values, huge headers, MIME bombs
	Hostile      Kind = "hostile"       // script tags, javascript: URLs, CRLF in report strings
	Splice       Kind = "splice"        // the head of one seed, the tail of another
	Dropped      Kind = "drop-field"    // a required member removed
	Unchanged    Kind = "unchanged"     // the seed itself: must still parse
)

// Kinds lists every mutation, for tables of figures.
var Kinds = []Kind{BitFlip, Truncate, TypeSwap, HugeNumber, DeepNesting, InvalidUTF8, ZipBomb, HeaderInject, Hostile, Splice, Dropped, Unchanged}

// Corpus is the real material mutations start from.
type Corpus struct {
	Reports [][]byte // report JSON, decompressed
	Mails   [][]byte // whole RFC 5322 messages
	Names   []string // files read, for the log
}

// LoadCorpus reads every sample under dirs: .json and .gz as reports,
// .eml as mails (and the reports inside them as reports too). Directories
// that do not exist are skipped; a corpus with no report is an error.
func LoadCorpus(dirs ...string) (*Corpus, error) {
	c := &Corpus{}
	for _, dir := range dirs {
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("reading corpus: %w", err)
			}
			switch {
			case strings.HasSuffix(path, ".eml"):
				c.Mails = append(c.Mails, data)
				if m, err := reports.ReadMessage(bytes.NewReader(data), reports.Limits{}); err == nil {
					for _, a := range m.Attachments {
						if a.Report != nil {
							c.Reports = append(c.Reports, a.JSON)
						}
					}
				}
			case strings.HasSuffix(path, ".json"), strings.HasSuffix(path, ".gz"):
				if _, js, err := reports.ParseBytes(data, reports.Limits{}); err == nil {
					c.Reports = append(c.Reports, js)
				} else {
					// Broken samples are seeds too: they are what the
					// refusal paths see.
					c.Reports = append(c.Reports, data)
				}
			default:
				return nil
			}
			c.Names = append(c.Names, path)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(c.Reports) == 0 {
		return nil, fmt.Errorf("loading corpus from %v: no report found", dirs)
	}
	return c, nil
}

// Input is one generated input.
type Input struct {
	Kind Kind
	Data []byte
}

// Mutator generates inputs from a corpus, deterministically for a seed.
// It is not safe for concurrent use.
type Mutator struct {
	c   *Corpus
	rng *rand.Rand
}

// NewMutator returns a mutator of c seeded with seed.
func NewMutator(c *Corpus, seed uint64) *Mutator {
	return &Mutator{c: c, rng: rand.New(rand.NewPCG(seed, 0x7157))}
}

// Report returns a mutated report body, JSON or gzip as a sender would POST
// it or attach it.
func (m *Mutator) Report() Input {
	k := Kinds[m.rng.IntN(len(Kinds))]
	// A bomb costs a thousand times the time of another input (inflating
	// 64 MiB); one in about a hundred inputs keeps runs short and still
	// sends thousands in a long run.
	for k == HeaderInject || k == ZipBomb && m.rng.IntN(8) != 0 {
		k = Kinds[m.rng.IntN(len(Kinds))]
	}
	return m.report(k)
}

func (m *Mutator) report(k Kind) Input {
	src := m.c.Reports[m.rng.IntN(len(m.c.Reports))]
	var out []byte
	switch k {
	case BitFlip:
		out = m.bitFlip(m.maybeGzip(src))
		return Input{k, out}
	case Truncate:
		b := m.maybeGzip(src)
		return Input{k, b[:m.rng.IntN(len(b)+1)]}
	case ZipBomb:
		return Input{k, m.bomb()}
	case TypeSwap:
		out = m.jsonEdit(src, m.typeSwap)
	case HugeNumber:
		out = m.jsonEdit(src, m.hugeNumber)
	case DeepNesting:
		out = m.deepNest(src)
	case InvalidUTF8:
		out = m.badUTF8(src)
	case Hostile:
		out = m.jsonEdit(src, m.hostile)
	case Splice:
		other := m.c.Reports[m.rng.IntN(len(m.c.Reports))]
		out = append(append([]byte{}, src[:m.rng.IntN(len(src)+1)]...), other[m.rng.IntN(len(other)+1):]...)
	case Dropped:
		out = m.jsonEdit(src, m.drop)
	default:
		out = src
	}
	return Input{k, m.maybeGzip(out)}
}

// Mail returns a mutated mail message: a real one mangled, or a fresh
// report mail around a mutated report.
func (m *Mutator) Mail() Input {
	if len(m.c.Mails) > 0 && m.rng.IntN(2) == 0 {
		src := m.c.Mails[m.rng.IntN(len(m.c.Mails))]
		switch m.rng.IntN(5) {
		case 0:
			return Input{BitFlip, m.bitFlip(src)}
		case 1:
			return Input{Truncate, src[:m.rng.IntN(len(src)+1)]}
		case 2, 3:
			return Input{HeaderInject, m.headerInject(src)}
		default:
			return Input{Unchanged, src}
		}
	}
	in := m.Report()
	return Input{in.Kind, m.wrap(in.Data)}
}

func (m *Mutator) maybeGzip(b []byte) []byte {
	if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
		return b
	}
	if m.rng.IntN(3) == 0 {
		return gz(b)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func (m *Mutator) bitFlip(src []byte) []byte {
	b := bytes.Clone(src)
	if len(b) == 0 {
		return b
	}
	for range 1 + m.rng.IntN(16) {
		b[m.rng.IntN(len(b))] ^= 1 << m.rng.IntN(8)
	}
	return b
}

// jsonEdit decodes src, lets edit change one random node, and encodes it
// again; src that is not JSON comes back unchanged.
func (m *Mutator) jsonEdit(src []byte, edit func(v any) any) []byte {
	d := json.NewDecoder(bytes.NewReader(src))
	d.UseNumber()
	var v any
	if d.Decode(&v) != nil {
		return src
	}
	// Walk to a random node: a few random steps down from the root.
	v = m.walkEdit(v, edit, 1+m.rng.IntN(6))
	out, err := json.Marshal(v)
	if err != nil || len(out) > MaxInput {
		return src
	}
	return out
}

func (m *Mutator) walkEdit(v any, edit func(any) any, steps int) any {
	if steps == 0 {
		return edit(v)
	}
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			return edit(v)
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// Map order is random; sort for a deterministic choice.
		slices.Sort(keys)
		k := keys[m.rng.IntN(len(keys))]
		x[k] = m.walkEdit(x[k], edit, steps-1)
		return x
	case []any:
		if len(x) == 0 {
			return edit(v)
		}
		i := m.rng.IntN(len(x))
		x[i] = m.walkEdit(x[i], edit, steps-1)
		return x
	default:
		return edit(v)
	}
}

func (m *Mutator) typeSwap(v any) any {
	choices := []any{nil, true, json.Number("0"), json.Number("-7"), "", "1", []any{}, map[string]any{}, []any{"x", json.Number("1")}, map[string]any{"a": nil}}
	for {
		c := choices[m.rng.IntN(len(choices))]
		if fmt.Sprintf("%T", c) != fmt.Sprintf("%T", v) {
			return c
		}
	}
}

// hugeNumbers are numbers that overflow, underflow or are not counts.
var hugeNumbers = []json.Number{"1e400", "-1e400", "1e-400", "18446744073709551616", "9223372036854775808",
	"9223372036854775807", "-9223372036854775808", "-1", "0.5", "-0", "4294967296", "2147483648",
	json.Number("1" + strings.Repeat("0", 400)), "123456789012345678901234567890e12345"}

func (m *Mutator) hugeNumber(v any) any {
	return hugeNumbers[m.rng.IntN(len(hugeNumbers))]
}

// hostileStrings are what an attacker puts in a report to reach an
// operator's browser or a log: markup, script URLs, header injection.
var hostileStrings = []string{
	`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, `javascript:alert(1)`,
	"evil.example\r\nSet-Cookie: s=1", "x\nlevel=ERROR msg=forged", `{{.}}`, "\u202eexample.com",
	`' OR '1'='1`, "a\x00b", `</textarea><svg onload=alert(1)>`, strings.Repeat("A", 70000),
}

func (m *Mutator) hostile(v any) any {
	s := hostileStrings[m.rng.IntN(len(hostileStrings))]
	if old, ok := v.(string); ok && m.rng.IntN(2) == 0 {
		return old + s
	}
	return s
}

func (m *Mutator) drop(v any) any {
	if x, ok := v.(map[string]any); ok && len(x) > 0 {
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		delete(x, keys[m.rng.IntN(len(keys))])
	}
	return v
}

// deepNest puts a deeply nested value where a random value starts (after
// a colon) or around the whole report.
func (m *Mutator) deepNest(src []byte) []byte {
	depth := []int{33, 100, 1000, 10000, 200000}[m.rng.IntN(5)]
	open, closing := "[", "]"
	if m.rng.IntN(2) == 0 {
		open, closing = `{"a":`, "}"
	}
	nest := strings.Repeat(open, depth) + "1" + strings.Repeat(closing, depth)
	if m.rng.IntN(4) == 0 {
		nest = strings.Repeat(open, depth) // never closed
	}
	colons := indexAll(src, ':')
	if len(colons) == 0 || m.rng.IntN(3) == 0 {
		return []byte(nest)
	}
	at := colons[m.rng.IntN(len(colons))] + 1
	// Replace the value up to the next , or } with the nest.
	end := at
	for end < len(src) && src[end] != ',' && src[end] != '}' && src[end] != ']' {
		end++
	}
	return joinBytes(src[:at], []byte(nest), src[end:])
}

// badBytes are byte sequences that are not valid UTF-8 or not valid in
// JSON strings.
var badBytes = [][]byte{{0xff}, {0xfe, 0xff}, {0xc0, 0xaf}, {0xed, 0xa0, 0x80}, {0xf8, 0x88, 0x80, 0x80, 0x80},
	{0x00}, []byte(`\ud800`), []byte(`\udfff\ud800`), {0xe2, 0x82}, []byte(`\u0000`), {0x1b, '[', '2', 'J'}}

func (m *Mutator) badUTF8(src []byte) []byte {
	quotes := indexAll(src, '"')
	at := 0
	if len(quotes) > 0 {
		at = quotes[m.rng.IntN(len(quotes))] + 1
		if at > len(src) {
			at = len(src)
		}
	}
	return joinBytes(src[:at], badBytes[m.rng.IntN(len(badBytes))], src[at:])
}

// The zip bombs are built once per process: building one costs a second.
var (
	bombsOnce sync.Once
	bombs     [][]byte
)

// Bombs returns the zip bombs: 96 MiB of spaces after a report's opening
// brace, a report with a 96 MiB string, and a gzip inside a gzip. Each
// is a few hundred KiB compressed.
func Bombs() [][]byte {
	bombsOnce.Do(func() {
		const size = 96 << 20
		spaces := func(w *gzip.Writer) {
			chunk := bytes.Repeat([]byte{' '}, 1<<20)
			for range size >> 20 {
				w.Write(chunk)
			}
		}
		build := func(fill func(w *gzip.Writer)) []byte {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			fill(zw)
			zw.Close()
			return buf.Bytes()
		}
		b1 := build(func(w *gzip.Writer) { w.Write([]byte("{")); spaces(w) })
		b2 := build(func(w *gzip.Writer) {
			w.Write([]byte(`{"organization-name":"`))
			chunk := bytes.Repeat([]byte{'a'}, 1<<20)
			for range size >> 20 {
				w.Write(chunk)
			}
			w.Write([]byte(`"}`))
		})
		b3 := build(func(w *gzip.Writer) { w.Write(b1) })
		bombs = [][]byte{b1, b2, b3}
	})
	return bombs
}

func (m *Mutator) bomb() []byte {
	b := Bombs()
	return b[m.rng.IntN(len(b))]
}

// headerInjections are header lines a hostile or broken sender writes.
var headerInjections = []string{
	"Subject: report\r\nBcc: victim@example.org",
	"TLS-Report-Domain: <script>alert(1)</script>",
	"TLS-Report-Submitter: evil.example\r\n\r\n{\"x\":1}",
	"From: \"a\r\nX-Injected: 1\" <a@example.org>",
	"Content-Type: multipart/mixed; boundary=\"\"",
	"Content-Type: multipart/report; boundary=" + strings.Repeat("b", 5000),
	"Content-Transfer-Encoding: x-unknown",
	"Subject: =?x-unknown?B?" + base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}) + "?=",
	"Subject: =?utf-8?Q?" + strings.Repeat("=FF", 2000) + "?=",
	"X-Long: " + strings.Repeat("a", 200000),
	"X-Folded:" + strings.Repeat("\r\n x", 20000),
	"Message-ID: <" + strings.Repeat("<", 1000) + ">",
	"Date: Mon, 99 Foo 99999 99:99:99 +9999",
	"Bare\nLF: header",
	"\x00: nul",
}

// headerInject adds one hostile header line to the header block of src,
// or replaces the body with a MIME bomb.
func (m *Mutator) headerInject(src []byte) []byte {
	if m.rng.IntN(4) == 0 {
		return m.mimeBomb()
	}
	h := headerInjections[m.rng.IntN(len(headerInjections))]
	return joinBytes([]byte(h+"\r\n"), src)
}

// mimeBomb is a message of deeply nested or very many MIME parts.
func (m *Mutator) mimeBomb() []byte {
	var b strings.Builder
	b.WriteString("From: bomb@example.org\r\nSubject: bomb\r\nMIME-Version: 1.0\r\n")
	if m.rng.IntN(2) == 0 {
		depth := 50 + m.rng.IntN(2000)
		for i := range depth {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
		}
		b.WriteString("Content-Type: application/tlsrpt+json\r\n\r\n{}\r\n")
		return []byte(b.String())
	}
	parts := 200 + m.rng.IntN(20000)
	b.WriteString("Content-Type: multipart/mixed; boundary=z\r\n\r\n")
	for range parts {
		b.WriteString("--z\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n")
	}
	b.WriteString("--z--\r\n")
	return []byte(b.String())
}

// wrap puts a report body into a report mail the way senders do: gzip or
// JSON, base64 or not, in multipart/report.
func (m *Mutator) wrap(body []byte) []byte {
	ctype := []string{"application/tlsrpt+gzip", "application/tlsrpt+json", "application/gzip", "application/octet-stream"}[m.rng.IntN(4)]
	var b bytes.Buffer
	b.WriteString("From: TLS Reports <noreply-smtp-tls-reporting@sender.example>\r\n")
	b.WriteString("To: rua@example.net\r\nSubject: Report Domain: example.net\r\n")
	fmt.Fprintf(&b, "Message-ID: <%d@sender.example>\r\n", m.rng.Uint64())
	b.WriteString("Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nTLS-Report-Domain: example.net\r\nTLS-Report-Submitter: sender.example\r\n")
	b.WriteString("Content-Type: multipart/report; report-type=tlsrpt; boundary=\"BOUNDARY\"\r\n\r\n")
	b.WriteString("--BOUNDARY\r\nContent-Type: text/plain\r\n\r\nThis is a TLS report.\r\n")
	fmt.Fprintf(&b, "--BOUNDARY\r\nContent-Type: %s\r\nContent-Disposition: attachment; filename=\"report.json.gz\"\r\n", ctype)
	if m.rng.IntN(5) == 0 {
		b.WriteString("\r\n")
		b.Write(body)
		b.WriteString("\r\n")
	} else {
		b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
		enc := base64.StdEncoding.EncodeToString(body)
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		b.WriteString(enc + "\r\n")
	}
	b.WriteString("--BOUNDARY--\r\n")
	return b.Bytes()
}

func indexAll(b []byte, c byte) []int {
	var out []int
	for i, x := range b {
		if x == c {
			out = append(out, i)
		}
	}
	return out
}

func joinBytes(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
