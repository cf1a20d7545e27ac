package reports_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	jsonv2 "github.com/go-json-experiment/json"
	kgzip "github.com/klauspost/compress/gzip"
	"github.com/tlsrpt/tlsrpt/reports"
	"github.com/tlsrpt/tlsrpt/reports/internal/synth"
)

func gzipBytes(b testing.TB, data []byte) []byte {
	b.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// mailOf wraps a gzip report into a Google-shaped report mail.
func mailOf(zipped []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(zipped)
	var body strings.Builder
	for len(enc) > 76 {
		body.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	body.WriteString(enc + "\r\n")
	return []byte("From: noreply-smtp-tls-reporting@google.com\r\nSubject: Report Domain: example.com Submitter: google.com Report-ID: <x>\r\n" +
		"TLS-Report-Domain: example.com\r\nTLS-Report-Submitter: google.com\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report from google.com\r\n" +
		"--b\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"google.com!example.com!1!2!001.json.gz\"\r\n\r\n" +
		body.String() + "--b--\r\n")
}

var benchSizes = []int{1 << 10, 64 << 10, 4 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

// BenchmarkParse measures parse throughput of Google-shaped reports. MB/s
// counts the decompressed JSON bytes in every variant, so the figures
// compare; reports/s is the other unit of BENCHMARKS.md.
func BenchmarkParse(b *testing.B) {
	for _, size := range benchSizes {
		js := synth.Report(rand.New(rand.NewPCG(1, uint64(size))), synth.Google, size)
		zipped := gzipBytes(b, js)
		mail := mailOf(zipped)
		for _, v := range []struct {
			name string
			in   []byte
			mail bool
		}{{"json", js, false}, {"gzip", zipped, false}, {"mail", mail, true}} {
			b.Run(v.name+"/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(len(js)))
				b.ReportAllocs()
				for b.Loop() {
					if v.mail {
						m, err := reports.ReadMessage(bytes.NewReader(v.in), reports.DefaultLimits())
						if err != nil || len(m.Reports()) != 1 {
							b.Fatalf("ReadMessage() error %v", err)
						}
					} else if _, err := reports.Parse(bytes.NewReader(v.in)); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
			})
		}
	}
}

// Plain structs for the floor: RFC 8460 decoded with no checks and no
// tolerance (BENCHMARKS.md target 1).
type floorReport struct {
	OrganizationName string `json:"organization-name"`
	DateRange        struct {
		Start string `json:"start-datetime"`
		End   string `json:"end-datetime"`
	} `json:"date-range"`
	ContactInfo *string `json:"contact-info"`
	ReportID    string  `json:"report-id"`
	Policies    []struct {
		Policy struct {
			Type    string   `json:"policy-type"`
			Strings []string `json:"policy-string"`
			Domain  string   `json:"policy-domain"`
			MXHosts any      `json:"mx-host"`
		} `json:"policy"`
		Summary struct {
			OK   int64 `json:"total-successful-session-count"`
			Fail int64 `json:"total-failure-session-count"`
		} `json:"summary"`
		FailureDetails []struct {
			ResultType          string `json:"result-type"`
			SendingMTAIP        string `json:"sending-mta-ip"`
			ReceivingMXHostname string `json:"receiving-mx-hostname"`
			ReceivingMXHelo     string `json:"receiving-mx-helo"`
			ReceivingIP         string `json:"receiving-ip"`
			FailedSessionCount  int64  `json:"failed-session-count"`
			AdditionalInfo      string `json:"additional-information"`
			FailureReasonCode   string `json:"failure-reason-code"`
		} `json:"failure-details"`
	} `json:"policies"`
}

func floorParse(zipped []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		return err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	var r floorReport
	return json.Unmarshal(data, &r)
}

// floorParseFast is the floor with the faster building blocks tlsrpt
// itself uses (klauspost gzip, go-json-experiment/json), so that the
// comparison is not flattered by a slow floor.
func floorParseFast(zipped []byte) error {
	zr, err := kgzip.NewReader(bytes.NewReader(zipped))
	if err != nil {
		return err
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return err
	}
	var r floorReport
	return jsonv2.Unmarshal(data, &r)
}

// mixCorpus is the corpus of BENCHMARKS.md target 1: every sender shape at
// sizes from 1 KiB to 20 MiB, gzipped as mailed.
func mixCorpus(b *testing.B) (zipped [][]byte, jsonBytes int64) {
	rng := rand.New(rand.NewPCG(8, 1))
	for _, s := range synth.Senders {
		for _, size := range []int{1 << 10, 16 << 10, 256 << 10, 4 << 20, 20 << 20} {
			js := synth.Report(rng, s, size)
			jsonBytes += int64(len(js))
			zipped = append(zipped, gzipBytes(b, js))
		}
	}
	return zipped, jsonBytes
}

// BenchmarkCorpusMix parses the mixed corpus with tlsrpt and with the floor
// (gunzip and decoding into plain structs, no checks) in the same run:
// the floor with the standard library, and with the faster libraries.
func BenchmarkCorpusMix(b *testing.B) {
	zipped, total := mixCorpus(b)
	b.Run("tlsrpt", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			for _, z := range zipped {
				if _, err := reports.Parse(bytes.NewReader(z)); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N*len(zipped))/b.Elapsed().Seconds(), "reports/s")
	})
	for _, floor := range []struct {
		name  string
		parse func([]byte) error
	}{{"floor-stdlib", floorParse}, {"floor-fast", floorParseFast}} {
		b.Run(floor.name, func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				for _, z := range zipped {
					if err := floor.parse(z); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.N*len(zipped))/b.Elapsed().Seconds(), "reports/s")
		})
	}
}

// BenchmarkGzipBomb shows what a 1 GiB gzip bomb (about 1 MiB compressed)
// costs against the default 64 MiB report limit: time and memory per
// refusal.
func BenchmarkGzipBomb(b *testing.B) {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write([]byte("{"))
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for range 1024 {
		zw.Write(chunk)
	}
	zw.Close()
	bomb := buf.Bytes()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reports.Parse(bytes.NewReader(bomb)); !errors.Is(err, reports.ErrTooLarge) {
			b.Fatalf("Parse(bomb) error %v, want ErrTooLarge", err)
		}
	}
}

// BenchmarkGunzip compares the gzip readers tried for the parse target on a
// 4 MiB report (MB/s of decompressed output).
func BenchmarkGunzip(b *testing.B) {
	js := synth.Report(rand.New(rand.NewPCG(3, 4)), synth.Google, 4<<20)
	zipped := gzipBytes(b, js)
	buf := make([]byte, 0, len(js)+bytes.MinRead)
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			zr, err := gzip.NewReader(bytes.NewReader(zipped))
			if err != nil {
				b.Fatal(err)
			}
			w := bytes.NewBuffer(buf[:0])
			if _, err := w.ReadFrom(zr); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("klauspost", func(b *testing.B) {
		b.SetBytes(int64(len(js)))
		for b.Loop() {
			zr, err := kgzip.NewReader(bytes.NewReader(zipped))
			if err != nil {
				b.Fatal(err)
			}
			w := bytes.NewBuffer(buf[:0])
			if _, err := w.ReadFrom(zr); err != nil {
				b.Fatal(err)
			}
		}
	})
}
