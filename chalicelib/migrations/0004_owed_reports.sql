-- A create or confirm whose answer was lost (a timeout after the statement was sent) committed, but no event was
-- sent and the client saw a 503. This records which event the job still owes ('created' or 'confirmed'), so the
-- client's retry can answer as the first attempt would have and send that event exactly once.
ALTER TABLE uploads ADD COLUMN report_owed text CHECK (report_owed IN ('created', 'confirmed'));
