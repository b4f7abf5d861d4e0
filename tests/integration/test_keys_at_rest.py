"""What the database keeps of a client's secrets and of an email: a keyed create leaves no key in any table, and
retention leaves nothing that tells two people's jobs apart (real PostgreSQL)."""

import hashlib
import uuid

from tests.helpers import stored_key, upload_body

# One statement renders every row of every table of the schema as text, as a dump would show it.
EVERY_ROW_AS_TEXT = ("SELECT string_agg(query_to_xml(format('SELECT * FROM %I.%I', schemaname, tablename),"
                     " true, false, '')::text, ' ') FROM pg_tables WHERE schemaname = 'public'")


def test_a_dump_of_the_database_after_a_keyed_create_does_not_contain_the_key(api, db):
    key = str(uuid.uuid4())

    created = api.create(upload_body(), headers={"idempotency-key": key})
    replayed = api.create(upload_body(), headers={"idempotency-key": key})
    dump = db.run(EVERY_ROW_AS_TEXT)[0][0]

    assert (created.status, replayed.status) == (201, 200)
    assert created.body["uploadId"] in dump and stored_key(key) in dump
    assert key not in dump and key.upper() not in dump
    # Nor a plain hash of it that a guess could be tested against.
    assert hashlib.sha256(key.encode()).hexdigest() not in dump


def test_after_retention_two_jobs_that_differ_only_in_the_email_are_identical_but_for_ids_and_timestamps(
        api, db, live_deps):
    jobs = [api.create(upload_body(email=f"retention-{uuid.uuid4().hex[:8]}@example.com"),
                       headers={"idempotency-key": str(uuid.uuid4())}).body for _ in range(2)]
    ids = [job["uploadId"] for job in jobs]
    # Expired a month ago, objects long deleted by the sweep.
    db.run("UPDATE uploads SET status = 'expired', updated_at = now() - interval '31 days',"
           " object_deleted_at = now() - interval '31 days' WHERE id IN (:a, :b)", a=ids[0], b=ids[1])

    cleared = live_deps.uploads.clear_old_emails(30)
    # Every column, as text. Left out: the ids (and the object key built from the id), the timestamps, and the
    # session token's hash, which is random per job and says nothing about its person.
    rows = db.run("SELECT (to_jsonb(u) - 'id' - 'original_url' - 'session_token_hash' - 'created_at' - 'updated_at'"
                  " - 'confirmed_at' - 'object_deleted_at')::text FROM uploads u WHERE id IN (:a, :b)",
                  a=ids[0], b=ids[1])

    assert cleared >= 2
    assert rows[0] == rows[1]
    assert '"email": ""' in rows[0][0] and '"idempotency_key": null' in rows[0][0]
    assert '"request_fingerprint": ""' in rows[0][0]
