-- One row per upload job. The session token itself is never stored: only its SHA-256 hex digest.
CREATE TABLE uploads (
    id                  text PRIMARY KEY,
    email               text NOT NULL,
    session_token_hash  text NOT NULL UNIQUE,
    original_url        text NOT NULL,
    file_type           text NOT NULL,
    file_size           bigint NOT NULL CHECK (file_size > 0),
    status              text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'expired')),
    idempotency_key     text UNIQUE,
    request_fingerprint text NOT NULL,
    result_url          text,
    preview_url         text,
    workflow_run_id     text,
    error_message       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    confirmed_at        timestamptz,
    expires_at          timestamptz
);

-- The abandoned-upload sweep looks for old unconfirmed pending jobs.
CREATE INDEX uploads_pending_unconfirmed_idx ON uploads (created_at)
    WHERE status = 'pending' AND confirmed_at IS NULL;
