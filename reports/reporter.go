package reports

import (
	"net/mail"
	"net/netip"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// ReporterMethod says how a report's reporter was verified (docs/reporters.md): a reporter is a verified domain, never the free-text
// organization-name.
type ReporterMethod string

// Ways a reporter is verified; ReporterUnverified is none.
const (
	// ReporterDKIM: mailed, with a DKIM signature that verified and whose
	// d= shares the organisational domain of From (RFC 8460 §5.3).
	ReporterDKIM ReporterMethod = "dkim"
	// ReporterReverseDNS: POSTed from an address whose forward-confirmed
	// reverse name lies under the report's contact-info organisational
	// domain, or under a host domain listed for that reporter.
	ReporterReverseDNS ReporterMethod = "fcrdns"
	// ReporterNetwork: POSTed from a network the operator trusts.
	ReporterNetwork ReporterMethod = "network"
	// ReporterFile: imported by the operator, who vouches for it; the
	// reporter is the organisational domain of contact-info.
	ReporterFile ReporterMethod = "file"
	// ReporterFileName: imported, without a contact-info domain: the
	// organisation name stands for the reporter, marked as such.
	ReporterFileName ReporterMethod = "file-name"
	// ReporterUnverified: nothing proves who sent it.
	ReporterUnverified ReporterMethod = ""
)

// HostRule says that reports of Reporter (an organisational domain, as
// contact-info gives it) may be POSTed from hosts whose verified reverse
// name lies under HostDomain: providers whose servers are named under
// another domain of their own.
type HostRule struct {
	Reporter   string
	HostDomain string
}

// NetworkRule trusts reports POSTed from Prefix as reports of Reporter
// (for example an internal relay that posts over HTTPS).
type NetworkRule struct {
	Prefix   netip.Prefix
	Reporter string
}

// TrustTable is what, beyond the built-in rules, vouches for a posted
// report: ShippedHostRules plus the operator's own rules.
type TrustTable struct {
	Hosts    []HostRule
	Networks []NetworkRule
}

// ShippedHostRules are the providers known to post or send from hosts
// named under another domain than their reports' contact-info:
//   - Microsoft: reports give tlsrpt-noreply@microsoft.com; Microsoft 365's
//     sending addresses have forward-confirmed reverse names under
//     outbound.protection.outlook.com ("mail-bn1on0065.outbound.protection.outlook.com",
//     learn.microsoft.com/troubleshoot/exchange/antispam-and-protection/cannot-send-emails-to-external-recipients,
//     KB 3019655).
//   - Yahoo: its mail routing names are under yahoodns.net
//     ("mx-eu.mail.gm0.yahoodns.net", suped.com "What are the current
//     Yahoo mail server names and infrastructure?").
//
// Google (google.com) and Mail.ru (mail.ru) name their hosts under the
// contact-info domain and need no rule.
var ShippedHostRules = []HostRule{
	{Reporter: "microsoft.com", HostDomain: "outlook.com"},
	{Reporter: "yahoo.com", HostDomain: "yahoodns.net"},
}

// Attribution is who sent a report, as far as it can be proven.
type Attribution struct {
	// Reporter is the verified organisational domain (the organisation
	// name for ReporterFileName), "" when unverified.
	Reporter string
	Method   ReporterMethod
	// Mismatch, when not empty, says why the organization-name does not
	// belong to Reporter ("Google Inc." signed by example.net).
	Mismatch string
}

// Verified says whether the report's reporter is proven: only then does
// it count for the verdict.
func (a Attribution) Verified() bool { return a.Method != ReporterUnverified }

// Attribute decides the reporter of r by the rules of docs/reporters.md, with t for posted reports. It does no network I/O: the
// DKIM result and the reverse name were established on receipt.
func Attribute(r *Received, t TrustTable) Attribution {
	var a Attribution
	contact := contactDomain(r)
	switch r.Source {
	case SourceIMAP:
		if r.DKIM != DKIMPass || r.DKIMDomain == "" {
			return a
		}
		from := r.From
		if addr, err := mail.ParseAddress(from); err == nil {
			from = addr.Address
		}
		at := strings.LastIndexByte(from, '@')
		if at < 0 {
			return a
		}
		f, g := OrgDomain(from[at+1:]), OrgDomain(r.DKIMDomain)
		if f == "" || f != g {
			return a
		}
		a.Reporter, a.Method = g, ReporterDKIM
	case SourceHTTPS:
		if r.RemoteAddr.IsValid() {
			ip := r.RemoteAddr.Unmap()
			for _, n := range t.Networks {
				if n.Prefix.Contains(ip) {
					a.Reporter, a.Method = OrgDomain(n.Reporter), ReporterNetwork
					if a.Reporter == "" {
						a.Reporter = strings.ToLower(n.Reporter)
					}
					break
				}
			}
		}
		if a.Method == ReporterUnverified && r.RemoteName != "" && contact != "" {
			host := OrgDomain(r.RemoteName)
			if host == contact {
				a.Reporter, a.Method = contact, ReporterReverseDNS
			} else {
				for _, h := range append(ShippedHostRules[:len(ShippedHostRules):len(ShippedHostRules)], t.Hosts...) {
					if OrgDomain(h.Reporter) == contact && host != "" && host == OrgDomain(h.HostDomain) {
						a.Reporter, a.Method = contact, ReporterReverseDNS
						break
					}
				}
			}
		}
	case SourceFile:
		if contact != "" {
			a.Reporter, a.Method = contact, ReporterFile
		} else if r.Report != nil && strings.TrimSpace(r.Report.OrganizationName) != "" {
			a.Reporter, a.Method = strings.TrimSpace(r.Report.OrganizationName), ReporterFileName
		}
	}
	if a.Method != ReporterUnverified && a.Method != ReporterFileName && r.Report != nil {
		a.Mismatch = NameMismatch(r.Report.OrganizationName, a.Reporter)
	}
	return a
}

// contactDomain is the organisational domain of the report's contact-info
// (an address, a mailto: or https: URI, or a bare domain), "" without one.
func contactDomain(r *Received) string {
	if r.Report == nil {
		return ""
	}
	c := strings.TrimSpace(r.Report.ContactInfo)
	c = strings.TrimPrefix(strings.TrimPrefix(c, "mailto:"), "https://")
	if at := strings.LastIndexByte(c, '@'); at >= 0 {
		c = c[at+1:]
	}
	if i := strings.IndexAny(c, "/?#>:, "); i >= 0 {
		c = c[:i]
	}
	return OrgDomain(c)
}

// OrgDomain is the organisational domain of name (its registrable part by
// the public suffix list), lower case; "" when name is not a domain under
// a public suffix.
func OrgDomain(name string) string {
	name = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(name)), ".")
	if name == "" || strings.ContainsAny(name, " @/\\\x00") {
		return ""
	}
	d, err := publicsuffix.EffectiveTLDPlusOne(name)
	if err != nil {
		return ""
	}
	return d
}

