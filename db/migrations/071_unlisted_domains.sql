-- At scale: the overview lists the domains that send reports but are not
-- on the allow-list. Reading them from daily_policy_rollups by day (050)
-- reads a row per reporting domain and day of the 30-day window, listed
-- or not: 30,000 rows for 1,000 domains, 55 ms cold, the largest part of
-- the paged overview (docs/bench-scale.md). This table keeps the newest
-- day of every policy domain that is not listed, so the overview reads the
-- few unlisted domains only, then their rollups by primary key.

CREATE TABLE unlisted_domains (
	domain text PRIMARY KEY,
	last_day date NOT NULL
);
CREATE INDEX unlisted_domains_last_day ON unlisted_domains (last_day DESC, domain);

-- The domains nobody listed, from the rollups stored so far.
INSERT INTO unlisted_domains (domain, last_day)
SELECT r.policy_domain, max(r.day) FROM daily_policy_rollups r
WHERE NOT EXISTS (SELECT 1 FROM domains d WHERE d.name = r.policy_domain)
GROUP BY r.policy_domain;

-- New rollup rows of unlisted domains move last_day on. The statement
-- triggers of 070 already see every changed rollup row; this one upserts
-- in key order (concurrent stores lock the rows in the same order) and
-- only when the day is newer. Listed domains, the common case, cost one
-- anti-join of the transition table.
CREATE FUNCTION tlsrpt_unlisted_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO unlisted_domains AS u (domain, last_day)
	SELECT n.policy_domain, max(n.day) FROM changed_rollups n
	WHERE NOT EXISTS (SELECT 1 FROM domains d WHERE d.name = n.policy_domain)
	GROUP BY 1 ORDER BY 1
	ON CONFLICT (domain) DO UPDATE SET last_day = EXCLUDED.last_day
	WHERE u.last_day < EXCLUDED.last_day;
	RETURN NULL;
END
$$;

CREATE TRIGGER daily_policy_rollups_unlisted_insert
AFTER INSERT ON daily_policy_rollups
REFERENCING NEW TABLE AS changed_rollups
FOR EACH STATEMENT EXECUTE FUNCTION tlsrpt_unlisted_rollups();

CREATE TRIGGER daily_policy_rollups_unlisted_update
AFTER UPDATE ON daily_policy_rollups
REFERENCING NEW TABLE AS changed_rollups
FOR EACH STATEMENT EXECUTE FUNCTION tlsrpt_unlisted_rollups();

-- Adding a domain takes it off this list; removing one puts it back with
-- the newest day of its rollups (its reports stay).
CREATE FUNCTION tlsrpt_unlisted_domains() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		DELETE FROM unlisted_domains WHERE domain = NEW.name;
	ELSE
		INSERT INTO unlisted_domains (domain, last_day)
		SELECT OLD.name, max(day) FROM daily_policy_rollups WHERE policy_domain = OLD.name
		HAVING max(day) IS NOT NULL
		ON CONFLICT (domain) DO UPDATE SET last_day = greatest(unlisted_domains.last_day, EXCLUDED.last_day);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER domains_unlisted
AFTER INSERT OR DELETE ON domains
FOR EACH ROW EXECUTE FUNCTION tlsrpt_unlisted_domains();
