package reports

import (
	"net/netip"
	"testing"
)

func TestAttribute(t *testing.T) {
	rep := func(org, contact string) *Report { return &Report{OrganizationName: org, ContactInfo: contact} }
	ip := netip.MustParseAddr("192.0.2.7")
	table := TrustTable{
		Hosts:    []HostRule{{Reporter: "example.net", HostDomain: "example-hosting.org"}},
		Networks: []NetworkRule{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Reporter: "relay.corp.example"}},
	}
	tests := []struct {
		name     string
		r        Received
		reporter string
		method   ReporterMethod
		mismatch bool
	}{
		{"mail, aligned DKIM", Received{Source: SourceIMAP, DKIM: DKIMPass, DKIMDomain: "google.com", From: "noreply-smtp-tls-reporting@google.com", Report: rep("Google Inc.", "smtp-tls-reporting@google.com")}, "google.com", ReporterDKIM, false},
		{"mail, subdomain signer", Received{Source: SourceIMAP, DKIM: DKIMPass, DKIMDomain: "mail.example.co.uk", From: "Reports <tlsrpt@example.co.uk>", Report: rep("Example", "")}, "example.co.uk", ReporterDKIM, false},
		{"mail, signer not aligned", Received{Source: SourceIMAP, DKIM: DKIMPass, DKIMDomain: "evil.example", From: "tlsrpt@google.com", Report: rep("Google Inc.", "")}, "", ReporterUnverified, false},
		{"mail, DKIM failed", Received{Source: SourceIMAP, DKIM: DKIMFail, DKIMDomain: "google.com", From: "tlsrpt@google.com", Report: rep("Google Inc.", "")}, "", ReporterUnverified, false},
		{"mail, forged name", Received{Source: SourceIMAP, DKIM: DKIMPass, DKIMDomain: "example.net", From: "r@example.net", Report: rep("Google Inc.", "x@example.net")}, "example.net", ReporterDKIM, true},
		{"mail, name is another domain", Received{Source: SourceIMAP, DKIM: DKIMPass, DKIMDomain: "example.net", From: "r@example.net", Report: rep("mail.example.org", "")}, "example.net", ReporterDKIM, true},
		{"https, no reverse name", Received{Source: SourceHTTPS, RemoteAddr: ip, Report: rep("Google Inc.", "smtp-tls-reporting@google.com")}, "", ReporterUnverified, false},
		{"https, reverse name under contact-info", Received{Source: SourceHTTPS, RemoteAddr: ip, RemoteName: "mail-a.google.com", Report: rep("Google Inc.", "smtp-tls-reporting@google.com")}, "google.com", ReporterReverseDNS, false},
		{"https, reverse name elsewhere", Received{Source: SourceHTTPS, RemoteAddr: ip, RemoteName: "host.attacker.example", Report: rep("Google Inc.", "smtp-tls-reporting@google.com")}, "", ReporterUnverified, false},
		{"https, shipped host rule", Received{Source: SourceHTTPS, RemoteAddr: ip, RemoteName: "mail-bn1on0065.outbound.protection.outlook.com", Report: rep("Microsoft Corporation", "tlsrpt-noreply@microsoft.com")}, "microsoft.com", ReporterReverseDNS, false},
		{"https, host rule of another reporter", Received{Source: SourceHTTPS, RemoteAddr: ip, RemoteName: "x.outbound.protection.outlook.com", Report: rep("Google Inc.", "smtp-tls-reporting@google.com")}, "", ReporterUnverified, false},
		{"https, operator host rule", Received{Source: SourceHTTPS, RemoteAddr: ip, RemoteName: "a.example-hosting.org", Report: rep("Example", "mailto:tls@example.net")}, "example.net", ReporterReverseDNS, false},
		{"https, operator network", Received{Source: SourceHTTPS, RemoteAddr: netip.MustParseAddr("198.51.100.9"), Report: rep("Corp", "")}, "corp.example", ReporterNetwork, false},
		{"https, mapped address in network", Received{Source: SourceHTTPS, RemoteAddr: netip.MustParseAddr("::ffff:198.51.100.9"), Report: rep("Corp", "")}, "corp.example", ReporterNetwork, false},
		{"file, contact-info", Received{Source: SourceFile, Report: rep("Mail.ru", "tls_support@corp.mail.ru")}, "mail.ru", ReporterFile, false},
		{"file, no contact-info", Received{Source: SourceFile, Report: rep("Company-X", "")}, "Company-X", ReporterFileName, false},
	}
	for _, tt := range tests {
		a := Attribute(&tt.r, table)
		if a.Reporter != tt.reporter || a.Method != tt.method || (a.Mismatch != "") != tt.mismatch {
			t.Errorf("%s: Attribute() = %+v, want reporter %q method %q mismatch %v", tt.name, a, tt.reporter, tt.method, tt.mismatch)
		}
	}
}

func TestNameMismatch(t *testing.T) {
	for _, tt := range []struct {
		name, reporter string
		want           bool
	}{
		{"Google Inc.", "google.com", false},
		{"Google Inc.", "example.net", true},
		{"Microsoft Corporation", "microsoft.com", false},
		{"Microsoft Corporation", "example.net", true},
		{"Yahoo", "example.net", true},
		{"Mail.ru", "mail.ru", false},
		{"Mail.ru", "example.net", true},
		{"Company-X", "company-x.example", false},
		{"", "example.net", false},
	} {
		if got := NameMismatch(tt.name, tt.reporter) != ""; got != tt.want {
			t.Errorf("NameMismatch(%q, %q) = %v, want %v", tt.name, tt.reporter, got, tt.want)
		}
	}
}

// FuzzAttribute: any contact-info, name and reverse name give an
// attribution without panicking, and a verified one names a reporter.
func FuzzAttribute(f *testing.F) {
	f.Add("smtp-tls-reporting@google.com", "Google Inc.", "mail-a.google.com", "imap")
	f.Add("mailto:tls@example.net", "mail.example.org", "", "file")
	f.Add("https://example.net/report", "\x00\xff", "x.outbound.protection.outlook.com", "https")
	f.Fuzz(func(t *testing.T, contact, name, remoteName, src string) {
		r := Received{Source: Source(src), DKIM: DKIMPass, DKIMDomain: remoteName, From: contact, RemoteName: remoteName,
			RemoteAddr: netip.MustParseAddr("192.0.2.1"), Report: &Report{OrganizationName: name, ContactInfo: contact}}
		a := Attribute(&r, TrustTable{})
		if a.Verified() && a.Reporter == "" {
			t.Errorf("Attribute() = %+v: verified without a reporter", a)
		}
	})
}
