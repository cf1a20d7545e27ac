package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// Settings are the server's settings as read from the environment (and
// flags, which cmd/tlsrpt applies on top). docs/dashboard.md lists them.
type Settings struct {
	Listen         string         // TLSRPT_LISTEN, default 127.0.0.1:8080
	TLSCert        string         // TLSRPT_TLS_CERT
	TLSKey         string         // TLSRPT_TLS_KEY
	AdminPassword  string         // TLSRPT_ADMIN_PASSWORD or the file TLSRPT_ADMIN_PASSWORD_FILE
	PublicURL      string         // TLSRPT_PUBLIC_URL
	PublicRate     Rate           // TLSRPT_RATE_PUBLIC, e.g. "60/m,30"
	LoginRate      Rate           // TLSRPT_RATE_LOGIN, e.g. "5/m,5"
	CheckRate      Rate           // TLSRPT_RATE_CHECK, e.g. "10/m,5", per user
	MaxReportBytes int64          // TLSRPT_MAX_REPORT_BYTES
	ParseBytes     int64          // TLSRPT_PARSE_BUDGET_BYTES (0: ingest.DefaultParseBytes)
	TrustedProxies []netip.Prefix // TLSRPT_TRUSTED_PROXIES, comma-separated CIDRs
	SessionTTL     time.Duration  // TLSRPT_SESSION_TTL, e.g. "168h"
	MetricsToken   string         // TLSRPT_METRICS_TOKEN or the file TLSRPT_METRICS_TOKEN_FILE
	// SecureCookies is set when TLS is on, or forced by
	// TLSRPT_SECURE_COOKIES=true behind a TLS-terminating proxy.
	SecureCookies bool
}

// ApplyTo copies the settings that Config carries into cfg; Listen and
// the TLS files are for Run.
func (s Settings) ApplyTo(cfg *Config) {
	cfg.AdminPassword = s.AdminPassword
	cfg.PublicURL = s.PublicURL
	cfg.PublicRate = s.PublicRate
	cfg.LoginRate = s.LoginRate
	cfg.CheckRate = s.CheckRate
	cfg.MaxReportBytes = s.MaxReportBytes
	cfg.Intake.ParseBytes = s.ParseBytes
	cfg.TrustedProxies = s.TrustedProxies
	cfg.SessionTTL = s.SessionTTL
	cfg.MetricsToken = s.MetricsToken
	cfg.SecureCookies = s.SecureCookies
}

// DefaultListen is where the server listens unless told otherwise.
const DefaultListen = "127.0.0.1:8080"

// LoadSettings reads the settings from getenv; the error names the
// variable at fault.
func LoadSettings(getenv func(string) string) (Settings, error) {
	s := Settings{
		Listen: DefaultListen, PublicRate: DefaultPublicRate, LoginRate: DefaultLoginRate, CheckRate: DefaultCheckRate,
		MaxReportBytes: DefaultMaxReportBytes, SessionTTL: DefaultSessionTTL,
	}
	if v := getenv("TLSRPT_LISTEN"); v != "" {
		s.Listen = v
	}
	s.TLSCert, s.TLSKey = getenv("TLSRPT_TLS_CERT"), getenv("TLSRPT_TLS_KEY")
	s.PublicURL = getenv("TLSRPT_PUBLIC_URL")
	var err error
	if s.AdminPassword, err = secretEnv(getenv, "TLSRPT_ADMIN_PASSWORD"); err != nil {
		return s, err
	}
	if s.MetricsToken, err = secretEnv(getenv, "TLSRPT_METRICS_TOKEN"); err != nil {
		return s, err
	}
	if v := getenv("TLSRPT_RATE_PUBLIC"); v != "" {
		if s.PublicRate, err = ParseRate(v); err != nil {
			return s, fmt.Errorf("TLSRPT_RATE_PUBLIC: %w", err)
		}
	}
	if v := getenv("TLSRPT_RATE_LOGIN"); v != "" {
		if s.LoginRate, err = ParseRate(v); err != nil {
			return s, fmt.Errorf("TLSRPT_RATE_LOGIN: %w", err)
		}
	}
	if v := getenv("TLSRPT_RATE_CHECK"); v != "" {
		if s.CheckRate, err = ParseRate(v); err != nil {
			return s, fmt.Errorf("TLSRPT_RATE_CHECK: %w", err)
		}
	}
	if v := getenv("TLSRPT_MAX_REPORT_BYTES"); v != "" {
		if s.MaxReportBytes, err = strconv.ParseInt(v, 10, 64); err != nil || s.MaxReportBytes < 1024 || s.MaxReportBytes > 1<<30 {
			return s, fmt.Errorf("TLSRPT_MAX_REPORT_BYTES: %q is not a size from 1024 to 1073741824 bytes", v)
		}
	}
	if v := getenv("TLSRPT_PARSE_BUDGET_BYTES"); v != "" {
		// At least one body of the largest size with its decompressed
		// report (64 MiB), so that any valid report can get through.
		if s.ParseBytes, err = strconv.ParseInt(v, 10, 64); err != nil || s.ParseBytes < 80<<20 || s.ParseBytes > 1<<40 {
			return s, fmt.Errorf("TLSRPT_PARSE_BUDGET_BYTES: %q is not a size from 83886080 to 1099511627776 bytes", v)
		}
	}
	if v := getenv("TLSRPT_TRUSTED_PROXIES"); v != "" {
		for _, p := range strings.Split(v, ",") {
			pr, err := netip.ParsePrefix(strings.TrimSpace(p))
			if err != nil {
				return s, fmt.Errorf("TLSRPT_TRUSTED_PROXIES: %q is not a CIDR prefix", p)
			}
			s.TrustedProxies = append(s.TrustedProxies, pr)
		}
	}
	if v := getenv("TLSRPT_SESSION_TTL"); v != "" {
		if s.SessionTTL, err = time.ParseDuration(v); err != nil || s.SessionTTL < time.Minute {
			return s, fmt.Errorf("TLSRPT_SESSION_TTL: %q is not a duration of at least 1m", v)
		}
	}
	s.SecureCookies = s.TLSCert != ""
	if v := getenv("TLSRPT_SECURE_COOKIES"); v != "" {
		if s.SecureCookies, err = strconv.ParseBool(v); err != nil {
			return s, fmt.Errorf("TLSRPT_SECURE_COOKIES: %q is not true or false", v)
		}
	}
	return s, s.Validate()
}

