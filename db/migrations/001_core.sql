-- Core schema: reports as received, their policies and failure details,
-- the daily rollups kept in the same transaction as each insert, and the
-- operator's tables (domains, quarantine, ingest state, audit log).
-- See docs/store.md.

-- One row per report; the key is RFC 8460's identity of a report, so the
-- same report mailed twice, or POSTed and mailed, is stored once.
CREATE TABLE reports (
	id bigserial PRIMARY KEY,
	organization_name text NOT NULL,
	report_id text NOT NULL,
	start_time timestamptz NOT NULL,
	end_time timestamptz NOT NULL,
	-- The UTC day the range starts in: the day the report counts for.
	day date NOT NULL,
	contact_info text NOT NULL DEFAULT '',
	source text NOT NULL,
	source_ref text NOT NULL DEFAULT '',
	received_at timestamptz NOT NULL,
	stored_at timestamptz NOT NULL DEFAULT now(),
	message_id text NOT NULL DEFAULT '',
	from_address text NOT NULL DEFAULT '',
	submitter text NOT NULL DEFAULT '',
	dkim text NOT NULL DEFAULT 'none',
	dkim_domain text NOT NULL DEFAULT '',
	-- docs/reporters.md, decided once at insert.
	trusted boolean NOT NULL,
	-- The report JSON as received, gzip-compressed, for re-parsing after a
	-- parser fix.
	raw_gzip bytea NOT NULL,
	CONSTRAINT reports_identity UNIQUE (organization_name, report_id, start_time, end_time)
);
CREATE INDEX reports_day ON reports (day);
CREATE INDEX reports_start_id ON reports (start_time DESC, id DESC);

-- One row per entry of a report's policies list.
CREATE TABLE report_policies (
	id bigserial PRIMARY KEY,
	report_id bigint NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
	position integer NOT NULL,
	policy_type text NOT NULL,
	-- Lower case, without trailing dot; the original is in the raw JSON.
	policy_domain text NOT NULL,
	policy_strings text[] NOT NULL DEFAULT '{}',
	mx_hosts text[] NOT NULL DEFAULT '{}',
	successful bigint NOT NULL,
	failed bigint NOT NULL,
	UNIQUE (report_id, position)
);
CREATE INDEX report_policies_domain ON report_policies (policy_domain);

-- One row per failure detail. Addresses are inet where they parse as one;
-- the *_text column always keeps what the sender wrote.
CREATE TABLE failure_details (
	id bigserial PRIMARY KEY,
	report_id bigint NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
	policy_id bigint NOT NULL REFERENCES report_policies (id) ON DELETE CASCADE,
	position integer NOT NULL,
	result_type text NOT NULL,
	sending_mta_ip inet,
	sending_mta_ip_text text NOT NULL DEFAULT '',
	receiving_mx_hostname text NOT NULL DEFAULT '',
	receiving_mx_helo text NOT NULL DEFAULT '',
	receiving_ip inet,
	receiving_ip_text text NOT NULL DEFAULT '',
	failed_session_count bigint NOT NULL,
	additional_information text NOT NULL DEFAULT '',
	failure_reason_code text NOT NULL DEFAULT ''
);
CREATE INDEX failure_details_report ON failure_details (report_id);
CREATE INDEX failure_details_policy ON failure_details (policy_id);

-- Daily totals per policy domain, day, reporting organisation, policy type
-- and trust; reports counts each report once per key.
CREATE TABLE daily_policy_rollups (
	policy_domain text NOT NULL,
	day date NOT NULL,
	organization_name text NOT NULL,
	policy_type text NOT NULL,
	trusted boolean NOT NULL,
	reports bigint NOT NULL DEFAULT 0,
	successful bigint NOT NULL DEFAULT 0,
	failed bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (policy_domain, day, organization_name, policy_type, trusted)
);

-- Daily failed sessions per policy domain, day, result type, receiving MX
-- (lower case, '' when the sender named none) and trust.
CREATE TABLE daily_failure_rollups (
	policy_domain text NOT NULL,
	day date NOT NULL,
	result_type text NOT NULL,
	receiving_mx text NOT NULL,
	trusted boolean NOT NULL,
	failed bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (policy_domain, day, result_type, receiving_mx, trusted)
);

-- The operator's domains: reports for other policy domains are stored but
-- not counted in the overview, metrics and alerts.
CREATE TABLE domains (
	name text PRIMARY KEY,
	added_at timestamptz NOT NULL DEFAULT now()
);

-- Messages and bodies that held no valid report, kept for the operator.
CREATE TABLE quarantine (
	id bigserial PRIMARY KEY,
	sha256 bytea NOT NULL UNIQUE,
	raw bytea NOT NULL,
	reason text NOT NULL,
	source text NOT NULL,
	source_ref text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(),
	reprocessed_at timestamptz
);

-- IMAP progress per mailbox (RFC 9051 UIDVALIDITY and the last UID done).
CREATE TABLE ingest_state (
	mailbox text PRIMARY KEY,
	uid_validity bigint NOT NULL,
	last_uid bigint NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE audit_log (
	id bigserial PRIMARY KEY,
	at timestamptz NOT NULL DEFAULT now(),
	actor text NOT NULL,
	action text NOT NULL,
	domain text NOT NULL DEFAULT '',
	detail jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_domain_at ON audit_log (domain, at DESC);
