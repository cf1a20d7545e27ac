package rollout

import (
	"errors"
	"strings"
	"testing"
)

func TestValidMXPattern(t *testing.T) {
	good := []string{"mx.example.com", "*.example.com", "MX1.Example.COM", "a-b.example", "localhost",
		"*.mail.protection.outlook.com", "1mx.example.com", "xn--bcher-kva.example", strings.Repeat("a", 63) + ".example"}
	for _, p := range good {
		if err := ValidMXPattern(p); err != nil {
			t.Errorf("ValidMXPattern(%q) = %v, want nil", p, err)
		}
	}
	bad := []string{"", "*", "*.", "**.example.com", "mx.*.example.com", "*mx.example.com", "*.*.example.com",
		"192.0.2.1", "*.192.0.2.1", "[2001:db8::1]", "2001:db8::1", "mx.example.com:25", "mx..example.com",
		".example.com", "mx.example.com.", "-mx.example.com", "mx-.example.com", "mx_1.example.com", "mx example.com",
		"bücher.example", strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "com"}
	for _, p := range bad {
		err := ValidMXPattern(p)
		if err == nil {
			t.Errorf("ValidMXPattern(%q) = nil, want an error", p)
		} else if !errors.Is(err, ErrInvalidMX) {
			t.Errorf("ValidMXPattern(%q) = %v, want ErrInvalidMX", p, err)
		}
	}
}

func TestMatchMX(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mx.example.com", "mx.example.com", true},
		{"mx.example.com", "MX.Example.Com.", true},
		{"MX.example.com.", "mx.example.com", true},
		{"mx.example.com", "mx2.example.com", false},
		{"*.example.com", "mx1.example.com", true},
		{"*.example.com", "MX1.EXAMPLE.COM.", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.b.example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "mx1.example.com.evil", false},
		{"*.example.com", "mx1.notexample.com", false},
		{"*.example.com", "*.example.com", false},
		{"example.com", "mx.example.com", false},
		{"", "", false},
		{"*.aspmx.l.google.com", "alt1.aspmx.l.google.com", true},
		{"*.aspmx.l.google.com", "aspmx.l.google.com", false},
	}
	for _, tt := range tests {
		if got := MatchMX(tt.pattern, tt.host); got != tt.want {
			t.Errorf("MatchMX(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Example.COM.", "example.com"},
		{" example.com ", "example.com"},
		{"mail.example.co.uk", "mail.example.co.uk"},
	}
	for _, tt := range tests {
		got, err := NormalizeDomain(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("NormalizeDomain(%q) = %q, %v, want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"", "com", "*.example.com", "127.0.0.1", "exa mple.com", "example..com", "http://example.com"} {
		if got, err := NormalizeDomain(in); err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want an error", in, got)
		}
	}
}
