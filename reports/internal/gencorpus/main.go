// Command gencorpus writes a realistic corpus of SMTP TLS reports for
// benchmarks (BENCHMARKS.md target 1): every sender shape of package synth at
// sizes from 1 KiB to 20 MiB of JSON, gzip-compressed as senders mail
// them, optionally wrapped in report mails.
//
//	go run ./reports/internal/gencorpus -out /tmp/corpus [-n 1] [-mail] [-max 20MiB]
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/tlsrpt/tlsrpt/reports/internal/synth"
)

// sizes are the JSON sizes generated, 1 KiB to 20 MiB (the largest real
// reports come from big receivers of Google and Microsoft).
var sizes = [...]int{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 20 << 20}

func main() {
	out := flag.String("out", "", "directory to write to (created)")
	n := flag.Int("n", 1, "reports per sender shape and size")
	mail := flag.Bool("mail", false, "wrap each report in a report mail (.eml) instead of .json.gz")
	maxSize := flag.Int("max", 20<<20, "largest JSON size in bytes")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" || *n < 1 || *n > 1000 {
		fmt.Fprintln(os.Stderr, "usage: gencorpus -out DIR [-n 1..1000] [-mail] [-max BYTES] [-seed N]")
		os.Exit(2)
	}
	if err := run(*out, *n, *mail, *maxSize, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "gencorpus:", err)
		os.Exit(1)
	}
}

func run(dir string, n int, mail bool, maxSize int, seed uint64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	rng := rand.New(rand.NewPCG(seed, 8460))
	var files, total int
	for _, s := range synth.Senders {
		for _, size := range sizes {
			if size > maxSize {
				continue
			}
			for i := range n {
				js := synth.Report(rng, s, size)
				var zb bytes.Buffer
				zw := gzip.NewWriter(&zb)
				zw.Write(js)
				if err := zw.Close(); err != nil {
					return fmt.Errorf("compressing: %w", err)
				}
				name := fmt.Sprintf("%s-%08d-%03d.json.gz", s, size, i)
				data := zb.Bytes()
				if mail {
					name = fmt.Sprintf("%s-%08d-%03d.eml", s, size, i)
					data = wrapMail(s, name, data)
				}
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
					return fmt.Errorf("writing %s: %w", name, err)
				}
				files++
				total += len(js)
			}
		}
	}
	fmt.Printf("wrote %d files, %d bytes of JSON, to %s\n", files, total, dir)
	return nil
}

// wrapMail builds an RFC 8460 §5.3 report mail around a gzip report.
func wrapMail(s synth.Sender, name string, zipped []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: tlsrpt@%s.example\r\nTo: tlsrpt@example.com\r\nSubject: Report Domain: example.com Submitter: %s.example Report-ID: <%s>\r\n", s, s, name)
	fmt.Fprintf(&b, "Date: Mon, 03 Mar 2025 06:00:00 +0000\r\nMessage-ID: <%s@%s.example>\r\nTLS-Report-Domain: example.com\r\nTLS-Report-Submitter: %s.example\r\n", name, s, s)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"=b=\"\r\n\r\n")
	b.WriteString("--=b=\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report.\r\n")
	fmt.Fprintf(&b, "--=b=\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"%s.json.gz\"\r\n\r\n", name)
	enc := base64.StdEncoding.EncodeToString(zipped)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--=b=--\r\n")
	return b.Bytes()
}
