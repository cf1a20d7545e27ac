package db_test

import (
	"strings"
	"testing"

	"github.com/tlsrpt/tlsrpt/db"
)

// FuzzNormalizeDomain checks that a normalised name is stable, lower case,
// ASCII, and without a trailing dot.
func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM.", "bücher.example", "xn--bcher-kva.example", "a..b", "", "мта.рф", "_smtp._tls.example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := db.NormalizeDomain(s)
		if err != nil {
			return
		}
		if n != strings.ToLower(n) || strings.HasSuffix(n, ".") || len(n) > 253 {
			t.Fatalf("NormalizeDomain(%q) = %q", s, n)
		}
		for _, r := range n {
			if r > 0x7f {
				t.Fatalf("NormalizeDomain(%q) = %q, not ASCII", s, n)
			}
		}
		if again, err := db.NormalizeDomain(n); err != nil || again != n {
			t.Fatalf("NormalizeDomain(%q) = %q, %v; want it stable (%q)", n, again, err, s)
		}
	})
}
