"""The scheduled sweep of abandoned uploads, on the real database and storage."""

from concurrent.futures import ThreadPoolExecutor

from chalicelib import services
from tests.helpers import put_object, upload_body
from tests.images import SMALL_PNG


def age(db, upload_id, hours):
    db.run("UPDATE uploads SET created_at = now() - make_interval(hours => :h) WHERE id = :id", h=hours, id=upload_id)


def sweep(live_deps):
    return services.expire_abandoned_uploads(uploads=live_deps.uploads, storage=live_deps.storage,
                                             older_than_seconds=24 * 3600, url_ttl_seconds=900)


def test_old_unconfirmed_jobs_expire_and_lose_their_objects_and_nothing_else_changes(api, db, live_deps):
    old = api.create(upload_body(file_size=len(SMALL_PNG))).body
    put_object(old["uploadUrl"], SMALL_PNG, "image/png")
    recent = api.create(upload_body(file_size=len(SMALL_PNG))).body
    done = api.create(upload_body(file_size=len(SMALL_PNG))).body
    put_object(done["uploadUrl"], SMALL_PNG, "image/png")
    api.confirm(done["uploadId"], done["sessionToken"])
    for job in (old, done):
        age(db, job["uploadId"], 25)

    first = sweep(live_deps)
    second = sweep(live_deps)

    assert first["expired"] >= 1 and second == {"expired": 0, "objectsDeleted": 0}
    statuses = dict(db.run("SELECT id, status FROM uploads WHERE id IN (:a, :b, :c)",
                           a=old["uploadId"], b=recent["uploadId"], c=done["uploadId"]))
    assert statuses == {old["uploadId"]: "expired", recent["uploadId"]: "pending", done["uploadId"]: "pending"}
    assert live_deps.storage.peek(old["key"], 8) is None
    assert live_deps.storage.peek(done["key"], 8) is not None
    expired = api.confirm(old["uploadId"], old["sessionToken"])
    assert (expired.status, expired.body["error"]["code"]) == (410, "UPLOAD_EXPIRED")


def test_a_sweep_racing_confirms_never_expires_a_confirmed_job(api, db, live_deps):
    jobs = []
    for _ in range(20):
        body = api.create(upload_body(file_size=len(SMALL_PNG))).body
        put_object(body["uploadUrl"], SMALL_PNG, "image/png")
        age(db, body["uploadId"], 25)
        jobs.append(body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        sweeps = [pool.submit(sweep, live_deps) for _ in range(2)]
        confirms = [pool.submit(services.confirm_upload, job["uploadId"], job["sessionToken"],
                                uploads=live_deps.uploads, storage=live_deps.storage,
                                analytics=live_deps.analytics) for job in jobs]
        outcomes = []
        for future in confirms:
            try:
                outcomes.append(future.result().status)
            except Exception as exc:
                outcomes.append(type(exc).__name__)
        [s.result() for s in sweeps]

    rows = db.run("SELECT status, confirmed_at IS NOT NULL FROM uploads WHERE id = ANY(string_to_array(:ids, ','))",
                  ids=",".join(j["uploadId"] for j in jobs))
    assert all(row in (["pending", True], ["expired", False]) for row in rows), rows
    assert outcomes.count("pending") == sum(1 for row in rows if row == ["pending", True])
    assert set(outcomes) <= {"pending", "UploadExpired", "UploadNotVerified"}


def test_the_sweep_clears_emails_of_finished_jobs_after_their_retention_and_logs_a_heartbeat(api, db, live_deps):
    import io
    import json
    import logging

    kept_pending = api.create(upload_body(file_size=5)).body
    old_confirmed = api.create(upload_body(file_size=5)).body
    put_object(old_confirmed["uploadUrl"], b"12345", "image/png")
    api.confirm(old_confirmed["uploadId"], old_confirmed["sessionToken"])
    recent_confirmed = api.create(upload_body(file_size=5)).body
    put_object(recent_confirmed["uploadUrl"], b"12345", "image/png")
    api.confirm(recent_confirmed["uploadId"], recent_confirmed["sessionToken"])
    old_expired = api.create(upload_body(file_size=5)).body
    db.run("UPDATE uploads SET confirmed_at = now() - interval '31 days' WHERE id = :id", id=old_confirmed["uploadId"])
    db.run("UPDATE uploads SET status = 'expired', updated_at = now() - interval '31 days' WHERE id = :id",
           id=old_expired["uploadId"])
    age(db, kept_pending["uploadId"], 24 * 40)  # old but never finished: expired now, its email kept for now
    handler = next(h for h in logging.getLogger("chalicelib").handlers if h.filters)
    previous = handler.setStream(io.StringIO())
    try:
        summary = services.expire_abandoned_uploads(uploads=live_deps.uploads, storage=live_deps.storage,
                                                    older_than_seconds=24 * 3600, url_ttl_seconds=900,
                                                    email_retention_days=30)
        lines = [json.loads(line) for line in handler.stream.getvalue().splitlines()]
    finally:
        handler.setStream(previous)

    emails = dict(db.run("SELECT id, email FROM uploads WHERE id = ANY(string_to_array(:ids, ','))", ids=",".join(
        j["uploadId"] for j in (kept_pending, old_confirmed, recent_confirmed, old_expired))))
    assert emails == {kept_pending["uploadId"]: "maya@example.com", old_confirmed["uploadId"]: "",
                      recent_confirmed["uploadId"]: "maya@example.com", old_expired["uploadId"]: ""}
    assert summary["emailsCleared"] >= 2
    line = next(line for line in lines if line["message"] == "sweep finished")
    assert {k: line[k] for k in ("expired", "objectsDeleted", "emailsCleared")} == summary
    assert line["SweepHeartbeat"] == 1 and line["EmailsCleared"] == summary["emailsCleared"]
    assert line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "3DUltra/Upload"
    assert {"Name": "SweepHeartbeat", "Unit": "Count"} in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