// knownNames are organization-names of large reporters and the domains
// they belong to: a report that claims one of them while signed by another
// domain is flagged. Matching is on the lower-cased name's first word.
var knownNames = map[string][]string{
	"google":    {"google.com"},
	"microsoft": {"microsoft.com", "outlook.com"},
	"yahoo":     {"yahoo.com", "yahoodns.net"},
	"mail.ru":   {"mail.ru"},
	"comcast":   {"comcast.net"},
	"apple":     {"apple.com", "icloud.com"},
	"proton":    {"proton.me", "protonmail.com", "protonmail.ch"},
	"fastmail":  {"fastmail.com", "messagingengine.com"},
	"gmx":       {"gmx.net", "gmx.de"},
	"web.de":    {"web.de"},
	"yandex":    {"yandex.ru", "yandex.net"},
	"zoho":      {"zoho.com"},
}

// NameMismatch says why organization name does not belong to the verified
// reporter domain, "" when it may: a name of a known provider signed by
// another domain, or a name that is itself a domain of another
// organisation.
func NameMismatch(name, reporter string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" || reporter == "" {
		return ""
	}
	first, _, _ := strings.Cut(n, " ")
	if doms, ok := knownNames[strings.TrimSuffix(first, ",")]; ok {
		for _, d := range doms {
			if d == reporter {
				return ""
			}
		}
		return "the name " + quoteName(name) + " belongs to " + doms[0] + ", not to " + reporter
	}
	if strings.Contains(first, ".") && !strings.ContainsAny(first, "@/") {
		if d := OrgDomain(first); d != "" && d != reporter {
			return "the name " + quoteName(name) + " is a domain of " + d + ", not of " + reporter
		}
	}
	return ""
}

func quoteName(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "\uFFFD") + `"`
}
