-- The readiness verdict (rollout.Evaluate, docs/verdict.md): per-domain
-- thresholds, and two more daily rollups so that gathering a domain's facts
-- reads rows per day of the window, never the domain's raw history (so its
-- cost follows the window).

-- Per-domain thresholds of the verdict. NULL means the default of
-- rollout.DefaultThresholds (docs/verdict.md); the column
-- names are the JSON names of rollout.Thresholds.
CREATE TABLE domain_settings (
	domain text PRIMARY KEY,
	min_days integer,
	min_report_days integer,
	min_reporters integer,
	min_sessions bigint,
	max_failure_rate double precision,
	recent_days integer,
	rising_days integer,
	rising_base_days integer,
	rising_factor double precision,
	min_rising_failures bigint,
	regression_base_days integer,
	enforce_max_age bigint,
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- The mode a policy-string names ('' when none does): the first
-- "mode: x" line, case-insensitive. Some senders put several lines in one
-- string, so the strings are joined with line ends and matched line by
-- line ((?n): ^ matches after each newline).
CREATE FUNCTION tlsrpt_policy_mode(lines text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT coalesce(lower(substring(array_to_string(lines, E'\n')
		FROM '(?in)^[ \t]*mode[ \t]*:[ \t]*([a-z]*)')), '')
$$;

-- The sending range a failure is grouped by for the sender-side rule
-- (rollout.SenderRange): the /24 of an IPv4 address (also when written as
-- IPv4-mapped IPv6), the /64 of an IPv6 address, '' for none.
CREATE FUNCTION tlsrpt_sender_range(ip inet) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
	SELECT CASE
		WHEN ip IS NULL THEN ''
		WHEN family(ip) = 4 THEN network(set_masklen(ip, 24))::text
		WHEN ip << '::ffff:0.0.0.0/96'::inet
			THEN network(set_masklen(substr(host(ip), 8)::inet, 24))::text
		ELSE network(set_masklen(ip, 64))::text
	END
$$;

-- Reports of sts policies per policy domain, day, the mode their
-- policy-string names, and trust; last_policy_id is the newest
-- report_policies row of the key (to read the whole policy back).
CREATE TABLE daily_mode_rollups (
	policy_domain text NOT NULL,
	day date NOT NULL,
	mode text NOT NULL,
	trusted boolean NOT NULL,
	reports bigint NOT NULL DEFAULT 0,
	last_policy_id bigint NOT NULL,
	PRIMARY KEY (policy_domain, day, mode, trusted)
);

-- Failed sessions per policy domain, day, reporting organisation, sending
-- range, result type and trust; last_detail_id is the newest failure
-- detail of the key, the example the verdict shows.
CREATE TABLE daily_sender_rollups (
	policy_domain text NOT NULL,
	day date NOT NULL,
	organization_name text NOT NULL,
	sending_range text NOT NULL,
	result_type text NOT NULL,
	trusted boolean NOT NULL,
	failed bigint NOT NULL DEFAULT 0,
	last_detail_id bigint NOT NULL,
	PRIMARY KEY (policy_domain, day, organization_name, sending_range, result_type, trusted)
);

-- Both rollups are kept by statement-level triggers, in the transaction of
-- the insert like the core rollups: one grouped upsert per INSERT or COPY
-- statement, whatever its size. Rows are upserted in key order so that
-- concurrent stores lock them in the same order. A transition table has no
-- statistics, and the planner would hash-join it with all of reports and
-- report_policies, a cost that grows with the history (190 ms for a batch
-- of 1,000 details over 10,000 stored reports); nested loops over the
-- primary keys keep it proportional to the batch (18 ms).
CREATE FUNCTION tlsrpt_mode_rollup() RETURNS trigger
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
	INSERT INTO daily_mode_rollups AS m (policy_domain, day, mode, trusted, reports, last_policy_id)
	SELECT n.policy_domain, r.day, tlsrpt_policy_mode(n.policy_strings), r.trusted,
		count(DISTINCT n.report_id), max(n.id)
	FROM new_policies n JOIN reports r ON r.id = n.report_id
	WHERE n.policy_type = 'sts'
	GROUP BY 1, 2, 3, 4
	ORDER BY 1, 2, 3, 4
	ON CONFLICT (policy_domain, day, mode, trusted) DO UPDATE
	SET reports = m.reports + EXCLUDED.reports,
		last_policy_id = greatest(m.last_policy_id, EXCLUDED.last_policy_id);
	RETURN NULL;
END
$$;

CREATE TRIGGER report_policies_mode_rollup
AFTER INSERT ON report_policies
REFERENCING NEW TABLE AS new_policies
FOR EACH STATEMENT EXECUTE FUNCTION tlsrpt_mode_rollup();

CREATE FUNCTION tlsrpt_sender_rollup() RETURNS trigger
LANGUAGE plpgsql SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
	INSERT INTO daily_sender_rollups AS s (policy_domain, day, organization_name, sending_range,
		result_type, trusted, failed, last_detail_id)
	SELECT p.policy_domain, r.day, r.organization_name, tlsrpt_sender_range(n.sending_mta_ip),
		n.result_type, r.trusted, sum(n.failed_session_count), max(n.id)
	FROM new_details n
	JOIN report_policies p ON p.id = n.policy_id
	JOIN reports r ON r.id = n.report_id
	GROUP BY 1, 2, 3, 4, 5, 6
	ORDER BY 1, 2, 3, 4, 5, 6
	ON CONFLICT (policy_domain, day, organization_name, sending_range, result_type, trusted) DO UPDATE
	SET failed = s.failed + EXCLUDED.failed,
		last_detail_id = greatest(s.last_detail_id, EXCLUDED.last_detail_id);
	RETURN NULL;
END
$$;

CREATE TRIGGER failure_details_sender_rollup
AFTER INSERT ON failure_details
REFERENCING NEW TABLE AS new_details
FOR EACH STATEMENT EXECUTE FUNCTION tlsrpt_sender_rollup();

-- Reports stored before this migration.
INSERT INTO daily_mode_rollups (policy_domain, day, mode, trusted, reports, last_policy_id)
SELECT p.policy_domain, r.day, tlsrpt_policy_mode(p.policy_strings), r.trusted,
	count(DISTINCT p.report_id), max(p.id)
FROM report_policies p JOIN reports r ON r.id = p.report_id
WHERE p.policy_type = 'sts'
GROUP BY 1, 2, 3, 4;

INSERT INTO daily_sender_rollups (policy_domain, day, organization_name, sending_range,
	result_type, trusted, failed, last_detail_id)
SELECT p.policy_domain, r.day, r.organization_name, tlsrpt_sender_range(f.sending_mta_ip),
	f.result_type, r.trusted, sum(f.failed_session_count), max(f.id)
FROM failure_details f
JOIN report_policies p ON p.id = f.policy_id
JOIN reports r ON r.id = f.report_id
GROUP BY 1, 2, 3, 4, 5, 6;
