-- The MTA-STS policies tlsrpt published for a domain (docs/publishing.md),
-- newest last: every promote, rollback, retirement and mx move is a new row
-- with a new policy id (RFC 8461 §3.1: senders refetch only on a new id),
-- who made it, why, and the verdict evidence at that moment. The publishing
-- steps are columns: the policy file first (hosted by tlsrpt, or handed
-- over as a download), then the _mta-sts TXT record (RFC 2136, a provider
-- API, or by hand), then the verification that the live state equals the
-- version.
CREATE TABLE policy_versions (
	seq bigserial PRIMARY KEY,
	domain text NOT NULL,
	-- promote, rollback, retire or mx-move.
	kind text NOT NULL,
	mode text NOT NULL CHECK (mode IN ('none', 'testing', 'enforce')),
	mx text[] NOT NULL DEFAULT '{}',
	max_age bigint NOT NULL CHECK (max_age >= 0 AND max_age <= 31557600),
	policy_id text NOT NULL,
	-- The policy file exactly as published (rollout.Policy.String).
	body text NOT NULL,
	-- The longest max_age published before this version: senders may hold
	-- the old policy that long (retirement, mx moves).
	prev_max_age bigint NOT NULL DEFAULT 0,
	created_by text NOT NULL,
	reason text NOT NULL DEFAULT '',
	-- The verdict was blocked and an admin overrode it.
	override boolean NOT NULL DEFAULT false,
	evidence jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	-- hosted (served by tlsrpt at once) or download (the operator hosts it).
	policy_method text NOT NULL,
	policy_published_at timestamptz,
	-- rfc2136, cloudflare, hetzner or manual.
	record_method text NOT NULL,
	record_published_at timestamptz,
	record_error text NOT NULL DEFAULT '',
	verified_at timestamptz,
	-- The steps of the last verification poll (rollout.Step list).
	last_steps jsonb NOT NULL DEFAULT '[]',
	last_checked_at timestamptz,
	-- An id is never used twice for a domain.
	UNIQUE (domain, policy_id)
);
CREATE INDEX policy_versions_domain ON policy_versions (domain, seq DESC);

-- Regression episodes of the post-enforce watch: one open row per domain
-- while the regression lasts, so it notifies once per episode.
CREATE TABLE watch_episodes (
	id bigserial PRIMARY KEY,
	domain text NOT NULL,
	opened_at timestamptz NOT NULL,
	closed_at timestamptz,
	notified_at timestamptz,
	notify_error text NOT NULL DEFAULT '',
	detail jsonb NOT NULL DEFAULT '{}'
);
CREATE UNIQUE INDEX watch_episodes_open ON watch_episodes (domain) WHERE closed_at IS NULL;
