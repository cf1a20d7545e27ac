// Command genimport writes many small report files for the import
// benchmark of BENCHMARKS.md (target 3: "tlsrpt import" of 1,000,000 reports at
// 10,000 reports/s): .json.gz files as mailed by the big senders, each a
// daily report of one reporting organisation for one of -domains policy
// domains, on one of the -days days before -end, with an sts policy
// (two failure details) and a no-policy-found entry for a subdomain.
// Files go 1,000 to a directory.
//
//	go run ./ingest/internal/genimport -out /tmp/imp1m-files -n 1000000
package main

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/klauspost/compress/gzip"
)

// maxReports bounds -n.
const maxReports = 10_000_000

var orgs = [...]string{"Google Inc.", "Microsoft Corporation", "Yahoo", "comcast.net", "mail.ru", "Proton AG"}

var results = [...]string{"certificate-expired", "starttls-not-supported", "validation-failure", "certificate-host-mismatch"}

func main() {
	out := flag.String("out", "", "directory to write to (created)")
	n := flag.Int("n", 1_000_000, "reports to write")
	domains := flag.Int("domains", 1000, "policy domains")
	days := flag.Int("days", 365, "days the reports span")
	end := flag.String("end", time.Now().UTC().Format(time.DateOnly), "the day after the last report day")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	last, err := time.Parse(time.DateOnly, *end)
	if *out == "" || *n < 1 || *n > maxReports || *domains < 1 || *days < 1 || err != nil {
		fmt.Fprintf(os.Stderr, "usage: genimport -out DIR [-n 1..%d] [-domains N] [-days N] [-end YYYY-MM-DD]\n", maxReports)
		os.Exit(2)
	}
	if err := run(*out, *n, *domains, *days, last, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "genimport:", err)
		os.Exit(1)
	}
}

func run(dir string, n, domains, days int, end time.Time, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 8460))
	zw, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
	var js, zb bytes.Buffer
	var total int64
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("%04d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(sub, 0o755); err != nil {
				return fmt.Errorf("creating %s: %w", sub, err)
			}
		}
		org := orgs[i%len(orgs)]
		domain := fmt.Sprintf("d%04d.example", rng.IntN(domains))
		day := end.AddDate(0, 0, -1-rng.IntN(days))
		start := day.Format("2006-01-02T15:04:05Z")
		stop := day.Add(24*time.Hour - time.Second).Format("2006-01-02T15:04:05Z")
		js.Reset()
		fmt.Fprintf(&js, `{"organization-name":%q,"date-range":{"start-datetime":%q,"end-datetime":%q},`+
			`"contact-info":"smtp-tls-reporting@example.net","report-id":"%s_%s_%d",`+
			`"policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: testing","mx: mx1.%s","mx: mx2.%s","max_age: 86400"],`+
			`"policy-domain":%q,"mx-host":["mx1.%s","mx2.%s"]},"summary":{"total-successful-session-count":%d,"total-failure-session-count":%d},`+
			`"failure-details":[{"result-type":%q,"sending-mta-ip":"198.51.%d.%d","receiving-mx-hostname":"mx1.%s","receiving-ip":"192.0.2.%d","failed-session-count":%d},`+
			`{"result-type":%q,"sending-mta-ip":"2001:db8:%x::%x","receiving-mx-hostname":"mx2.%s","receiving-mx-helo":"mx2.%s","failed-session-count":%d,"additional-information":"https://example.net/tlsrpt/%d"}]},`+
			`{"policy":{"policy-type":"no-policy-found","policy-domain":"mail.%s"},"summary":{"total-successful-session-count":%d,"total-failure-session-count":0}}]}`,
			org, start, stop, start, domain, i,
			domain, domain, domain, domain, domain, 1000+rng.IntN(100000), 2+rng.IntN(20),
			results[rng.IntN(len(results))], rng.IntN(256), rng.IntN(256), domain, rng.IntN(256), 1+rng.IntN(10),
			results[rng.IntN(len(results))], rng.IntN(65536), rng.IntN(65536), domain, domain, 1+rng.IntN(10), i,
			domain, rng.IntN(1000))
		zb.Reset()
		zw.Reset(&zb)
		zw.Write(js.Bytes())
		if err := zw.Close(); err != nil {
			return fmt.Errorf("compressing: %w", err)
		}
		name := filepath.Join(sub, fmt.Sprintf("r%07d.json.gz", i))
		if err := os.WriteFile(name, zb.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", name, err)
		}
		total += int64(zb.Len())
	}
	fmt.Printf("%d reports, %d bytes of gzip in %s\n", n, total, dir)
	return nil
}
