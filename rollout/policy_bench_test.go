package rollout

import (
	"strings"
	"testing"
)

func BenchmarkParsePolicy(b *testing.B) {
	body := "version: STSv1\r\nmode: enforce\r\nmx: aspmx.l.google.com\r\nmx: *.aspmx.l.google.com\r\nmx: smtp.google.com\r\nmx: *.googlemail.com\r\nmax_age: 604800\r\n"
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePolicy(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParsePolicyLargest parses a policy of the largest size a fetch
// accepts (64 KiB, one mx line after another): the worst a hostile policy
// host can make the inspector do.
func BenchmarkParsePolicyLargest(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("version: STSv1\nmode: enforce\nmax_age: 604800\n")
	for sb.Len() < maxPolicySize-40 {
		sb.WriteString("mx: mx-0123456789.example.com\n")
	}
	body := sb.String()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePolicy(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRecord(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRecord("v=STSv1; id=20260701T120509Z;"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseTLSRPTRecord(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseTLSRPTRecord("v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://reports.example.com/v1/tlsrpt"); err != nil {
			b.Fatal(err)
		}
	}
}
