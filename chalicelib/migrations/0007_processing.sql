-- A confirmed job is handed to the processing service (chalicelib/worker.py) and moves on to completed or failed.
-- Every step the worker takes is one conditional UPDATE on these columns, scoped to the job's current `attempt`
-- (a retry starts a new one), so a duplicate or late message of an earlier step or attempt changes nothing.
-- `workflow_run_id`, `preview_url`, `result_url` (storage keys in our bucket, like `original_url`) and
-- `error_message` exist since 0001.
ALTER TABLE uploads
    ADD COLUMN attempt smallint NOT NULL DEFAULT 1,
    ADD COLUMN progress smallint,
    ADD COLUMN error_code text,
    -- When the job was last sent to the queue (the confirm, a retry, the dispatcher); a confirmed job not taken
    -- within a bound of it is sent again.
    ADD COLUMN dispatched_at timestamptz,
    ADD COLUMN processing_started_at timestamptz,
    -- The last time a worker asked the processing service about the job: one poll at a time, and a job nobody
    -- polled within a bound is polled again by the dispatcher.
    ADD COLUMN polled_at timestamptz,
    ADD COLUMN completed_at timestamptz,
    -- Results, preview and original removed after the results' retention.
    ADD COLUMN results_deleted_at timestamptz;

ALTER TABLE uploads ADD CONSTRAINT uploads_progress_check CHECK (progress BETWEEN 0 AND 100) NOT VALID;
ALTER TABLE uploads ADD CONSTRAINT uploads_attempt_check CHECK (attempt >= 1) NOT VALID;

-- The dispatcher's and the sweep's look at confirmed jobs still on their way.
CREATE INDEX uploads_in_flight_idx ON uploads (updated_at)
    WHERE confirmed_at IS NOT NULL AND status IN ('pending', 'processing');
-- The retention sweep of finished jobs' results.
CREATE INDEX uploads_finished_results_idx ON uploads (updated_at)
    WHERE status IN ('completed', 'failed') AND results_deleted_at IS NULL;
