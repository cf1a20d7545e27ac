package rollout

import (
	"context"
	"errors"
	"strings"
)

// Record publishing methods: how the _mta-sts TXT record of a version
// reaches DNS. The policy file is published before it, by tlsrpt's own
// policy host or by the operator (PolicyHosted, PolicyDownload).
const (
	RecordManual     = "manual"     // shown with provider steps; the operator sets it
	RecordRFC2136    = "rfc2136"    // dynamic update with TSIG (DNSUpdate)
	RecordCloudflare = "cloudflare" // Cloudflare API (Cloudflare)
	RecordHetzner    = "hetzner"    // Hetzner Cloud DNS API (Hetzner)

	PolicyHosted   = "hosted"   // served by tlsrpt at mta-sts.<domain>
	PolicyDownload = "download" // handed over as a file
)

// ErrPublish is wrapped by every record publisher's failure.
var ErrPublish = errors.New("rollout: publishing the record failed")

// RecordPublisher sets the _mta-sts TXT record of a domain. Implementations
// replace every TXT record at the name with the one value (a second
// v=STSv1 record would make senders ignore both, RFC 8461 §3.1).
type RecordPublisher interface {
	// Method is one of the Record* constants.
	Method() string
	// PublishTXT makes value the only TXT record at name (a fully
	// qualified name, with or without the trailing dot).
	PublishTXT(ctx context.Context, name, value string) error
}

// WithPolicyPort returns a copy of the inspector that fetches policy files
// from port instead of 443. Only a policy host on a loopback port (the
// demo, tests) needs it: senders always use 443.
func (in *Inspector) WithPolicyPort(port string) *Inspector {
	c := *in
	c.httpsPort = port
	return &c
}

// WithoutSMTP returns a copy of the inspector that leaves out the
// STARTTLS probe of the MX hosts: verifying a publication needs the record
// and the policy file only, and is polled often.
func (in *Inspector) WithoutSMTP() *Inspector {
	if in == nil {
		return nil
	}
	c := *in
	c.SkipSMTP = true
	return &c
}

// relativeName returns name relative to zone ("@" for the apex), both
// without the trailing dot, and whether name is in zone.
func relativeName(name, zone string) (string, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	zone = strings.ToLower(strings.TrimSuffix(zone, "."))
	switch {
	case name == zone:
		return "@", true
	case strings.HasSuffix(name, "."+zone):
		return strings.TrimSuffix(name, "."+zone), true
	}
	return "", false
}

// zoneOf returns zone, or when it is empty the zone the record's domain
// is assumed to be: name without its first label (_mta-sts.example.com →
// example.com), for setups where each domain is its own zone.
func zoneOf(zone, name string) string {
	if zone != "" {
		return strings.TrimSuffix(zone, ".")
	}
	name = strings.TrimSuffix(name, ".")
	if _, rest, ok := strings.Cut(name, "."); ok {
		return rest
	}
	return name
}

// quoteTXT returns value as one quoted TXT character-string as zone files
// and provider APIs write it: backslash and quote escaped. MTA-STS record
// values are short (under 255 octets), so one string suffices.
func quoteTXT(value string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(value) + `"`
}
