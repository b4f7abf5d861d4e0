"""A create or confirm that committed but whose answer was lost: 503 now, the right answer on the client's retry,
and each event reported exactly once (in-memory dependencies; the real thing is tests/integration/test_db_faults.py)."""

import pytest

from chalicelib.errors import DatabaseUnavailable
from tests.unit.test_routes import BODY, call

UNAVAILABLE = {"error": {"code": "SERVICE_UNAVAILABLE",
                         "message": "The service is temporarily unavailable. Please try again in a moment."}}


def names(deps):
    return [event for event, _, _ in deps.analytics.events]


def confirm(client, body):
    return call(client, "POST", f"/api/upload/{body['uploadId']}/confirm",
                headers={"x-session-token": body["sessionToken"]})


def test_a_confirm_whose_answer_was_lost_is_answered_200_on_retry_and_reported_once(client, deps):
    body = call(client, "POST", "/api/upload", BODY)[1]
    deps.storage.put(body["key"], 68, "image/png")
    deps.uploads.lose_answer_of = "mark_confirmed"

    assert confirm(client, body) == (503, UNAVAILABLE)
    assert names(deps) == ["session_created"]
    assert confirm(client, body) == (200, {"success": True, "jobId": body["uploadId"], "status": "pending"})
    assert confirm(client, body)[1]["error"]["code"] == "UPLOAD_ALREADY_CONFIRMED"
    assert names(deps) == ["session_created", "upload_confirmed", "upload_completed"]


def test_a_confirm_answered_normally_is_still_409_on_repeat_with_no_second_report(client, deps):
    body = call(client, "POST", "/api/upload", BODY)[1]
    deps.storage.put(body["key"], 68, "image/png")

    assert confirm(client, body)[0] == 200
    assert confirm(client, body)[0] == 409
    assert names(deps) == ["session_created", "upload_confirmed", "upload_completed"]


def test_a_keyed_create_whose_answer_was_lost_is_answered_201_on_retry_and_reported_once(client, deps):
    key = {"idempotency-key": "lost-answer-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}
    deps.uploads.lose_answer_of = "create"

    assert call(client, "POST", "/api/upload", BODY, headers=key) == (503, UNAVAILABLE)
    retried = call(client, "POST", "/api/upload", BODY, headers=key)
    replayed = call(client, "POST", "/api/upload", BODY, headers=key)

    assert retried[0] == 201 and replayed[0] == 200 and replayed[1]["uploadId"] == retried[1]["uploadId"]
    assert names(deps) == ["session_created"] and len(deps.uploads.rows) == 1


def test_an_unkeyed_create_whose_answer_was_lost_leaves_no_job_nobody_can_reach(client, deps):
    deps.uploads.lose_answer_of = "create"

    assert call(client, "POST", "/api/upload", BODY) == (503, UNAVAILABLE)
    assert deps.uploads.rows == {} and names(deps) == []
    assert call(client, "POST", "/api/upload", BODY)[0] == 201


@pytest.mark.parametrize("method", ["create", "mark_confirmed"])
def test_when_the_database_stays_down_the_answer_is_503_and_nothing_is_reported(client, deps, method):
    body = call(client, "POST", "/api/upload", BODY)[1]
    deps.storage.put(body["key"], 68, "image/png")
    deps.analytics.events.clear()
    deps.uploads.lose_answer_of = method

    def down(*args):
        raise DatabaseUnavailable()

    deps.uploads.owe_report = deps.uploads.forget_unseen = down
    if method == "create":
        reply = call(client, "POST", "/api/upload", BODY, headers={"idempotency-key": "k-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"})
    else:
        reply = confirm(client, body)

    assert reply == (503, UNAVAILABLE) and deps.analytics.events == []
