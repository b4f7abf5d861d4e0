-- Idempotency-Keys are bearer credentials: with the body, a key replays the create and hands out a live token for
-- the job. From now on `uploads.idempotency_key` holds only a digest: `hmac:<hex>`, an HMAC-SHA256 under the
-- server's DIGEST_SECRET (written by the code), or `sha256:<hex>`, the plain SHA-256 this migration puts in place of
-- a key stored in clear (SQL has no access to the secret). The code matches both forms, upgrading a `sha256:` row to
-- `hmac:` when it is replayed; a `sha256:` row still pending is at most ABANDONED_AFTER_SECONDS old, and a key of our
-- client is a random UUID, whose plain SHA-256 cannot be inverted.

-- Code deployed before this migration keeps running for a minute or two after it and writes keys in clear: they
-- are turned into the same `sha256:` digest before they are stored (BEFORE triggers run before ON CONFLICT's
-- check, so that code's replays still find their row). To be dropped once no such code runs.
-- The trigger comes first: creating it waits for that code's writes in flight and then holds them off until this
-- migration commits, so none can commit a key in clear after the conversion below took its snapshot (such a row
-- would keep its key in clear, and the new code would never find it again), and none can deadlock with it (a replay
-- of that code waiting for a converted row while the trigger waits for the replay's table lock). The wait lasts as
-- long as the conversion, which touches only the keyed rows retention has not cleared yet.
CREATE FUNCTION uploads_digest_idempotency_key() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF NEW.idempotency_key IS NOT NULL AND NEW.idempotency_key !~ '^(hmac|sha256):[0-9a-f]{64}$' THEN
        NEW.idempotency_key := 'sha256:' || encode(sha256(convert_to(NEW.idempotency_key, 'UTF8')), 'hex');
    END IF;
    RETURN NEW;
END
$fn$;
CREATE TRIGGER uploads_digest_idempotency_key BEFORE INSERT OR UPDATE OF idempotency_key ON uploads
    FOR EACH ROW EXECUTE FUNCTION uploads_digest_idempotency_key();

UPDATE uploads SET idempotency_key = 'sha256:' || encode(sha256(convert_to(idempotency_key, 'UTF8')), 'hex')
WHERE idempotency_key IS NOT NULL;

-- Whether a create with this key replays a job (so counts against no rate limit). Racing sends of one new key
-- must be charged once: a statement's own snapshot cannot see a job a racing send committed after it began, so
-- this takes a lock on the key (held to the end of the transaction) and then looks with a fresh snapshot, which a
-- VOLATILE function's next query gets under READ COMMITTED. The second key space of advisory locks (two int4s)
-- never meets the migration runner's one-bigint lock.
CREATE FUNCTION upload_key_taken(digest text, legacy text) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $fn$
BEGIN
    IF digest IS NULL THEN
        RETURN false;
    END IF;
    PERFORM pg_advisory_xact_lock(36002026, hashtext(digest));
    RETURN EXISTS (SELECT 1 FROM uploads WHERE idempotency_key IN (digest, legacy));
END
$fn$;
