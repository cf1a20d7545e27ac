-- The fleet autopilot (docs/autopilot.md): per-domain settings with a fleet
-- default, and one evaluation per domain per UTC day.
--
-- Settings: the row with domain '' is the fleet default; a domain's row
-- overrides it field by field (NULL: take the fleet default, then the
-- built-in one). Autopilot is off unless one of them turns it on.
CREATE TABLE autopilot_settings (
	domain text PRIMARY KEY,
	enabled boolean,
	-- Dry run: evaluate and write what would be done, change nothing.
	dry_run boolean,
	-- Consecutive ready daily evaluations before the promotion.
	ready_days integer CHECK (ready_days BETWEEN 1 AND 60),
	-- The max_age the ramp ends at (RFC 8461 §3.2 allows up to 31557600).
	final_max_age bigint CHECK (final_max_age BETWEEN 86400 AND 31557600),
	updated_at timestamptz NOT NULL DEFAULT now(),
	updated_by text NOT NULL DEFAULT ''
);

-- One evaluation per domain per UTC day: the unique key is what keeps
-- autopilot at one change per domain per day, whichever process runs it
-- (serve's loop, "tlsrpt autopilot run"). A dry-run row may be replaced by
-- a real evaluation of the same day, and a failed action may be retried;
-- a real evaluation that acted is final.
CREATE TABLE autopilot_evaluations (
	id bigserial PRIMARY KEY,
	domain text NOT NULL,
	day date NOT NULL,
	evaluated_at timestamptz NOT NULL,
	-- ready: nothing stands in the way of the next step; blocked: the
	-- blockers say what does.
	verdict text NOT NULL CHECK (verdict IN ('ready', 'blocked')),
	blockers jsonb NOT NULL DEFAULT '[]',
	-- The ramp stage when evaluated: 0 not in enforce, 1.. the stages.
	stage integer NOT NULL DEFAULT 0,
	-- promote, ramp, rollback (a change), or wait, pause, hold, none.
	action text NOT NULL,
	dry_run boolean NOT NULL DEFAULT false,
	-- What was done, or would be done and when ("would ramp on 2026-12-09").
	plan text NOT NULL DEFAULT '',
	-- The version the change made.
	version_id text NOT NULL DEFAULT '',
	error text NOT NULL DEFAULT '',
	evidence jsonb NOT NULL DEFAULT '{}',
	UNIQUE (domain, day)
);
CREATE INDEX autopilot_evaluations_day ON autopilot_evaluations (day DESC, domain);
