-- Backfill: every stored report adds about 9 rows to the daily rollups, and
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