// secretEnv reads the secret NAME or the file named by NAME_FILE (not
// both), as cmd/tlsrpt's secretSetting does.
func secretEnv(getenv func(string) string, name string) (string, error) {
	v, file := getenv(name), getenv(name+"_FILE")
	if v != "" && file != "" {
		return "", fmt.Errorf("%s and %s_FILE are both set: use one", name, name)
	}
	if file == "" {
		return v, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", name, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// minMetricsToken is the shortest metrics token taken: it guards the list
// of every domain, so it should be a random secret, not a word.
const minMetricsToken = 16

// Validate checks the settings, naming the variable at fault.
func (s Settings) Validate() error {
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		return fmt.Errorf("TLSRPT_LISTEN (--listen): %q is not host:port", s.Listen)
	}
	if (s.TLSCert == "") != (s.TLSKey == "") {
		return errors.New("TLSRPT_TLS_CERT and TLSRPT_TLS_KEY: set both or neither")
	}
	if len(s.AdminPassword) > maxPasswordBytes {
		return fmt.Errorf("TLSRPT_ADMIN_PASSWORD: longer than %d bytes (bcrypt ignores the rest)", maxPasswordBytes)
	}
	if s.MetricsToken != "" && len(s.MetricsToken) < minMetricsToken {
		return fmt.Errorf("TLSRPT_METRICS_TOKEN: shorter than %d characters; use a random one (openssl rand -hex 32)", minMetricsToken)
	}
	if s.PublicURL != "" && !strings.HasPrefix(s.PublicURL, "https://") && !strings.HasPrefix(s.PublicURL, "http://") {
		return fmt.Errorf("TLSRPT_PUBLIC_URL: %q is not an http(s) URL", s.PublicURL)
	}
	return nil
}

// ParseRate reads "N/unit[,burst]" with unit s, m or h: "60/m,30" is 60
// requests a minute with bursts of 30. "off" disables the limit.
func ParseRate(v string) (Rate, error) {
	if v == "off" {
		return RateOff, nil
	}
	spec, burst, hasBurst := strings.Cut(v, ",")
	n, unit, ok := strings.Cut(spec, "/")
	per, err := strconv.ParseFloat(n, 64)
	if !ok || err != nil || !(per > 0) || math.IsInf(per, 0) {
		return Rate{}, fmt.Errorf("%q is not N/s, N/m or N/h with an optional ,burst", v)
	}
	r := Rate{Per: per}
	switch unit {
	case "s":
		r.Every = time.Second
	case "m":
		r.Every = time.Minute
	case "h":
		r.Every = time.Hour
	default:
		return Rate{}, fmt.Errorf("%q: the unit must be s, m or h", v)
	}
	r.Burst = max(1, int(per))
	if hasBurst {
		b, err := strconv.Atoi(burst)
		if err != nil || b < 1 {
			return Rate{}, fmt.Errorf("%q: the burst must be a positive whole number", v)
		}
		r.Burst = b
	}
	return r, nil
}

// shutdownTimeout bounds how long Run waits for requests in flight.
const shutdownTimeout = 15 * time.Second

// Run serves on listen until ctx ends, with TLS when certFile is set, then
// shuts down gracefully: it stops accepting, lets requests in flight
// finish (up to shutdownTimeout) and returns.
func (s *Server) Run(ctx context.Context, listen, certFile, keyFile string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	return s.Serve(ctx, ln, certFile, keyFile)
}

// Serve is Run on a listener the caller opened (tests use port 0).
func (s *Server) Serve(ctx context.Context, ln net.Listener, certFile, keyFile string) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
	}
	errc := make(chan error, 1)
	// The stored verdict badges are kept fresh while serving.
	defer s.startVerdictRefresher(ctx)()
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	s.log.InfoContext(ctx, "Web server listening", "address", ln.Addr().String(), "tls", certFile != "")
	select {
	case err := <-errc:
		return fmt.Errorf("serving http: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down http: %w", err)
	}
	if err := s.CloseIntake(sctx); err != nil {
		return fmt.Errorf("shutting down http: %w", err)
	}
	<-errc
	s.log.InfoContext(ctx, "Web server stopped")
	return nil
}
