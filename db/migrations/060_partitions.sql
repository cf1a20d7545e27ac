-- At scale: reports, report_policies and failure_details partitioned by
-- month of the report's UTC day, so that retention drops a month of all
-- three at once instead of deleting rows (docs/store.md). Each table
-- carries day; primary keys become (id, day) and the identity of a report
-- (organization-name, report-id, range) gains day, which is a function of
-- start_time, so it is the same identity. The foreign keys between the
-- three go: PostgreSQL cannot keep them across partitions cheaply, they
-- cost a third of the insert's server time, and the store writes and
-- retention removes the rows of all three in one transaction.
--
-- The mode and sender rollups of 011 were kept by statement triggers that
-- joined the new rows back to reports; the store now adds them in Go in
-- the same transaction, with the rest of the rollups (db/reports_children.go),
-- reusing tlsrpt_policy_mode and tlsrpt_sender_range so the rows are the
-- same. A new daily rollup of failed sessions per sending IP feeds the
-- domain page's sending-IP breakdown.

DROP TRIGGER report_policies_mode_rollup ON report_policies;
DROP TRIGGER failure_details_sender_rollup ON failure_details;
DROP FUNCTION tlsrpt_mode_rollup();
DROP FUNCTION tlsrpt_sender_rollup();

-- The tables as of 050 move aside; their constraints and indexes go now so
-- that the new tables can take their names (the rows are copied below).
ALTER TABLE failure_details DROP CONSTRAINT failure_details_report_id_fkey,
	DROP CONSTRAINT failure_details_policy_id_fkey;
ALTER TABLE report_policies DROP CONSTRAINT report_policies_report_id_fkey;
ALTER TABLE failure_details DROP CONSTRAINT failure_details_pkey;
ALTER TABLE report_policies DROP CONSTRAINT report_policies_pkey,
	DROP CONSTRAINT report_policies_report_id_position_key;
ALTER TABLE reports DROP CONSTRAINT reports_pkey, DROP CONSTRAINT reports_identity;
DROP INDEX reports_day, reports_start_id, report_policies_domain, failure_details_report, failure_details_policy;
ALTER TABLE reports RENAME TO reports_050;
ALTER TABLE report_policies RENAME TO report_policies_050;
ALTER TABLE failure_details RENAME TO failure_details_050;
-- The sequences stay (ids keep growing from where they are) and move to
-- the new tables.
ALTER TABLE reports_050 ALTER COLUMN id DROP DEFAULT;
ALTER TABLE report_policies_050 ALTER COLUMN id DROP DEFAULT;
ALTER TABLE failure_details_050 ALTER COLUMN id DROP DEFAULT;
ALTER SEQUENCE reports_id_seq OWNED BY NONE;
ALTER SEQUENCE report_policies_id_seq OWNED BY NONE;
ALTER SEQUENCE failure_details_id_seq OWNED BY NONE;

CREATE TABLE reports (
	id bigint NOT NULL DEFAULT nextval('reports_id_seq'),
	organization_name text NOT NULL,
	report_id text NOT NULL,
	start_time timestamptz NOT NULL,
	end_time timestamptz NOT NULL,
	-- The UTC day the range starts in: the day the report counts for, and
	-- the partition key.
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
	trusted boolean NOT NULL,
	raw_gzip bytea NOT NULL
) PARTITION BY RANGE (day);

-- report_id and day name the report (no foreign key: see above).
CREATE TABLE report_policies (
	id bigint NOT NULL DEFAULT nextval('report_policies_id_seq'),
	report_id bigint NOT NULL,
	day date NOT NULL,
	position integer NOT NULL,
	policy_type text NOT NULL,
	policy_domain text NOT NULL,
	policy_strings text[] NOT NULL DEFAULT '{}',
	mx_hosts text[] NOT NULL DEFAULT '{}',
	successful bigint NOT NULL,
	failed bigint NOT NULL
) PARTITION BY RANGE (day);

CREATE TABLE failure_details (
	id bigint NOT NULL DEFAULT nextval('failure_details_id_seq'),
	report_id bigint NOT NULL,
	policy_id bigint NOT NULL,
	day date NOT NULL,
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
) PARTITION BY RANGE (day);

ALTER SEQUENCE reports_id_seq OWNED BY reports.id;
ALTER SEQUENCE report_policies_id_seq OWNED BY report_policies.id;
ALTER SEQUENCE failure_details_id_seq OWNED BY failure_details.id;

-- Retention (db/retention.go): the cutoff of the last run. Reports whose
-- day is before it arrive for a month already dropped and are refused.
CREATE TABLE retention_state (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	keep_days integer NOT NULL,
	cutoff date NOT NULL,
	ran_at timestamptz NOT NULL DEFAULT now()
);

