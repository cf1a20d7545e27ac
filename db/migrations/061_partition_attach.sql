-- At scale: creating a month's partitions must not block or deadlock the
-- readers. CREATE TABLE ... PARTITION OF takes an ACCESS EXCLUSIVE lock on
-- the parent; a verdict reading failure_details then reports, while a
-- store created the three partitions of a new month in the other order,
-- deadlocked (seen in the demo test). A table created on its own and then
-- attached takes only SHARE UPDATE EXCLUSIVE on the parent, which
-- conflicts with neither reads nor inserts. Retention detaches
-- CONCURRENTLY for the same reason (db/retention.go).
CREATE OR REPLACE FUNCTION tlsrpt_ensure_month(day date) RETURNS boolean
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
		IF NOT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = t::regclass
				AND inhrelid = to_regclass(t || '_' || suffix)) THEN
			-- A table of that name that is not attached is a leftover of
			-- a retention run that stopped between detach and drop.
			EXECUTE format('DROP TABLE IF EXISTS %I', t || '_' || suffix);
			EXECUTE format('CREATE TABLE %I (LIKE %I)', t || '_' || suffix, t);
			EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
				t, t || '_' || suffix, m, (m + interval '1 month')::date);
			created := true;
		END IF;
	END LOOP;
	RETURN created;
END
$$;
