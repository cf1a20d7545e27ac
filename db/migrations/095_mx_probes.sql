-- The daily STARTTLS probe of each listed domain's MX hosts (and
-- its policy host) is kept, so the dashboard shows the last probe and the
-- days left over time, and a certificate that starts failing or nears
-- expiry is noticed by comparing with the probe before. One row per probe:
-- the check as rollout.CheckResult JSON (bounded by the probe's limits: 10
-- hosts, 4 addresses each, a policy body of 64 KiB).
CREATE TABLE mx_probes (
	id bigserial PRIMARY KEY,
	domain text NOT NULL REFERENCES domains (name) ON DELETE CASCADE,
	probed_at timestamptz NOT NULL,
	-- Why it ran: "daily" or "request".
	cause text NOT NULL,
	result jsonb NOT NULL,
	-- What the alert comparison found, and whether a notification went out.
	alerts text[] NOT NULL DEFAULT '{}',
	notified_at timestamptz,
	notify_error text NOT NULL DEFAULT ''
);
CREATE INDEX mx_probes_domain_at ON mx_probes (domain, probed_at DESC);
