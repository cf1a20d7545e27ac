-- A reporter is a verified domain, not a name (docs/reporters.md). Each report keeps how its reporter was proven and from where it
-- was posted; the rollups that count reporters key them by that domain.
-- An operator can take a report back (excluded_*): its totals leave the
-- rollups, the row stays for the record.

ALTER TABLE reports
	ADD COLUMN reporter text NOT NULL DEFAULT '',
	ADD COLUMN reporter_method text NOT NULL DEFAULT '',
	ADD COLUMN name_mismatch text NOT NULL DEFAULT '',
	ADD COLUMN remote_addr inet,
	ADD COLUMN remote_name text NOT NULL DEFAULT '',
	ADD COLUMN excluded_at timestamptz,
	ADD COLUMN excluded_by text NOT NULL DEFAULT '',
	ADD COLUMN excluded_reason text NOT NULL DEFAULT '';

-- Reports stored before: mailed ones were trusted only with an aligned
-- DKIM signature, whose signing domain is the reporter; imported ones are
-- the operator's, named by contact-info (else by name). HTTPS posts were
-- trusted unverified; the new rule trusts them only with a verified
-- reverse name, which was never checked: their reporter stays unknown,
-- and the facts count such rows by name until they leave the window
-- (docs/reporters.md).
UPDATE reports SET reporter = lower(dkim_domain), reporter_method = 'dkim'
WHERE source = 'imap' AND trusted AND dkim_domain <> '';
UPDATE reports SET reporter = lower(regexp_replace(contact_info, '^(mailto:)?[^@]*@', '')), reporter_method = 'file'
WHERE source = 'file' AND contact_info LIKE '%@%';
UPDATE reports SET reporter = organization_name, reporter_method = 'file-name'
WHERE source = 'file' AND reporter = '';

-- Those posts still count in the rollups as trusted: DB.Migrate moves
-- each one's totals to the untrusted side (reattributeLegacy), found by
-- this index, which is empty once that is done.
CREATE INDEX reports_legacy_https ON reports (id) WHERE source = 'https' AND trusted AND reporter_method = '';

-- The rollups that count reporters: '' is a row stored before this
-- migration, counted by its organisation name.
ALTER TABLE daily_policy_rollups ADD COLUMN reporter text NOT NULL DEFAULT '';
ALTER TABLE daily_policy_rollups DROP CONSTRAINT daily_policy_rollups_pkey;
ALTER TABLE daily_policy_rollups ADD PRIMARY KEY (policy_domain, day, organization_name, policy_type, trusted, reporter);

ALTER TABLE daily_sender_rollups ADD COLUMN reporter text NOT NULL DEFAULT '';
ALTER TABLE daily_sender_rollups DROP CONSTRAINT daily_sender_rollups_pkey;
ALTER TABLE daily_sender_rollups ADD PRIMARY KEY (policy_domain, day, organization_name, sending_range, result_type, trusted, reporter);

DROP INDEX IF EXISTS daily_policy_rollups_cover;
CREATE INDEX daily_policy_rollups_cover ON daily_policy_rollups (policy_domain, day)
	INCLUDE (trusted, policy_type, organization_name, reporter, reports, successful, failed);

-- The operator's additions to the rules that verify a posted report's
-- reporter: a host domain whose verified reverse names may post the
-- reports of reporter, or a network whose posts are reports of reporter.
CREATE TABLE reporter_rules (
	id bigserial PRIMARY KEY,
	kind text NOT NULL CHECK (kind IN ('host', 'network')),
	reporter text NOT NULL,
	host_domain text NOT NULL DEFAULT '',
	network cidr,
	note text NOT NULL DEFAULT '',
	created_by text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(),
	CHECK ((kind = 'host') = (host_domain <> '') AND (kind = 'network') = (network IS NOT NULL))
);
CREATE UNIQUE INDEX reporter_rules_unique ON reporter_rules (kind, reporter, host_domain, coalesce(network, '0.0.0.0/32'::cidr));
