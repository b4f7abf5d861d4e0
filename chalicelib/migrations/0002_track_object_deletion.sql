-- The abandoned-upload sweep records when it removed an expired job's object, so a failed delete is retried.
ALTER TABLE uploads ADD COLUMN object_deleted_at timestamptz;

CREATE INDEX uploads_expired_with_object_idx ON uploads (updated_at)
    WHERE status = 'expired' AND object_deleted_at IS NULL;
