-- At scale: the domain page (365 days), the overview's sparklines and the
-- verdict read a domain's rows of the daily rollups over a window. The
-- rows of one domain are spread over the heap one page per day (reports
-- arrive day by day for every domain), so a 365-day read of a domain not
-- in PostgreSQL's cache was 371-382 random page reads per rollup (20-45 ms
-- each on the 1,000-domain store). These indexes hold the columns those
-- reads need, ordered by domain and day, so they are index-only scans of
-- a few pages (8 and 22 pages for the same reads; docs/bench-scale.md).
-- Index-only scans need the visibility map, which autovacuum keeps (the
-- rollups are insert-mostly: only the newest days change).
--
-- Cost: about 90 MB, 430 MB and 70 MB on that store (a quarter to a third
-- of each table), and one more index entry per new or updated rollup row.

CREATE INDEX IF NOT EXISTS daily_policy_rollups_cover ON daily_policy_rollups (policy_domain, day)
	INCLUDE (trusted, policy_type, organization_name, reports, successful, failed);

CREATE INDEX IF NOT EXISTS daily_failure_rollups_cover ON daily_failure_rollups (policy_domain, day)
	INCLUDE (trusted, result_type, receiving_mx, failed);

CREATE INDEX IF NOT EXISTS daily_mode_rollups_cover ON daily_mode_rollups (policy_domain, day)
	INCLUDE (trusted, mode, last_policy_id);
