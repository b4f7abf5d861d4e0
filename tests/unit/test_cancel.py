"""`DELETE /api/upload/{uploadId}`: cancel a pending, unconfirmed job, through the routes on in-memory dependencies.
Against the real database and storage: tests/integration/test_cancel.py."""

from dataclasses import replace

from chalicelib import domain
from chalicelib.errors import StorageUnavailable
from tests.unit.logcapture import records


def error(code, message):
    return {"error": {"code": code, "message": message}}


CANCELLED = error("UPLOAD_CANCELLED", "This upload was cancelled. Please start a new upload.")


def names(deps):
    return [event for event, _, _ in deps.analytics.events]


def set_status(deps, upload_id, **changes):
    row = deps.uploads.rows[upload_id]
    row["record"] = replace(row["record"], **changes)


def test_a_cancel_is_204_with_an_empty_body_deletes_the_object_and_reports_upload_cancelled(api, deps):
    job = api.create().body
    deps.storage.put(job["key"], 68, "image/png")

    reply = api.cancel(job["uploadId"], job["sessionToken"])

    assert reply == (204, None)
    assert deps.uploads.get(job["uploadId"]).status == "cancelled"
    assert deps.storage.deleted == [job["key"]] and job["key"] not in deps.storage.objects
    assert deps.analytics.events[-1] == ("upload_cancelled", job["uploadId"], {"uploadId": job["uploadId"]})


def test_a_repeated_cancel_is_204_again_and_reports_nothing_more(api, deps):
    job = api.create().body
    api.cancel(job["uploadId"], job["sessionToken"])

    assert api.cancel(job["uploadId"], job["sessionToken"]) == (204, None)
    assert names(deps) == ["session_created", "upload_cancelled"]
    assert deps.storage.deleted == [job["key"]]


def test_after_a_cancel_status_confirm_and_a_replay_of_the_create_are_410_upload_cancelled(api, deps):
    job = api.create(key="order-5-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d").body
    deps.storage.put(job["key"], 68, "image/png")
    api.cancel(job["uploadId"], job["sessionToken"])

    assert api.status(job["uploadId"], job["sessionToken"]) == (410, CANCELLED)
    assert api.confirm(job["uploadId"], job["sessionToken"]) == (410, CANCELLED)
    assert api.create(key="order-5-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d") == (410, CANCELLED)
    assert names(deps) == ["session_created", "upload_cancelled"]


def test_a_confirmed_job_cannot_be_cancelled_409(api, deps):
    job = api.create().body
    deps.storage.put(job["key"], 68, "image/png")
    api.confirm(job["uploadId"], job["sessionToken"])

    assert api.cancel(job["uploadId"], job["sessionToken"]) == (409, error(
        "UPLOAD_ALREADY_CONFIRMED", "This upload has already been processed."))
    assert deps.storage.deleted == [] and deps.uploads.get(job["uploadId"]).status == "pending"


def test_a_refused_cancel_is_decided_by_its_one_statement_without_reading_the_job_again(api, deps):
    job = api.create().body
    deps.storage.put(job["key"], 68, "image/png")
    api.confirm(job["uploadId"], job["sessionToken"])

    def no_second_read(upload_id):
        raise AssertionError("the cancel read the job again")

    deps.uploads.get = no_second_read

    assert api.cancel(job["uploadId"], job["sessionToken"])[0] == 409


def test_an_expired_job_cannot_be_cancelled_410_upload_expired(api, deps):
    job = api.create().body
    set_status(deps, job["uploadId"], status="expired")

    assert api.cancel(job["uploadId"], job["sessionToken"]) == (410, error(
        "UPLOAD_EXPIRED", "This upload has expired. Please upload your photo again."))
    assert "upload_cancelled" not in names(deps)


