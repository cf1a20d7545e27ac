package rollout

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 5, 9, 0, time.UTC)
	g, warn, err := Generate(GenerateOptions{Domain: "Example.COM.", Mode: ModeEnforce, MX: []string{"MX1.example.com.", "*.example.net", "mx1.example.com"}, Now: now})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	want := Generated{
		Policy:      "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
		ID:          "20260701T120509Z",
		RecordName:  "_mta-sts.example.com.",
		RecordValue: "v=STSv1; id=20260701T120509Z",
		PolicyURL:   "https://mta-sts.example.com/.well-known/mta-sts.txt",
	}
	if g != want {
		t.Errorf("Generate = %+v, want %+v", g, want)
	}
	if len(warn) != 0 {
		t.Errorf("Generate warnings = %q, want none", warn)
	}
}

func TestGenerateDefaultsAndPresets(t *testing.T) {
	g, _, err := Generate(GenerateOptions{Domain: "example.com", Mode: ModeTesting, Preset: "google-workspace", MX: []string{"aspmx.l.google.com", "mx.example.com"}, ID: "1",
		RUA: []string{"mailto:tlsrpt@example.com"}})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	wantPolicy := "version: STSv1\r\nmode: testing\r\nmx: aspmx.l.google.com\r\nmx: *.aspmx.l.google.com\r\nmx: smtp.google.com\r\nmx: *.googlemail.com\r\nmx: mx.example.com\r\nmax_age: 86400\r\n"
	if g.Policy != wantPolicy {
		t.Errorf("Policy = %q, want %q", g.Policy, wantPolicy)
	}
	if g.TLSRPTRecordName != "_smtp._tls.example.com." || g.TLSRPTRecordValue != "v=TLSRPTv1; rua=mailto:tlsrpt@example.com" {
		t.Errorf("TLS-RPT record = %q %q", g.TLSRPTRecordName, g.TLSRPTRecordValue)
	}
	g, _, err = Generate(GenerateOptions{Domain: "example.com", Mode: ModeEnforce, Preset: "microsoft-365", ID: "2"})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if !strings.Contains(g.Policy, "mx: *.mail.protection.outlook.com\r\nmx: *.mx.microsoft\r\n") {
		t.Errorf("microsoft-365 policy = %q", g.Policy)
	}
	g, _, err = Generate(GenerateOptions{Domain: "example.com", Mode: ModeNone, ID: "3", ZeroMaxAge: true})
	if err != nil || g.Policy != "version: STSv1\r\nmode: none\r\nmax_age: 0\r\n" {
		t.Errorf("Generate(none, max_age 0) = %q, %v", g.Policy, err)
	}
	if g.ID == "" || g.RecordValue != "v=STSv1; id=3" {
		t.Errorf("record = %q", g.RecordValue)
	}
}

func TestGenerateWarnings(t *testing.T) {
	tests := []struct {
		mode   Mode
		maxAge int64
		want   int
	}{
		{ModeTesting, 86400, 0},
		{ModeTesting, 3600, 1},
		{ModeEnforce, 86400, 1},
		{ModeEnforce, 3600, 2},
		{ModeEnforce, 604800, 0},
	}
	for _, tt := range tests {
		_, warn, err := Generate(GenerateOptions{Domain: "example.com", Mode: tt.mode, MX: []string{"mx.example.com"}, MaxAge: tt.maxAge, ID: "1"})
		if err != nil {
			t.Fatalf("Generate(%s, %d): %v", tt.mode, tt.maxAge, err)
		}
		if len(warn) != tt.want {
			t.Errorf("Generate(%s, %d) warnings = %q, want %d", tt.mode, tt.maxAge, warn, tt.want)
		}
	}
}

func TestGenerateRefuses(t *testing.T) {
	base := GenerateOptions{Domain: "example.com", Mode: ModeEnforce, MX: []string{"mx.example.com"}, ID: "1"}
	tests := []struct {
		name string
		edit func(o *GenerateOptions)
		want error
	}{
		{"unknown mode", func(o *GenerateOptions) { o.Mode = "strict" }, ErrInvalidMode},
		{"empty mode", func(o *GenerateOptions) { o.Mode = "" }, ErrInvalidMode},
		{"max_age over a year", func(o *GenerateOptions) { o.MaxAge = MaxMaxAge + 1 }, ErrInvalidMaxAge},
		{"negative max_age", func(o *GenerateOptions) { o.MaxAge = -5 }, ErrInvalidMaxAge},
		{"id with dashes", func(o *GenerateOptions) { o.ID = "2026-07-01" }, ErrInvalidID},
		{"id too long", func(o *GenerateOptions) { o.ID = strings.Repeat("1", 33) }, ErrInvalidID},
		{"mx ip", func(o *GenerateOptions) { o.MX = []string{"192.0.2.25"} }, ErrInvalidMX},
		{"mx port", func(o *GenerateOptions) { o.MX = []string{"mx.example.com:25"} }, ErrInvalidMX},
		{"mx inner wildcard", func(o *GenerateOptions) { o.MX = []string{"mx.*.example.com"} }, ErrInvalidMX},
		{"enforce without mx", func(o *GenerateOptions) { o.MX = nil }, ErrMXRequired},
		{"testing without mx", func(o *GenerateOptions) { o.MX, o.Mode = nil, ModeTesting }, ErrMXRequired},
		{"unknown preset", func(o *GenerateOptions) { o.Preset = "yahoo" }, ErrUnknownPreset},
		{"bad domain", func(o *GenerateOptions) { o.Domain = "exa mple.com" }, ErrInvalidDomain},
		{"bad rua", func(o *GenerateOptions) { o.RUA = []string{"reports@example.com"} }, ErrInvalidTLSRPT},
	}
	for _, tt := range tests {
		o := base
		tt.edit(&o)
		if g, _, err := Generate(o); !errors.Is(err, tt.want) {
			t.Errorf("%s: Generate = %+v, %v, want %v", tt.name, g, err, tt.want)
		}
	}
}

func TestGenerateNoneNeedsNoMX(t *testing.T) {
	g, _, err := Generate(GenerateOptions{Domain: "example.com", Mode: ModeNone, ID: "1"})
	if err != nil {
		t.Fatalf("Generate(none): %v", err)
	}
	p, err := ParsePolicy(g.Policy)
	if err != nil || p.Mode != ModeNone || p.MaxAge != DefaultMaxAgeTesting {
		t.Errorf("ParsePolicy(%q) = %+v, %v", g.Policy, p, err)
	}
}
