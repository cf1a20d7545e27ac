package publish

// Guide is one way to do a publishing step by hand: the menus of a DNS
// provider or the setup of a web server, as plain text (the pages escape
// it).
type Guide struct {
	Name  string
	Steps []string
	Note  string
}

// DNSProviderSteps are the menus of the DNS providers administrators ask
// about most (RFC-NOTES.md "DNS providers"). They move with redesigns; the
// page says so. Never written.
var DNSProviderSteps = []Guide{
	{Name: "INWX", Steps: []string{
		"Log in, open the Nameserver tab and pick the domain.",
		"Under DNS records choose \"Neuen Eintrag anlegen\" (new record).",
		"Type TXT, name _mta-sts, value as shown, TTL 3600; save.",
	}, Note: "Live in about 5 to 15 minutes."},
	{Name: "Strato", Steps: []string{
		"Open Domains, pick the domain and choose \"Verwalten\".",
		"Open the DNS settings, the TXT block under your own DNS management.",
		"Add a TXT record for _mta-sts with the value as shown; save.",
	}, Note: "Live in about 30 to 60 minutes."},
	{Name: "Hetzner", Steps: []string{
		"Open the DNS zone in the Hetzner Console (formerly the DNS console).",
		"Choose \"Add record\": type TXT, name _mta-sts (@ would be the apex), value as shown.",
		"Save. With an API token, tlsrpt can set it itself (TLSRPT_HETZNER_TOKEN).",
	}, Note: "Live in under 5 minutes."},
	{Name: "IONOS", Steps: []string{
		"Open \"Domains & SSL\" and pick the domain.",
		"Open DNS and choose \"Eintrag hinzufügen\" (add record), type TXT.",
		"Host name _mta-sts, value as shown; save.",
	}, Note: "Live in about 15 to 60 minutes."},
	{Name: "Cloudflare", Steps: []string{
		"Pick the domain, open DNS, Records, \"Add record\".",
		"Type TXT, name _mta-sts (@ would be the apex), content as shown; TXT records are never proxied (\"DNS only\").",
		"Save. With an API token, tlsrpt can set it itself (TLSRPT_CLOUDFLARE_TOKEN).",
	}, Note: "Live in under 2 minutes."},
	{Name: "Any other provider", Steps: []string{
		"Look for \"DNS management\", \"Zone editor\" or \"Records\".",
		"Add (or edit the existing) TXT record at _mta-sts.<domain> with the value as shown; there must be exactly one v=STSv1 record.",
		"Save, then use \"Verify now\" here; resolvers answer the old value until its TTL runs out.",
	}},
}

// HostingSteps say how to serve the policy file without tlsrpt's policy
// host.
func HostingSteps(domain string) []Guide {
	host := "mta-sts." + domain
	return []Guide{
		{Name: "nginx", Steps: []string{
			"Point " + host + " (A/AAAA or CNAME) at the web server and get a certificate for it (e.g. certbot --nginx -d " + host + ").",
			"Add a server block: server_name " + host + "; listen 443 ssl; location = /.well-known/mta-sts.txt { default_type text/plain; add_header Cache-Control \"max-age=300\"; alias /etc/nginx/mta-sts/" + domain + ".txt; } location / { return 404; }",
			"Copy the downloaded file to /etc/nginx/mta-sts/" + domain + ".txt and reload nginx.",
			"Check: curl -i https://" + host + "/.well-known/mta-sts.txt answers 200, text/plain, no redirect.",
		}},
		{Name: "Static host (Pages-style)", Steps: []string{
			"Create a project holding the file at .well-known/mta-sts.txt (keep the dot folder: some hosts drop it without a config entry).",
			"Add the custom domain " + host + " and let the host issue its certificate.",
			"Make sure the file is served as text/plain, with status 200 and without a redirect (no trailing-slash or www rules).",
		}, Note: "A host that redirects or serves text/html makes senders ignore the policy."},
	}
}
