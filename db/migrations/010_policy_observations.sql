-- The MTA-STS policy bodies the live inspector (rollout.Inspector, "tlsrpt
-- check") has seen, per domain and policy id, so that a policy edited
-- without a new id is noticed (problem id-not-changed): senders that
-- cached the old body refetch only when the id changes (RFC 8461 §3.1).
-- Bodies are stored in their canonical form (rollout.Policy.String) when
-- they parse, else as served (at most 64 KiB).
CREATE TABLE policy_observations (
	domain text NOT NULL,
	policy_id text NOT NULL,
	first_body text NOT NULL,
	last_body text NOT NULL,
	first_seen timestamptz NOT NULL,
	last_seen timestamptz NOT NULL,
	PRIMARY KEY (domain, policy_id)
);
