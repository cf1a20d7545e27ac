package rollout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode is the mode of an MTA-STS policy (RFC 8461 §5).
type Mode string

// The modes of RFC 8461 §5.
const (
	// ModeNone tells senders the domain no longer has a policy; it is
	// the way out of enforce.
	ModeNone Mode = "none"
	// ModeTesting applies the policy and reports failures through
	// TLS-RPT, but delivers anyway.
	ModeTesting Mode = "testing"
	// ModeEnforce refuses delivery when the policy cannot be met.
	ModeEnforce Mode = "enforce"
)

// Valid reports whether m is one of the three modes of RFC 8461.
func (m Mode) Valid() bool {
	return m == ModeNone || m == ModeTesting || m == ModeEnforce
}

// MaxMaxAge is the largest max_age RFC 8461 §3.2 allows: one year.
const MaxMaxAge int64 = 31557600

// Policy max_age defaults and the limits tlsrpt warns about (RFC-NOTES.md,
// "What practitioners are told").
const (
	// DefaultMaxAgeEnforce is a week: the production value for enforce.
	DefaultMaxAgeEnforce int64 = 604800
	// DefaultMaxAgeTesting is a day: short, so changes propagate while
	// the domain is still in testing.
	DefaultMaxAgeTesting int64 = 86400
	// LowMaxAge is the value under which max_age is called too low.
	LowMaxAge int64 = 86400
)

// maxPolicySize bounds a policy body; it is the limit senders apply to the
// fetch (RFC 8461 §3.3 leaves it to them, 64 KiB is common).
const maxPolicySize = 64 << 10

// Sentinel errors of the rollout package's parsers.
var (
	ErrInvalidPolicy    = errors.New("rollout: invalid mta-sts policy")
	ErrInvalidRecord    = errors.New("rollout: invalid mta-sts record")
	ErrNotSTSRecord     = errors.New("rollout: not an mta-sts record")
	ErrInvalidTLSRPT    = errors.New("rollout: invalid tls-rpt record")
	ErrNotTLSRPTRecord  = errors.New("rollout: not a tls-rpt record")
	ErrInvalidID        = errors.New("rollout: invalid policy id")
	ErrInvalidMX        = errors.New("rollout: invalid mx pattern")
	ErrInvalidMaxAge    = errors.New("rollout: invalid max_age")
	ErrInvalidMode      = errors.New("rollout: invalid mode")
	ErrUnknownPreset    = errors.New("rollout: unknown preset")
	ErrMXRequired       = errors.New("rollout: mx required")
	ErrInvalidDomain    = errors.New("rollout: invalid domain")
	ErrInvalidReportURI = errors.New("rollout: invalid report uri")
)

// Policy is an MTA-STS policy file (RFC 8461 §3.2).
type Policy struct {
	Mode Mode
	// MX holds the mx patterns in the order they are published.
	MX     []string
	MaxAge int64
}

// String returns the policy file exactly as it is served at
// https://mta-sts.<domain>/.well-known/mta-sts.txt: version first, one mx
// line per pattern, every line ended by CRLF (RFC 8461 §3.2).
func (p Policy) String() string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\n")
	b.WriteString("mode: " + string(p.Mode) + "\r\n")
	for _, mx := range p.MX {
		b.WriteString("mx: " + mx + "\r\n")
	}
	b.WriteString("max_age: " + strconv.FormatInt(p.MaxAge, 10) + "\r\n")
	return b.String()
}

// Validate checks the fields a published policy needs: a known mode,
// max_age within 0..31557600, valid mx patterns, and at least one mx for
// testing and enforce.
func (p Policy) Validate() error {
	if !p.Mode.Valid() {
		return fmt.Errorf("%w: %q (want none, testing or enforce)", ErrInvalidMode, p.Mode)
	}
	if p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
		return fmt.Errorf("%w: %d is outside 0..%d", ErrInvalidMaxAge, p.MaxAge, MaxMaxAge)
	}
	for _, mx := range p.MX {
		if err := ValidMXPattern(mx); err != nil {
			return err
		}
	}
	if len(p.MX) == 0 && p.Mode != ModeNone {
		return fmt.Errorf("%w: mode %s needs at least one mx pattern", ErrMXRequired, p.Mode)
	}
	return nil
}

