-- The email a finished job owes its person (chalicelib/worker.py, notify_job): when it became owed, each try's
-- lease or the time of the next try, how many tries were taken, and how it ended. One conditional UPDATE takes each
-- try, so a duplicate message sends nothing twice. None of these columns moves `updated_at`, which dates the
-- results' retention. Rows finished before this migration owe nothing (`email_due_at` stays NULL).
ALTER TABLE uploads
    ADD COLUMN email_due_at timestamptz,
    ADD COLUMN email_next_at timestamptz,
    ADD COLUMN email_tries smallint NOT NULL DEFAULT 0,
    ADD COLUMN email_sent_at timestamptz,
    ADD COLUMN email_given_up_at timestamptz,
    -- The read-only view credential the email links to: only its SHA-256 hex digest, like session_token_hash,
    -- and when it stops opening the job (with the results' retention).
    ADD COLUMN view_token_hash text,
    ADD COLUMN view_expires_at timestamptz;

-- The dispatcher's look at emails owed and not yet taken.
CREATE INDEX uploads_email_owed_idx ON uploads (email_due_at)
    WHERE email_due_at IS NOT NULL AND email_sent_at IS NULL AND email_given_up_at IS NULL;
