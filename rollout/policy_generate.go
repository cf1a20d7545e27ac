package rollout

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// presets are mx lists of large mail hosters (RFC-NOTES.md, "Presets").
// They age: the best list is the domain's own MX set read live, which
// "tlsrpt check" compares. It is never written.
var presets = map[string][]string{
	// Google's MX set holds aspmx.l.google.com and alt1-alt4 under it,
	// the older aspmx2-5.googlemail.com, and smtp.google.com for domains
	// set up since 2023.
	"google-workspace": {"aspmx.l.google.com", "*.aspmx.l.google.com", "smtp.google.com", "*.googlemail.com"},
	// Exchange Online: <tenant>.mail.protection.outlook.com, and
	// <tenant>.<x>.mx.microsoft on the newer inbound hosts.
	"microsoft-365": {"*.mail.protection.outlook.com", "*.mx.microsoft"},
}

// Presets returns the names of the mx presets, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// PresetMX returns the mx patterns of a preset.
func PresetMX(name string) ([]string, error) {
	p, ok := presets[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownPreset, name, strings.Join(Presets(), ", "))
	}
	return append([]string(nil), p...), nil
}

// GenerateOptions describe the policy to write.
type GenerateOptions struct {
	Domain string
	Mode   Mode
	// MX patterns, merged after the preset's; duplicates are dropped.
	MX []string
	// MaxAge in seconds; 0 means the default: 604800 for enforce, 86400
	// for testing and none. Set ZeroMaxAge to publish max_age: 0.
	MaxAge     int64
	ZeroMaxAge bool
	// ID of the new policy; "" means NewID(Now).
	ID     string
	Preset string
	// RUA, if set, are the report URIs of the TLS-RPT record to publish
	// along.
	RUA []string
	// Now is the time of the change; zero means time.Now().
	Now time.Time
}

// Generated is what to publish for a policy: the file, where it goes, and
// the TXT records. The JSON names are the output of "tlsrpt policy --json".
type Generated struct {
	Policy            string `json:"policy"`
	ID                string `json:"id"`
	RecordName        string `json:"record_name"`
	RecordValue       string `json:"record_value"`
	PolicyURL         string `json:"policy_url"`
	TLSRPTRecordName  string `json:"tlsrpt_record_name,omitempty"`
	TLSRPTRecordValue string `json:"tlsrpt_record_value,omitempty"`
}

// Generate writes the policy described by o and the records that go with
// it. It refuses an invalid domain, mode, max_age, id, preset or mx
// pattern, and testing or enforce without mx; the warnings name values
// that work but go against the usual advice (max_age under a day, enforce
// under a week).
func Generate(o GenerateOptions) (Generated, []string, error) {
	domain, err := NormalizeDomain(o.Domain)
	if err != nil {
		return Generated{}, nil, fmt.Errorf("generating policy: %w: %w", ErrInvalidDomain, err)
	}
	if !o.Mode.Valid() {
		return Generated{}, nil, fmt.Errorf("generating policy: %w: %q (want none, testing or enforce)", ErrInvalidMode, o.Mode)
	}
	var mx []string
	if o.Preset != "" {
		if mx, err = PresetMX(o.Preset); err != nil {
			return Generated{}, nil, fmt.Errorf("generating policy: %w", err)
		}
	}
	mx = append(mx, o.MX...)
	mx, err = normalizeMX(mx)
	if err != nil {
		return Generated{}, nil, fmt.Errorf("generating policy: %w", err)
	}
	maxAge := o.MaxAge
	if maxAge == 0 && !o.ZeroMaxAge {
		maxAge = DefaultMaxAgeTesting
		if o.Mode == ModeEnforce {
			maxAge = DefaultMaxAgeEnforce
		}
	}
	p := Policy{Mode: o.Mode, MX: mx, MaxAge: maxAge}
	if err := p.Validate(); err != nil {
		return Generated{}, nil, fmt.Errorf("generating policy: %w", err)
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	id := o.ID
	if id == "" {
		id = NewID(now)
	}
	if err := ValidID(id); err != nil {
		return Generated{}, nil, fmt.Errorf("generating policy: %w", err)
	}
	g := Generated{
		Policy:      p.String(),
		ID:          id,
		RecordName:  "_mta-sts." + domain + ".",
		RecordValue: Record{ID: id}.String(),
		PolicyURL:   PolicyURL(domain),
	}
	if len(o.RUA) > 0 {
		r := TLSRPTRecord{RUA: o.RUA}
		if _, err := ParseTLSRPTRecord(r.String()); err != nil {
			return Generated{}, nil, fmt.Errorf("generating policy: %w", err)
		}
		g.TLSRPTRecordName = "_smtp._tls." + domain + "."
		g.TLSRPTRecordValue = r.String()
	}
	var warnings []string
	if maxAge < LowMaxAge {
		warnings = append(warnings, fmt.Sprintf("max_age %d is under %d (a day): senders refetch often and forget the policy soon after the host goes down", maxAge, LowMaxAge))
	}
	if o.Mode == ModeEnforce && maxAge < DefaultMaxAgeEnforce {
		warnings = append(warnings, fmt.Sprintf("max_age %d is under %d (a week), the usual value for enforce", maxAge, DefaultMaxAgeEnforce))
	}
	return g, warnings, nil
}

// normalizeMX lower-cases the patterns, drops one trailing dot (names
// copied from DNS output carry it), checks them and removes duplicates,
// keeping the first occurrence's place.
func normalizeMX(in []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, m := range in {
		m = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(m), "."))
		if err := ValidMXPattern(m); err != nil {
			return nil, err
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}
