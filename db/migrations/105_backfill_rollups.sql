-- Backfill, 1: every stored report adds about 9 rows to the daily rollups, and
-- each row was an entry in every index of its table: the primary key (the
-- upsert's arbiter) and, for the policy, failure and mode rollups, the
-- covering index of 072 (policy_domain, day) INCLUDE (...), which holds the
-- same columns again. The primary keys take those columns instead (INCLUDE:
-- not part of the key, so the upserts' arbiters are unchanged) and the
-- covering indexes go: the readers' index-only scans of a domain's window
-- become range scans of the primary key's (policy_domain, day) prefix, and
-- a stored report writes about 5 index entries fewer (docs/bench-import.md).

ALTER TABLE daily_policy_rollups DROP CONSTRAINT daily_policy_rollups_pkey;
ALTER TABLE daily_policy_rollups ADD CONSTRAINT daily_policy_rollups_pkey
	PRIMARY KEY (policy_domain, day, organization_name, policy_type, trusted, reporter)
	INCLUDE (reports, successful, failed);
DROP INDEX IF EXISTS daily_policy_rollups_cover;

ALTER TABLE daily_failure_rollups DROP CONSTRAINT daily_failure_rollups_pkey;
ALTER TABLE daily_failure_rollups ADD CONSTRAINT daily_failure_rollups_pkey
	PRIMARY KEY (policy_domain, day, result_type, receiving_mx, trusted)
	INCLUDE (failed);
DROP INDEX IF EXISTS daily_failure_rollups_cover;

ALTER TABLE daily_mode_rollups DROP CONSTRAINT daily_mode_rollups_pkey;
ALTER TABLE daily_mode_rollups ADD CONSTRAINT daily_mode_rollups_pkey
	PRIMARY KEY (policy_domain, day, mode, trusted)
	INCLUDE (reports, last_policy_id);
DROP INDEX IF EXISTS daily_mode_rollups_cover;

-- Backfill, 2: the unlisted-domains trigger of 071 upserted every unlisted domain of
-- every stored batch; ON CONFLICT DO UPDATE locks the row even when its
-- WHERE then keeps it, so concurrent stores of reports for the same
-- unlisted domains waited for each other's commit, and each lock was a
-- heap write and a WAL record: half the time of the policy rollup's
-- upsert in a backfill of unlisted domains (docs/bench-import.md). A
-- domain whose stored last_day is already as new is now left alone, read
-- without a lock: last_day only grows here, and the row leaves only when
-- the domain is listed (tlsrpt_unlisted_domains, which puts it back from
-- the rollups when it is unlisted again).
CREATE OR REPLACE FUNCTION tlsrpt_unlisted_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO unlisted_domains AS u (domain, last_day)
	SELECT n.policy_domain, max(n.day) FROM changed_rollups n
	WHERE NOT EXISTS (SELECT 1 FROM domains d WHERE d.name = n.policy_domain)
	GROUP BY 1
	HAVING NOT EXISTS (SELECT 1 FROM unlisted_domains x WHERE x.domain = n.policy_domain AND x.last_day >= max(n.day))
	ORDER BY 1
	ON CONFLICT (domain) DO UPDATE SET last_day = EXCLUDED.last_day
	WHERE u.last_day < EXCLUDED.last_day;
	RETURN NULL;
END
$$;
