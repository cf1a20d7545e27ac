-- Security issue (bounded intake): any unparseable body up to the 10 MiB
-- POST limit, or a mail up to 32 MiB, was kept whole in the quarantine:
-- 10 junk posts added 100 MB. A body over db.QuarantineKeepBytes is now
-- kept as its first 64 KiB with the SHA-256 (sha256, of the whole body)
-- and the size of the whole; once the quarantine holds its cap of bytes,
-- new entries keep no bytes at all. truncated says why raw is not the
-- whole input ('' when it is): such an entry is shown as truncated and
-- cannot be reprocessed.
ALTER TABLE quarantine ADD COLUMN size bigint;
UPDATE quarantine SET size = octet_length(raw);
ALTER TABLE quarantine ALTER COLUMN size SET NOT NULL;
ALTER TABLE quarantine ADD COLUMN truncated text NOT NULL DEFAULT '';

-- The retention deletes by age, and the page lists newest first.
CREATE INDEX quarantine_created_at ON quarantine (created_at, id);
