-- How each domain's policy versions are published (docs/publishing.md
-- "Settings"): shared by every process (serve, the CLI), so that a
-- rollback from a shell publishes the way serve does. The row with
-- domain '*' is the fleet default; a domain without a row of its own
-- uses it, and without it the built-in default (download, manual).
-- Secrets are never stored: credential is the NAME of one, read by each
-- process from TLSRPT_SECRET_<NAME> or the file TLSRPT_SECRET_<NAME>_FILE.
CREATE TABLE domain_publishing (
	domain text PRIMARY KEY CHECK (domain = '*' OR domain ~ '^[a-z0-9._-]{1,253}$'),
	-- rollout.PolicyHosted / PolicyDownload
	policy text NOT NULL CHECK (policy IN ('hosted', 'download')),
	-- rollout.RecordManual / RecordRFC2136 / RecordCloudflare / RecordHetzner
	record text NOT NULL CHECK (record IN ('manual', 'rfc2136', 'cloudflare', 'hetzner')),
	-- rfc2136: the primary's host:port
	server text NOT NULL DEFAULT '' CHECK (length(server) <= 300),
	-- the zone (a provider's zone id for cloudflare and hetzner); '' is the domain
	zone text NOT NULL DEFAULT '' CHECK (zone ~ '^[A-Za-z0-9._-]{0,253}$'),
	tsig_key text NOT NULL DEFAULT '' CHECK (tsig_key ~ '^[A-Za-z0-9._-]{0,253}$'),
	tsig_algorithm text NOT NULL DEFAULT '' CHECK (tsig_algorithm ~ '^[a-z0-9.-]{0,64}$'),
	credential text NOT NULL DEFAULT '' CHECK (credential ~ '^[A-Za-z0-9_]{0,64}$'),
	updated_at timestamptz NOT NULL,
	updated_by text NOT NULL DEFAULT '',
	-- the fields a method does not use are empty (db.Publishing.Validate)
	CHECK (record = 'rfc2136' OR (server = '' AND tsig_key = '' AND tsig_algorithm = '')),
	CHECK (record <> 'rfc2136' OR server <> ''),
	CHECK (record <> 'rfc2136' OR (tsig_key = '') = (credential = '')),
	CHECK (record NOT IN ('cloudflare', 'hetzner') OR credential <> ''),
	CHECK (record <> 'manual' OR (credential = '' AND zone = ''))
);
