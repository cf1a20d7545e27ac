-- At scale: the overview reads a stored verdict badge per listed domain
-- instead of computing every verdict on every request (19 s for 1,000
-- listed domains; docs/bench-scale.md). The badge must never silently lie:
-- whatever changes a verdict's inputs leaves a row in
-- verdict_invalidations, in the transaction of the change, and a badge
-- with such a row is shown as "updating" until a refresher recomputes it
-- (db/verdict_cache.go). The other inputs are checked when reading: a
-- badge computed on an earlier UTC day is stale (the windows moved), a
-- listed domain without a badge has none yet.

-- One badge per listed domain: what the overview shows.
CREATE TABLE domain_verdicts (
	domain text PRIMARY KEY REFERENCES domains (name) ON DELETE CASCADE,
	-- ready, blocked, enforcing, regression, unknown (api badge()).
	kind text NOT NULL,
	label text NOT NULL,
	-- The first blocker or the regression, as the verdict words it.
	reason text NOT NULL DEFAULT '',
	-- The domain's mode as the overview shows it.
	mode text NOT NULL DEFAULT '',
	-- Sort key: the kinds that need attention first (0 regression ...).
	severity smallint NOT NULL,
	computed_at timestamptz NOT NULL,
	-- The UTC day the verdict's windows end at.
	computed_day date NOT NULL
);
CREATE INDEX domain_verdicts_severity ON domain_verdicts (severity, domain);

-- Append-only: the writers only insert (no unique key, so concurrent
-- stores touching one domain never wait for each other); the refresher
-- deletes the rows it saw before it reads the facts.
CREATE TABLE verdict_invalidations (
	id bigserial PRIMARY KEY,
	domain text NOT NULL,
	at timestamptz NOT NULL DEFAULT now(),
	cause text NOT NULL
);
CREATE INDEX verdict_invalidations_domain ON verdict_invalidations (domain);

-- New or more reports: every stored report adds to daily_policy_rollups in
-- the store's transaction (an INSERT ... ON CONFLICT DO UPDATE, which
-- fires the statement-level INSERT and UPDATE triggers with the inserted
-- and the updated rows). Only listed domains have badges.
CREATE FUNCTION tlsrpt_invalidate_rollups() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO verdict_invalidations (domain, cause)
	SELECT DISTINCT n.policy_domain, 'reports'
	FROM changed_rollups n JOIN domains d ON d.name = n.policy_domain;
	RETURN NULL;
END
$$;

-- A trigger with a transition table takes one event, hence three.
CREATE TRIGGER daily_policy_rollups_invalidate_insert
AFTER INSERT ON daily_policy_rollups
REFERENCING NEW TABLE AS changed_rollups
FOR EACH STATEMENT EXECUTE FUNCTION tlsrpt_invalidate_rollups();

CREATE TRIGGER daily_policy_rollups_invalidate_update
AFTER UPDATE ON daily_policy_rollups
REFERENCING NEW TABLE AS changed_rollups
FOR EACH STATEMENT EXECUTE FUNCTION tlsrpt_invalidate_rollups();

CREATE TRIGGER daily_policy_rollups_invalidate_delete
AFTER DELETE ON daily_policy_rollups
REFERENCING OLD TABLE AS changed_rollups
FOR EACH STATEMENT EXECUTE FUNCTION tlsrpt_invalidate_rollups();

-- A published, rolled-back or retired policy version: the verdict takes a
-- published version as the current policy (api verdictWithCheck). The
-- verification poll rewrites last_steps every minute; only the columns
-- the verdict reads invalidate.
CREATE FUNCTION tlsrpt_invalidate_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO verdict_invalidations (domain, cause) VALUES (NEW.domain, 'policy version');
	RETURN NULL;
END
$$;

CREATE TRIGGER policy_versions_invalidate_insert
AFTER INSERT ON policy_versions
FOR EACH ROW EXECUTE FUNCTION tlsrpt_invalidate_version();

CREATE TRIGGER policy_versions_invalidate_update
AFTER UPDATE ON policy_versions
FOR EACH ROW
WHEN (OLD.policy_published_at IS DISTINCT FROM NEW.policy_published_at
	OR OLD.mode IS DISTINCT FROM NEW.mode OR OLD.mx IS DISTINCT FROM NEW.mx
	OR OLD.max_age IS DISTINCT FROM NEW.max_age OR OLD.policy_id IS DISTINCT FROM NEW.policy_id
	OR OLD.domain IS DISTINCT FROM NEW.domain)
EXECUTE FUNCTION tlsrpt_invalidate_version();

-- Changed per-domain thresholds.
CREATE FUNCTION tlsrpt_invalidate_settings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'DELETE' THEN
		INSERT INTO verdict_invalidations (domain, cause) VALUES (OLD.domain, 'thresholds');
	ELSE
		INSERT INTO verdict_invalidations (domain, cause) VALUES (NEW.domain, 'thresholds');
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER domain_settings_invalidate
AFTER INSERT OR UPDATE OR DELETE ON domain_settings
FOR EACH ROW EXECUTE FUNCTION tlsrpt_invalidate_settings();
