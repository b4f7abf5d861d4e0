-- A job can be cancelled by its owner. The statuses are defined once, in chalicelib/domain.py (STATUSES); this
-- named CHECK lists the same values, and tests/integration/test_lifecycle.py compares it with the domain, the OpenAPI
-- enum and the processing page. The next status replaces uploads_status_check by its name.
--
-- 0001's status CHECK and 0004's report_owed CHECK were unnamed, so their names were made up by the server; they
-- are found here by the one column each constrains rather than by a guessed name, so this works on any database.
-- Safe on a live table: dropping a CHECK is a catalog change, and each new CHECK is added NOT VALID, so no row is
-- scanned while the table is locked (lock_timeout, set by the runner, bounds the wait for that lock). New and
-- updated rows are checked at once; every existing row already passed the old, narrower CHECK, which the new one
-- only widens, so a VALIDATE scan could not find a row to refuse.
DO $$
DECLARE
    old_check name;
BEGIN
    FOR old_check IN
        SELECT c.conname
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = 'uploads'::regclass AND c.contype = 'c' AND cardinality(c.conkey) = 1
          AND a.attname IN ('status', 'report_owed')
    LOOP
        EXECUTE format('ALTER TABLE uploads DROP CONSTRAINT %I', old_check);
    END LOOP;
END
$$;

ALTER TABLE uploads ADD CONSTRAINT uploads_status_check
    CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'expired', 'cancelled')) NOT VALID;

-- The events a job may still owe after a lost answer: its creation, its confirm, or now its cancel.
ALTER TABLE uploads ADD CONSTRAINT uploads_report_owed_check
    CHECK (report_owed IN ('created', 'confirmed', 'cancelled')) NOT VALID;