// Matches returns the first mx pattern of the policy that host matches,
// and whether there is one.
func (p Policy) Matches(host string) (string, bool) {
	for _, mx := range p.MX {
		if MatchMX(mx, host) {
			return mx, true
		}
	}
	return "", false
}

// ParsePolicy parses a policy file. It is tolerant where RFC 8461 and
// erratum 6253 are: lines end in LF or CRLF, the last one may lack its end,
// whitespace after the colon and at the end of a line is skipped, blank
// lines are skipped, unknown keys are ignored and for every key but mx only
// the first occurrence counts (§3.2). It is strict on the rest: version
// STSv1, a known mode, max_age of at most 10 digits within 0..31557600,
// valid mx patterns, and mx required for testing and enforce.
func ParsePolicy(body string) (Policy, error) {
	var p Policy
	if len(body) > maxPolicySize {
		return Policy{}, fmt.Errorf("parsing policy: %w: %d bytes, at most %d", ErrInvalidPolicy, len(body), maxPolicySize)
	}
	seen := map[string]bool{}
	for n, line := range strings.Split(body, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimLeft(line, " \t") == "" {
			continue
		}
		perr := func(format string, args ...any) error {
			return fmt.Errorf("parsing policy line %d: %w: %s", n+1, ErrInvalidPolicy, fmt.Sprintf(format, args...))
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return Policy{}, perr("no colon in %q", line)
		}
		if !validFieldName(key) {
			return Policy{}, perr("invalid key %q", key)
		}
		value = strings.TrimRight(strings.TrimLeft(value, " \t"), " \t")
		if value == "" {
			return Policy{}, perr("empty value for %s", key)
		}
		for i := 0; i < len(value); i++ {
			if c := value[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return Policy{}, perr("control character in value of %s", key)
			}
		}
		first := !seen[key]
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return Policy{}, perr("version %q, want STSv1", value)
			}
		case "mode":
			m := Mode(value)
			if !m.Valid() {
				return Policy{}, perr("mode %q, want none, testing or enforce", value)
			}
			if first {
				p.Mode = m
			}
		case "max_age":
			v, err := parseMaxAge(value)
			if err != nil {
				return Policy{}, perr("%v", err)
			}
			if first {
				p.MaxAge = v
			}
		case "mx":
			if err := ValidMXPattern(value); err != nil {
				return Policy{}, perr("%v", err)
			}
			p.MX = append(p.MX, value)
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return Policy{}, fmt.Errorf("parsing policy: %w: no %s", ErrInvalidPolicy, k)
		}
	}
	if len(p.MX) == 0 && p.Mode != ModeNone {
		return Policy{}, fmt.Errorf("parsing policy: %w: mode %s without mx", ErrInvalidPolicy, p.Mode)
	}
	return p, nil
}

// parseMaxAge reads sts-policy-max-age-value: 1*10DIGIT, at most one year.
func parseMaxAge(s string) (int64, error) {
	if len(s) > 10 {
		return 0, fmt.Errorf("max_age %q has more than 10 digits", s)
	}
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return 0, fmt.Errorf("max_age %q is not a number", s)
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("max_age %q: %w", s, err)
	}
	if v > MaxMaxAge {
		return 0, fmt.Errorf("max_age %d is over %d", v, MaxMaxAge)
	}
	return v, nil
}

// validFieldName checks sts-policy-ext-name of RFC 8461 §3.2, which the
// known keys also satisfy: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
func validFieldName(k string) bool {
	if k == "" || len(k) > 32 || !isAlnum(k[0]) {
		return false
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