def test_a_cancel_is_refused_as_the_other_routes_refuse_no_token_another_token_and_an_unknown_id(api, deps):
    job, other = api.create().body, api.create().body

    assert api.cancel(job["uploadId"], None) == (401, error(
        "MISSING_TOKEN", "This request needs the session token of your upload."))
    assert api.cancel(job["uploadId"], other["sessionToken"]) == (401, error(
        "INVALID_TOKEN", "This session token is not valid for this upload."))
    assert api.cancel(job["uploadId"], "x" * 129) == (401, error(
        "INVALID_TOKEN", "This session token is not valid for this upload."))
    not_found = (404, error("UPLOAD_NOT_FOUND", "Upload not found. Please try again."))
    assert api.cancel("z" * 24, job["sessionToken"]) == not_found
    assert api.cancel("not-an-id", job["sessionToken"]) == not_found
    assert deps.uploads.get(job["uploadId"]).status == "pending"


def test_a_storage_failure_after_the_cancel_still_answers_204_and_leaves_the_object_to_the_sweep(
        api, deps, service_logs):
    job = api.create().body
    deps.storage.failure = StorageUnavailable()

    assert api.cancel(job["uploadId"], job["sessionToken"]) == (204, None)
    assert names(deps) == ["session_created", "upload_cancelled"]
    assert [(r.levelname, r.getMessage(), r.uploadId) for r in records(service_logs, "chalicelib.services")] == [
        ("WARNING", "cancelled upload's object not deleted; the sweep will", job["uploadId"])]


def test_a_cancel_that_lost_a_race_to_a_confirm_says_409(api, deps):
    job = api.create().body
    cancel = deps.uploads.cancel

    def confirm_first(upload_id, token_hash):
        set_status(deps, upload_id, confirmed_at=deps.uploads.get(upload_id).created_at)
        return replace(cancel(upload_id, token_hash), confirmed=False)

    deps.uploads.cancel = confirm_first

    assert api.cancel(job["uploadId"], job["sessionToken"])[0] == 409


def test_a_cancel_that_lost_a_race_to_another_cancel_is_204_and_reports_nothing(api, deps):
    job = api.create().body
    cancel = deps.uploads.cancel

    def cancelled_meanwhile(upload_id, token_hash):
        set_status(deps, upload_id, status="cancelled")
        return replace(cancel(upload_id, token_hash), status="pending")

    deps.uploads.cancel = cancelled_meanwhile

    assert api.cancel(job["uploadId"], job["sessionToken"]) == (204, None)
    assert names(deps) == ["session_created"]


def test_a_cancel_whose_token_was_rotated_meanwhile_is_401(api, deps):
    job = api.create().body
    cancel = deps.uploads.cancel

    def rotated_meanwhile(upload_id, token_hash):
        set_status(deps, upload_id, token_hash="a replay's hash")
        return replace(cancel(upload_id, token_hash), owned=True)

    deps.uploads.cancel = rotated_meanwhile

    assert api.cancel(job["uploadId"], job["sessionToken"])[0] == 401


def test_a_job_with_a_status_the_lifecycle_does_not_know_is_500_and_logged_with_its_value(api, deps, service_logs):
    job = api.create().body
    set_status(deps, job["uploadId"], status="archived")

    assert api.status(job["uploadId"], job["sessionToken"]) == (500, error(
        "INTERNAL_ERROR", "Something went wrong on our side. Please try again."))
    (line,) = [r for r in records(service_logs, "chalicelib.http") if r.levelname == "ERROR"]
    assert (line.getMessage(), line.jobStatus, line.UnhandledErrors) == (
        "unknown job status 'archived'", "'archived'", 1)


def test_every_stage_of_the_lifecycle_has_its_moves_and_only_pending_can_be_cancelled():
    assert set(domain.TRANSITIONS) == {*domain.STATUSES, domain.CONFIRMED}
    assert all(target in domain.TRANSITIONS for targets in domain.TRANSITIONS.values() for target in targets)
    assert [stage for stage, targets in domain.TRANSITIONS.items() if domain.CANCELLED in targets] == ["pending"]
