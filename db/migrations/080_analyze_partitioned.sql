-- Planner statistics of the partitioned tables of 060 for an existing
-- install: autovacuum analyzes each month's partition but never the
-- partitioned parents (serve refreshes them daily: db.AnalyzePartitioned).
ANALYZE reports, report_policies, failure_details;
