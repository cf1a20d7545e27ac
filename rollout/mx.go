package rollout

import (
	"fmt"
	"strings"
)

// maxHostnameLen is the longest domain name in presentation form without
// the trailing dot (RFC 1035 §2.3.4).
const maxHostnameLen = 253

// ValidMXPattern reports whether p is an MTA-STS mx pattern (RFC 8461 §3.2
// sts-policy-mx-value): a hostname, or "*." and a hostname where the
// wildcard stands for exactly one leftmost label. IP addresses, ports,
// inner wildcards and trailing dots are refused.
func ValidMXPattern(p string) error {
	host := strings.TrimPrefix(p, "*.")
	if err := validHostname(host); err != nil {
		return fmt.Errorf("checking mx pattern %q: %w: %w", p, ErrInvalidMX, err)
	}
	return nil
}

// validHostname checks RFC 5321 Domain syntax in A-labels: LDH labels of
// 1-63 characters that neither start nor end with a hyphen. A name whose
// last label is all digits is refused: no top-level domain is numeric, so
// it is an IPv4 address.
func validHostname(h string) error {
	if h == "" {
		return fmt.Errorf("empty host name")
	}
	if len(h) > maxHostnameLen {
		return fmt.Errorf("host name longer than %d characters", maxHostnameLen)
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if err := validLabel(l); err != nil {
			return err
		}
	}
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return fmt.Errorf("%q is an IP address, not a host name", h)
	}
	return nil
}

func validLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("empty label")
	case len(l) > 63:
		return fmt.Errorf("label %q longer than 63 characters", l)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		if c := l[i]; !isAlnum(c) && c != '-' {
			return fmt.Errorf("label %q holds %q", l, c)
		}
	}
	return nil
}

// MatchMX reports whether the MX host name host matches the policy mx
// pattern (RFC 8461 §4.1): case-insensitively, trailing dots ignored, and a
// "*." wildcard matching exactly one leftmost label, so "*.example.com"
// matches "mx1.example.com" but neither "example.com" nor
// "a.b.example.com".
func MatchMX(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if pattern == "" || host == "" {
		return false
	}
	suffix, wild := strings.CutPrefix(pattern, "*.")
	if !wild {
		return pattern == host
	}
	label, rest, ok := strings.Cut(host, ".")
	return ok && label != "" && label != "*" && rest == suffix
}

// NormalizeDomain returns d in the form tlsrpt stores and queries: lower
// case, without a trailing dot, checked to be a host name.
func NormalizeDomain(d string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
	if err := validHostname(n); err != nil {
		return "", fmt.Errorf("checking domain %q: %w", d, err)
	}
	if !strings.Contains(n, ".") {
		return "", fmt.Errorf("checking domain %q: not a fully qualified name", d)
	}
	return n, nil
}
