package rollout

import (
	"fmt"
	"net/url"
	"strings"
)

// maxRUA bounds the number of report URIs read from one record; real
// records hold one or two.
const maxRUA = 32

// TLSRPTRecord is the TLS-RPT TXT record published at _smtp._tls.<domain>
// (RFC 8460 §3).
type TLSRPTRecord struct {
	// RUA holds the report URIs (mailto: or https:) in published order,
	// still percent-encoded.
	RUA        []string    `json:"rua"`
	Extensions []Extension `json:"extensions,omitempty"`
}

// String returns the TXT record value: "v=TLSRPTv1; rua=<uri>,<uri>" and
// the extensions, each after "; ".
func (r TLSRPTRecord) String() string {
	var b strings.Builder
	b.WriteString("v=TLSRPTv1; rua=" + strings.Join(r.RUA, ","))
	for _, e := range r.Extensions {
		b.WriteString("; " + e.Name + "=" + e.Value)
	}
	return b.String()
}

// IsTLSRPTRecord reports whether a TXT value is meant as a TLS-RPT record:
// RFC 8460 §3 tells senders to discard those not starting with v=TLSRPTv1.
func IsTLSRPTRecord(txt string) bool {
	return startsWithVersion(txt, "v=TLSRPTv1")
}

// ParseTLSRPTRecord parses a TLS-RPT TXT record value (the strings of one
// record concatenated): v=TLSRPTv1 first, then a rua field of mailto: and
// https: URIs separated by commas with optional spaces, extensions ignored.
// A comma, "!" or ";" inside a URI must be percent-encoded (RFC 8460 §3).
func ParseTLSRPTRecord(txt string) (TLSRPTRecord, error) {
	if !IsTLSRPTRecord(txt) {
		return TLSRPTRecord{}, fmt.Errorf("parsing tls-rpt record %q: %w", txt, ErrNotTLSRPTRecord)
	}
	fail := func(err error) (TLSRPTRecord, error) {
		return TLSRPTRecord{}, fmt.Errorf("parsing tls-rpt record %q: %w: %w", txt, ErrInvalidTLSRPT, err)
	}
	// The rua list may hold spaces around its commas, which the generic
	// field splitter would take for the end of the value, so the record
	// is cut at ";" first.
	parts := strings.Split(txt[len("v=TLSRPTv1"):], ";")
	if strings.Trim(parts[0], " \t") != "" {
		return fail(fmt.Errorf("expected ';' after the version"))
	}
	var r TLSRPTRecord
	seenRUA := false
	for i, part := range parts[1:] {
		part = strings.Trim(part, " \t")
		if part == "" {
			if i == len(parts)-2 {
				break // the optional trailing separator
			}
			return fail(fmt.Errorf("empty field"))
		}
		name, value, ok := strings.Cut(part, "=")
		if !ok || !validFieldName(name) {
			return fail(fmt.Errorf("invalid field %q", part))
		}
		if name != "rua" {
			if value == "" || strings.ContainsAny(value, " \t=") || !printableASCII(value) {
				return fail(fmt.Errorf("invalid extension %q", part))
			}
			r.Extensions = append(r.Extensions, Extension{Name: name, Value: value})
			continue
		}
		if seenRUA {
			continue // the first rua counts, as for repeated MTA-STS fields
		}
		seenRUA = true
		for _, u := range strings.Split(value, ",") {
			u = strings.Trim(u, " \t")
			if err := ValidReportURI(u); err != nil {
				return fail(err)
			}
			if len(r.RUA) == maxRUA {
				return fail(fmt.Errorf("more than %d report uris", maxRUA))
			}
			r.RUA = append(r.RUA, u)
		}
	}
	if !seenRUA {
		return fail(fmt.Errorf("no rua field"))
	}
	return r, nil
}

// ValidReportURI checks one rua URI of RFC 8460 §3: mailto: with an
// address, or https: with a host; printable ASCII without spaces, "!" and
// unencoded "%", since "," "!" and ";" must be percent-encoded.
func ValidReportURI(u string) error {
	bad := func(why string) error {
		return fmt.Errorf("checking report uri %q: %w: %s", u, ErrInvalidReportURI, why)
	}
	if u == "" {
		return bad("empty")
	}
	if !printableASCII(u) || strings.ContainsAny(u, " \t!,;") {
		return bad("spaces, control characters or an unencoded ',', '!' or ';'")
	}
	for i := 0; i < len(u); i++ {
		if u[i] == '%' && (i+2 >= len(u) || !isHex(u[i+1]) || !isHex(u[i+2])) {
			return bad("'%' not followed by two hex digits")
		}
	}
	scheme, rest, _ := strings.Cut(u, ":")
	switch strings.ToLower(scheme) {
	case "mailto":
		addr, err := url.PathUnescape(rest)
		if err != nil {
			return bad("cannot decode the address")
		}
		addr, _, _ = strings.Cut(addr, "?")
		local, domain, ok := strings.Cut(addr, "@")
		if !ok || local == "" || validHostname(strings.ToLower(domain)) != nil {
			return bad("mailto: needs an address local@domain")
		}
	case "https":
		pu, err := url.Parse(u)
		if err != nil || pu.Host == "" || pu.Opaque != "" {
			return bad("https: needs //host/path")
		}
	default:
		return bad("scheme must be mailto: or https:")
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