-- tlsrpt_ensure_month creates the partitions of the month that day is in,
-- for the three tables, unless they exist. The store calls it before
-- inserting a month it has not seen (db/partitions.go); the advisory lock
-- serialises concurrent stores and instances, which would otherwise race
-- on the catalog. There is no DEFAULT partition: rows in it would block
-- creating their month later.
CREATE FUNCTION tlsrpt_ensure_month(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	m date := date_trunc('month', day)::date;
	suffix text := to_char(m, '"y"YYYY"m"MM');
	t text;
	created boolean := false;
BEGIN
	PERFORM pg_advisory_xact_lock(7596357174161459);
	-- A month that retention dropped stays dropped (SQLSTATE class 22:
	-- the store refuses the report, db.RejectedError).
	IF EXISTS (SELECT 1 FROM retention_state WHERE cutoff >= (m + interval '1 month')::date) THEN
		RAISE EXCEPTION 'month % is before the retention cutoff', to_char(m, 'YYYY-MM')
			USING ERRCODE = '22023';
	END IF;
	FOREACH t IN ARRAY ARRAY['reports', 'report_policies', 'failure_details'] LOOP
		IF to_regclass(t || '_' || suffix) IS NULL THEN
			EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
				t || '_' || suffix, t, m, (m + interval '1 month')::date);
			created := true;
		END IF;
	END LOOP;
	RETURN created;
END
$$;

SELECT tlsrpt_ensure_month(m) FROM (SELECT DISTINCT date_trunc('month', day)::date AS m FROM reports_050) months;

-- The rows of an existing install. Indexes are built after the copy, which
-- is faster than maintaining them row by row.
INSERT INTO reports (id, organization_name, report_id, start_time, end_time, day, contact_info, source,
	source_ref, received_at, stored_at, message_id, from_address, submitter, dkim, dkim_domain, trusted, raw_gzip)
SELECT id, organization_name, report_id, start_time, end_time, day, contact_info, source,
	source_ref, received_at, stored_at, message_id, from_address, submitter, dkim, dkim_domain, trusted, raw_gzip
FROM reports_050;
INSERT INTO report_policies (id, report_id, day, position, policy_type, policy_domain, policy_strings,
	mx_hosts, successful, failed)
SELECT p.id, p.report_id, r.day, p.position, p.policy_type, p.policy_domain, p.policy_strings,
	p.mx_hosts, p.successful, p.failed
FROM report_policies_050 p JOIN reports_050 r ON r.id = p.report_id;
INSERT INTO failure_details (id, report_id, policy_id, day, position, result_type, sending_mta_ip,
	sending_mta_ip_text, receiving_mx_hostname, receiving_mx_helo, receiving_ip, receiving_ip_text,
	failed_session_count, additional_information, failure_reason_code)
SELECT f.id, f.report_id, f.policy_id, r.day, f.position, f.result_type, f.sending_mta_ip,
	f.sending_mta_ip_text, f.receiving_mx_hostname, f.receiving_mx_helo, f.receiving_ip, f.receiving_ip_text,
	f.failed_session_count, f.additional_information, f.failure_reason_code
FROM failure_details_050 f JOIN reports_050 r ON r.id = f.report_id;
DROP TABLE failure_details_050, report_policies_050, reports_050;

-- Partitioned indexes: each partition gets its own, so reading a report by
-- id is one index probe per month kept (or one when the day is known).
ALTER TABLE reports ADD CONSTRAINT reports_pkey PRIMARY KEY (id, day);
ALTER TABLE reports ADD CONSTRAINT reports_identity UNIQUE (organization_name, report_id, start_time, end_time, day);
CREATE INDEX reports_day ON reports (day);
CREATE INDEX reports_start_id ON reports (start_time DESC, id DESC);
ALTER TABLE report_policies ADD CONSTRAINT report_policies_pkey PRIMARY KEY (id, day);
CREATE INDEX report_policies_report ON report_policies (report_id);
CREATE INDEX report_policies_domain ON report_policies (policy_domain);
ALTER TABLE failure_details ADD CONSTRAINT failure_details_pkey PRIMARY KEY (id, day);
-- A report's details are found through its policies (reports_read.go,
-- retention), so no index on failure_details.report_id.
CREATE INDEX failure_details_policy ON failure_details (policy_id);

-- Failed sessions per policy domain, day, sending IP (host() of the inet,
-- else the sender's text, '' when it named none) and trust: the domain
-- page's sending-IP breakdown reads this instead of the raw details. At
-- most 256 addresses (db.MaxSendingIPsPerDay) per domain, day and trust get a
-- row of their own (an attacker can report 100,000 addresses); the
-- failures of the others are summed under sending_ip '(other)'.
CREATE TABLE daily_ip_rollups (
	policy_domain text NOT NULL,
	day date NOT NULL,
	sending_ip text NOT NULL,
	trusted boolean NOT NULL,
	failed bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (policy_domain, day, trusted, sending_ip)
);

INSERT INTO daily_ip_rollups (policy_domain, day, sending_ip, trusted, failed)
SELECT policy_domain, day, CASE WHEN rn <= 256 THEN ip ELSE '(other)' END, trusted, sum(failed)
FROM (
	SELECT g.*, row_number() OVER (PARTITION BY policy_domain, day, trusted ORDER BY failed DESC, ip) AS rn
	FROM (
		SELECT p.policy_domain, f.day, coalesce(host(f.sending_mta_ip), f.sending_mta_ip_text) AS ip, r.trusted,
			sum(f.failed_session_count) AS failed
		FROM failure_details f
		JOIN report_policies p ON p.id = f.policy_id AND p.day = f.day
		JOIN reports r ON r.id = f.report_id AND r.day = f.day
		GROUP BY 1, 2, 3, 4
	) g
) ranked
GROUP BY 1, 2, 3, 4;

