// Package peerbench compares tlsrpt's report parser with the best Go peer,
// the tlsrpt package of mox (github.com/mjl-/mox), on the same realistic
// corpus (BENCHMARKS.md, target 1). It is a module of its own so that mox and
// its dependencies stay out of tlsrpt's go.mod:
//
//	cd reports/internal/peerbench && go test -bench . -count 5
package peerbench

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	moxtlsrpt "github.com/mjl-/mox/tlsrpt"

	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/reports/internal/synth"
)

// sizes are the JSON sizes of the corpus: 1 KiB to 16 MiB. tlsrpt's
// other benchmarks go to 20 MiB; mox refuses a report over 20 MB
// (20 * 2^20 bytes), so the comparison stops below that.
var sizes = []int{1 << 10, 16 << 10, 256 << 10, 4 << 20, 16 << 20}

type item struct {
	name       string
	json, gz   []byte
	mail       []byte
	size       int // the size asked of synth
	policies   int
	jsonLength int64
}

// corpus is every sender shape of package synth at every size, gzipped
// as mailed, and wrapped in a report mail.
func corpus(b *testing.B) []item {
	rng := rand.New(rand.NewPCG(8, 1))
	var items []item
	for _, s := range synth.Senders {
		for _, size := range sizes {
			js := synth.Report(rng, s, size)
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(js)
			zw.Close()
			it := item{name: fmt.Sprintf("%s-%d", s, size), size: size, json: js, gz: z.Bytes(), jsonLength: int64(len(js))}
			it.mail = mail(it.gz)
			rep, err := reports.Parse(bytes.NewReader(it.gz))
			if err != nil {
				b.Fatalf("%s: tlsrpt: %v", it.name, err)
			}
			it.policies = len(rep.Policies)
			items = append(items, it)
		}
	}
	return items
}

// mail wraps a gzipped report in an RFC 8460 §5.3 report mail.
func mail(gz []byte) []byte {
	var b strings.Builder
	b.WriteString("From: reports@sender.example\r\nTo: tlsrpt@example.com\r\nSubject: Report Domain: example.com Submitter: sender.example\r\n" +
		"Date: Thu, 02 May 2024 06:12:00 +0000\r\nMessage-ID: <1@sender.example>\r\nTLS-Report-Domain: example.com\r\nTLS-Report-Submitter: sender.example\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report.\r\n" +
		"--b1\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"sender.example!example.com!1714521600!1714607999.json.gz\"\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b1--\r\n")
	return []byte(b.String())
}

// moxGzip is mox's path for an application/tlsrpt+gzip part.
func moxGzip(gz []byte) (*moxtlsrpt.ReportJSON, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	return moxtlsrpt.Parse(zr)
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func BenchmarkPeer(b *testing.B) {
	items := corpus(b)
	// Both parsers read every report of the corpus, with the same number
	// of policies: the benchmark compares equal work.
	for _, it := range items {
		for _, parse := range []func() (*moxtlsrpt.ReportJSON, error){
			func() (*moxtlsrpt.ReportJSON, error) { return moxGzip(it.gz) },
			func() (*moxtlsrpt.ReportJSON, error) { return moxtlsrpt.ParseMessage(quiet, bytes.NewReader(it.mail)) },
		} {
			r, err := parse()
			if err != nil {
				b.Fatalf("%s: mox: %v", it.name, err)
			}
			if len(r.Policies) != it.policies {
				b.Fatalf("%s: mox read %d policies, tlsrpt %d", it.name, len(r.Policies), it.policies)
			}
		}
	}
	run := func(name string, items []item, parse func(it item) error) {
		var total int64
		for _, it := range items {
			total += it.jsonLength
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(total)
			b.ReportAllocs()
			for b.Loop() {
				for _, it := range items {
					if err := parse(it); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*len(items))/b.Elapsed().Seconds(), "reports/s")
		})
	}
	parsers := []struct {
		name  string
		parse func(it item) error
	}{
		{"gzip/tlsrpt", func(it item) error {
			_, err := reports.Parse(bytes.NewReader(it.gz))
			return err
		}},
		{"gzip/mox", func(it item) error {
			_, err := moxGzip(it.gz)
			return err
		}},
		{"mail/tlsrpt", func(it item) error {
			m, err := reports.ReadMessage(bytes.NewReader(it.mail), reports.DefaultLimits())
			if err == nil && len(m.Reports()) != 1 {
				err = fmt.Errorf("%d reports", len(m.Reports()))
			}
			return err
		}},
		{"mail/mox", func(it item) error {
			_, err := moxtlsrpt.ParseMessage(quiet, bytes.NewReader(it.mail))
			return err
		}},
	}
	// The whole corpus (dominated by the large reports), then each size
	// (small reports show the fixed costs).
	for _, p := range parsers {
		run("all/"+p.name, items, p.parse)
	}
	for _, size := range sizes {
		var some []item
		for _, it := range items {
			if it.size == size {
				some = append(some, it)
			}
		}
		for _, p := range parsers {
			run(fmt.Sprintf("%dKiB/%s", size>>10, p.name), some, p.parse)
		}
	}
}
