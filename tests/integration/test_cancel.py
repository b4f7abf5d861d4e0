"""Cancelling a job on the real database and the signature-checking local S3 server: the decision in one statement,
the object gone, and no upload URL outliving the cancelled job."""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import services
from chalicelib.errors import AlreadyConfirmed
from tests.helpers import put_object, upload_body
from tests.images import SMALL_PNG

CANCELLED = {"error": {"code": "UPLOAD_CANCELLED", "message": "This upload was cancelled. Please start a new upload."}}


def uploaded(api, key=None):
    job = api.create(upload_body(file_size=len(SMALL_PNG)), headers={"idempotency-key": key} if key else None).body
    assert put_object(job["uploadUrl"], SMALL_PNG, "image/png")[0] == 200
    return job


def row(db, upload_id):
    return db.run("SELECT status, confirmed_at IS NOT NULL, object_deleted_at IS NOT NULL FROM uploads WHERE id = :id",
                  id=upload_id)[0]


@pytest.fixture
def statements(live_deps, monkeypatch):
    """The statements the API sends, each one round trip (simple query protocol)."""
    sent = []
    run = live_deps.database.run

    def counted(statement, /, **params):
        sent.append(statement)
        return run(statement, **params)

    monkeypatch.setattr(live_deps.database, "run", counted)
    return sent


def test_a_cancel_decides_in_one_statement_deletes_the_object_and_everything_after_it_is_410(api, db, live_deps,
                                                                                            statements):
    key = f"cancel-{uuid.uuid4()}"
    job = uploaded(api, key=key)
    statements.clear()

    reply = api.cancel(job["uploadId"], job["sessionToken"])

    assert (reply.status, reply.body) == (204, {})
    assert len(statements) == 1
    assert row(db, job["uploadId"]) == ["cancelled", False, False]
    assert live_deps.storage.peek(job["key"], 8) is None
    assert (api.cancel(job["uploadId"], job["sessionToken"]).status, len(statements)) == (204, 2)
    for answer in (api.status(job["uploadId"], job["sessionToken"]), api.confirm(job["uploadId"], job["sessionToken"]),
                   api.create(upload_body(file_size=len(SMALL_PNG)), headers={"idempotency-key": key})):
        assert (answer.status, answer.body) == (410, CANCELLED)


def test_a_cancel_is_refused_for_a_confirmed_or_expired_job_and_for_a_wrong_token_or_id(api, db):
    confirmed, expired, other = uploaded(api), uploaded(api), uploaded(api)
    api.confirm(confirmed["uploadId"], confirmed["sessionToken"])
    db.run("UPDATE uploads SET status = 'expired' WHERE id = :id", id=expired["uploadId"])

    answers = [api.cancel(confirmed["uploadId"], confirmed["sessionToken"]),
               api.cancel(expired["uploadId"], expired["sessionToken"]),
               api.cancel(other["uploadId"], None),
               api.cancel(other["uploadId"], confirmed["sessionToken"]),
               api.cancel("zzzzzzzzzzzzzzzzzzzzzzzz", other["sessionToken"])]

    assert [(a.status, a.body["error"]["code"]) for a in answers] == [
        (409, "UPLOAD_ALREADY_CONFIRMED"), (410, "UPLOAD_EXPIRED"), (401, "MISSING_TOKEN"), (401, "INVALID_TOKEN"),
        (404, "UPLOAD_NOT_FOUND")]
    assert [row(db, job["uploadId"])[0] for job in (confirmed, expired, other)] == ["pending", "expired", "pending"]


def test_a_cancel_racing_a_confirm_leaves_the_job_either_cancelled_or_confirmed_never_both(api, db, live_deps):
    jobs = [uploaded(api) for _ in range(12)]
    deps = dict(uploads=live_deps.uploads, storage=live_deps.storage, analytics=live_deps.analytics)

    def outcome(step, job):
        try:
            result = step(job["uploadId"], job["sessionToken"], **deps)
            return "confirmed" if result is not None else "cancelled"
        except Exception as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(max_workers=4) as pool:
        cancels = [pool.submit(outcome, services.cancel_upload, job) for job in jobs]
        confirms = [pool.submit(outcome, services.confirm_upload, job) for job in jobs]
        pairs = [(cancel.result(), confirm.result()) for cancel, confirm in zip(cancels, confirms)]

    for job, pair in zip(jobs, pairs):
        status, confirmed, _ = row(db, job["uploadId"])
        if confirmed:
            assert (status, pair) == ("pending", (AlreadyConfirmed.__name__, "confirmed"))
        else:
            # The confirm lost at its UPDATE, or found the object already deleted by the cancel.
            assert (status, pair[0]) == ("cancelled", "cancelled")
            assert pair[1] in ("UploadCancelled", "UploadNotVerified")


def test_an_object_put_after_the_cancel_through_a_still_valid_url_is_removed_by_the_sweep_once_the_url_is_dead(
        db, live_deps):
    ttl = 3
    deps = dict(uploads=live_deps.uploads, storage=live_deps.storage, analytics=live_deps.analytics)
    job = services.create_upload(upload_body(file_size=len(SMALL_PNG)), None, max_upload_bytes=10 ** 6,
                                 url_ttl_seconds=ttl, abandoned_after_seconds=86400,
                                 digest_secret=live_deps.settings.digest_secret, **deps)
    services.cancel_upload(job.upload_id, job.session_token, **deps)

    def sweep():
        return services.expire_abandoned_uploads(uploads=live_deps.uploads, storage=live_deps.storage,
                                                 older_than_seconds=86400, url_ttl_seconds=ttl)

    assert put_object(job.upload_url, SMALL_PNG, "image/png")[0] == 200  # the URL outlived the cancel's delete
    sweep()
    assert live_deps.storage.peek(job.key, 8) is not None  # the URL may still put it back: not the last delete yet
    time.sleep(max(0.0, (job.expires_at.timestamp() + 1.5) - time.time()))

    assert put_object(job.upload_url, SMALL_PNG, "image/png")[0] == 403  # storage itself refuses the dead URL
    sweep()
    assert live_deps.storage.peek(job.key, 8) is None
    assert row(db, job.upload_id) == ["cancelled", False, True]
