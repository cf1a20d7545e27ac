-- At scale: the overview lists the domains with reports in the last 30
-- days that nobody added (UnlistedDomains), filtering daily_policy_rollups
-- by day alone; its primary key starts with policy_domain, so without this
-- index that read was a scan of the whole rollup history (466 ms at 100
-- domains × 10 years under load, 10 ms with it; docs/bench-scale.md).
CREATE INDEX daily_policy_rollups_day ON daily_policy_rollups (day);
