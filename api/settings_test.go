package api

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadSettings(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	s, err := LoadSettings(env(nil))
	if err != nil || s.Listen != DefaultListen || s.PublicRate != DefaultPublicRate || s.SecureCookies {
		t.Fatalf("LoadSettings(empty) = %+v, %v", s, err)
	}
	s, err = LoadSettings(env(map[string]string{
		"TLSRPT_LISTEN": "[::1]:8443", "TLSRPT_TLS_CERT": "c.pem", "TLSRPT_TLS_KEY": "k.pem",
		"TLSRPT_ADMIN_PASSWORD_FILE": pwFile, "TLSRPT_RATE_PUBLIC": "10/s,20", "TLSRPT_RATE_LOGIN": "3/h",
		"TLSRPT_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8", "TLSRPT_SESSION_TTL": "12h", "TLSRPT_MAX_REPORT_BYTES": "2048",
		"TLSRPT_PARSE_BUDGET_BYTES": "104857600",
	}))
	if err != nil {
		t.Fatalf("LoadSettings(full) = %v", err)
	}
	if s.AdminPassword != "from-file" || !s.SecureCookies || s.PublicRate != (Rate{Per: 10, Every: time.Second, Burst: 20}) ||
		s.LoginRate != (Rate{Per: 3, Every: time.Hour, Burst: 3}) || len(s.TrustedProxies) != 2 || s.SessionTTL != 12*time.Hour || s.MaxReportBytes != 2048 || s.ParseBytes != 100<<20 {
		t.Errorf("LoadSettings(full) = %+v", s)
	}
	var cfg Config
	s.ApplyTo(&cfg)
	if cfg.AdminPassword != "from-file" || cfg.PublicRate != s.PublicRate || !cfg.SecureCookies || cfg.Intake.ParseBytes != 100<<20 {
		t.Errorf("ApplyTo = %+v", cfg)
	}
	for _, tc := range []struct {
		kv   map[string]string
		name string
	}{
		{map[string]string{"TLSRPT_LISTEN": "8080"}, "TLSRPT_LISTEN"},
		{map[string]string{"TLSRPT_TLS_CERT": "c.pem"}, "TLSRPT_TLS_KEY"},
		{map[string]string{"TLSRPT_ADMIN_PASSWORD": "a", "TLSRPT_ADMIN_PASSWORD_FILE": pwFile}, "TLSRPT_ADMIN_PASSWORD_FILE"},
		{map[string]string{"TLSRPT_ADMIN_PASSWORD": strings.Repeat("x", 73)}, "TLSRPT_ADMIN_PASSWORD"},
		{map[string]string{"TLSRPT_RATE_PUBLIC": "fast"}, "TLSRPT_RATE_PUBLIC"},
		{map[string]string{"TLSRPT_RATE_LOGIN": "5/d"}, "TLSRPT_RATE_LOGIN"},
		{map[string]string{"TLSRPT_TRUSTED_PROXIES": "10.0.0.1"}, "TLSRPT_TRUSTED_PROXIES"},
		{map[string]string{"TLSRPT_SESSION_TTL": "5s"}, "TLSRPT_SESSION_TTL"},
		{map[string]string{"TLSRPT_MAX_REPORT_BYTES": "12"}, "TLSRPT_MAX_REPORT_BYTES"},
		{map[string]string{"TLSRPT_PARSE_BUDGET_BYTES": "1048576"}, "TLSRPT_PARSE_BUDGET_BYTES"},
		{map[string]string{"TLSRPT_PUBLIC_URL": "ftp://x"}, "TLSRPT_PUBLIC_URL"},
		{map[string]string{"TLSRPT_SECURE_COOKIES": "maybe"}, "TLSRPT_SECURE_COOKIES"},
	} {
		if _, err := LoadSettings(env(tc.kv)); err == nil || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("LoadSettings(%v) = %v, want an error naming %s", tc.kv, err, tc.name)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, s := range []string{"60/m,30", "5/m", "1/s", "0.5/h,1", "off", "", "/m", "1/d", "1/m,-1", "1e308/s,1", "NaN/s", "Inf/m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if s != "off" && (!(r.Per > 0) || math.IsInf(r.Per, 0) || r.Every <= 0 || r.Burst < 1) {
			t.Errorf("ParseRate(%q) = %+v without an error", s, r)
		}
	})
}
