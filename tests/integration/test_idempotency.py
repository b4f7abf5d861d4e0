"""Idempotency-Key replays: same job, fresh URL and token; refused when the body differs or it is confirmed."""

from tests.helpers import put_object, stored_key, upload_body
from tests.images import SMALL_PNG


def test_a_replay_with_the_same_key_and_body_returns_the_same_job_with_a_fresh_token(api, db):
    headers = {"idempotency-key": "attempt-7f3a-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}
    first = api.create(upload_body(), headers=headers)
    again = api.create(upload_body(), headers=headers)

    assert (first.status, again.status) == (201, 200)
    assert again.body["uploadId"] == first.body["uploadId"] and again.body["key"] == first.body["key"]
    assert again.body["sessionToken"] != first.body["sessionToken"]
    assert db.run("SELECT count(*) FROM uploads WHERE idempotency_key = :k",
                  k=stored_key(headers["idempotency-key"])) == [[1]]


def test_the_previous_token_stops_working_after_a_replay(api):
    headers = {"idempotency-key": "attempt-rotate-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}
    first = api.create(upload_body(), headers=headers).body
    again = api.create(upload_body(), headers=headers).body

    assert api.status(first["uploadId"], first["sessionToken"]).body["error"]["code"] == "INVALID_TOKEN"
    assert api.status(again["uploadId"], again["sessionToken"]).status == 200


def test_the_same_key_with_a_different_body_is_422(api):
    headers = {"idempotency-key": "attempt-reused-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}
    api.create(upload_body(file_size=100), headers=headers)

    reply = api.create(upload_body(file_size=101), headers=headers)

    assert (reply.status, reply.body) == (422, {"error": {
        "code": "IDEMPOTENCY_KEY_REUSED",
        "message": "This Idempotency-Key was already used for a different upload."}})


def test_a_replay_after_the_upload_was_confirmed_is_409(api):
    headers = {"idempotency-key": "attempt-done-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}
    body = api.create(upload_body(file_size=len(SMALL_PNG)), headers=headers).body
    put_object(body["uploadUrl"], SMALL_PNG, "image/png")
    assert api.confirm(body["uploadId"], body["sessionToken"]).status == 200

    reply = api.create(upload_body(file_size=len(SMALL_PNG)), headers=headers)

    assert (reply.status, reply.body["error"]["code"]) == (409, "UPLOAD_ALREADY_CONFIRMED")


def test_an_unprintable_overlong_or_short_key_is_400(api):
    for key in ("", "x" * 256, "tab\there" + "x" * 32, "x" * 31, "attempt-1"):
        reply = api.create(upload_body(), headers={"idempotency-key": key})
        assert (reply.status, reply.body["error"]["code"]) == (400, "VALIDATION_ERROR"), repr(key)
        assert reply.body["error"]["message"].startswith("Idempotency-Key:")
