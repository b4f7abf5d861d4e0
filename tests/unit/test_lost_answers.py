"""A create or confirm that committed but whose answer was lost: 503 now, the right answer on the client's retry,
and each event reported exactly once (in-memory dependencies; the real thing is tests/integration/test_db_faults.py)."""

import pytest

from chalicelib.errors import DatabaseUnavailable

UNAVAILABLE = {"error": {"code": "SERVICE_UNAVAILABLE",
                         "message": "The service is temporarily unavailable. Please try again in a moment."}}


def names(deps):
    return [event for event, _, _ in deps.analytics.events]


def confirm(api, body):
    return api("POST", f"/api/upload/{body['uploadId']}/confirm",
                headers={"x-session-token": body["sessionToken"]})


def test_a_confirm_whose_answer_was_lost_is_answered_200_on_retry_and_reported_once(api, deps):
    body = api("POST", "/api/upload", api.BODY)[1]
    deps.storage.put(body["key"], 68, "image/png")
    deps.uploads.lose_answer_of = "mark_confirmed"

    assert confirm(api, body) == (503, UNAVAILABLE)
    assert names(deps) == ["session_created"]
    assert confirm(api, body) == (200, {"success": True, "jobId": body["uploadId"], "status": "pending"})
    assert confirm(api, body)[1]["error"]["code"] == "UPLOAD_ALREADY_CONFIRMED"
    assert names(deps) == ["session_created", "upload_confirmed", "upload_completed"]


def test_a_confirm_answered_normally_is_still_409_on_repeat_with_no_second_report(api, deps):
    body = api("POST", "/api/upload", api.BODY)[1]
    deps.storage.put(body["key"], 68, "image/png")

    assert confirm(api, body)[0] == 200
    assert confirm(api, body)[0] == 409
    assert names(deps) == ["session_created", "upload_confirmed", "upload_completed"]


def test_a_keyed_create_whose_answer_was_lost_is_answered_201_on_retry_and_reported_once(api, deps):
    key = {"idempotency-key": "lost-answer-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}
    deps.uploads.lose_answer_of = "create"

    assert api("POST", "/api/upload", api.BODY, headers=key) == (503, UNAVAILABLE)
    retried = api("POST", "/api/upload", api.BODY, headers=key)
    replayed = api("POST", "/api/upload", api.BODY, headers=key)

    assert retried[0] == 201 and replayed[0] == 200 and replayed[1]["uploadId"] == retried[1]["uploadId"]
    assert names(deps) == ["session_created"] and len(deps.uploads.rows) == 1


def test_an_unkeyed_create_whose_answer_was_lost_leaves_no_job_nobody_can_reach(api, deps):
    deps.uploads.lose_answer_of = "create"

    assert api("POST", "/api/upload", api.BODY) == (503, UNAVAILABLE)
    assert deps.uploads.rows == {} and names(deps) == []
    assert api("POST", "/api/upload", api.BODY)[0] == 201


@pytest.mark.parametrize("method", ["create", "mark_confirmed"])
def test_when_the_database_stays_down_the_answer_is_503_and_nothing_is_reported(api, deps, method):
    body = api("POST", "/api/upload", api.BODY)[1]
    deps.storage.put(body["key"], 68, "image/png")
    deps.analytics.events.clear()
    deps.uploads.lose_answer_of = method

    def down(*args):
        raise DatabaseUnavailable()

    deps.uploads.owe_report = deps.uploads.forget_unseen = down
    if method == "create":
        reply = api("POST", "/api/upload", api.BODY, headers={"idempotency-key": "k-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"})
    else:
        reply = confirm(api, body)

    assert reply == (503, UNAVAILABLE) and deps.analytics.events == []


def test_a_cancel_whose_answer_was_lost_is_204_on_retry_and_reported_and_deleted_once(api, deps):
    body = api.create().body
    deps.storage.put(body["key"], 68, "image/png")
    deps.uploads.lose_answer_of = "cancel"

    assert api.cancel(body["uploadId"], body["sessionToken"]) == (503, UNAVAILABLE)
    assert names(deps) == ["session_created"] and deps.storage.deleted == []
    assert api.cancel(body["uploadId"], body["sessionToken"]) == (204, None)
    assert api.cancel(body["uploadId"], body["sessionToken"]) == (204, None)
    assert names(deps) == ["session_created", "upload_cancelled"]
    assert deps.storage.deleted == [body["key"]]
