-- The ETag of the exact bytes the confirm checked: processing reads the object with If-Match on it, so a
-- replacement through a still-valid upload URL is refused by storage instead of processed.
ALTER TABLE uploads ADD COLUMN etag text;

-- Limits on creating jobs, one row per (scope, key): `key` is a SHA-256 digest of the client address or the
-- lower-cased email, never the value itself. `hits` holds the times of the admitted creates still in the window
-- (at most the limit's count), oldest first. The create's one statement updates the row with INSERT ... ON CONFLICT DO
-- UPDATE: its row lock serialises concurrent creates of one key, and the update always sees the latest hits.
CREATE TABLE rate_limits (
    scope       text NOT NULL CHECK (scope IN ('ip', 'email')),
    key         text NOT NULL,
    hits        timestamptz[] NOT NULL,
    admitted    boolean NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The hourly sweep removes rows whose every hit has left any window.
CREATE INDEX rate_limits_updated_at_idx ON rate_limits (updated_at);
