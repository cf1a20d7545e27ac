-- A watch episode belongs to the policy version it watches
-- (docs/publishing.md, "The watch"): a new version (a re-promote, a ramp)
-- closes the open episode of the one before and gets its own, even inside
-- one poll. NULL for episodes recorded before this column.
ALTER TABLE watch_episodes ADD COLUMN version_seq bigint;
