"""Routes and the error mapping, through Chalice's test client with in-memory dependencies."""

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from chalicelib.config import RateLimit
from chalicelib.errors import StorageUnavailable
from tests.conftest import ORIGIN

BODY = {"email": "maya@example.com", "fileType": "image/png", "fileSize": 68}


@pytest.mark.parametrize("raw, message", [
    ("", "The request body must be a JSON object."),
    ("{not json", "The request body is not valid JSON."),
    ("[1, 2]", "The request body must be a JSON object."),
    ("42", "The request body must be a JSON object."),
    ('{"email": NaN}', "The request body is not valid JSON."),
])
def test_an_unusable_body_is_400_validation_error(api, raw, message):
    assert api("POST", "/api/upload", raw=raw) == (400, {"error": {"code": "VALIDATION_ERROR",
                                                                             "message": message}})


def test_a_body_nested_deeper_than_the_parser_allows_is_not_valid_json():
    from chalicelib.errors import ValidationFailed
    from chalicelib.http import decode_json_body

    # 100,000 levels is past the limit of every supported interpreter (3.11 stops near 1,000; 3.13 goes deeper).
    with pytest.raises(ValidationFailed, match="^The request body is not valid JSON.$"):
        decode_json_body(b"[" * 100_000 + b"]" * 100_000, "application/json")


def test_the_deepest_array_that_fits_the_size_limit_is_400_validation_error_whatever_the_interpreter(api):
    status, body = api("POST", "/api/upload", raw="[" * 8000 + "]" * 8000)

    # Python 3.11's parser gives up before 8,000 levels (not valid JSON), 3.13's parses them (not an object):
    # either way the client gets our 400, never a 500.
    assert status == 400
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["error"]["message"] in {"The request body is not valid JSON.",
                                        "The request body must be a JSON object."}


def test_create_answers_201_with_the_presigned_url_and_sends_session_created(api, deps):
    status, body = api("POST", "/api/upload", BODY)

    assert status == 201
    assert body["uploadUrl"] == f"https://storage.test/{body['key']}?type=image/png&length=68&ttl=900"
    assert deps.analytics.events == [("session_created", body["uploadId"], {"uploadId": body["uploadId"]})]
    assert deps.analytics.flushes == 1


def test_a_rejected_request_sends_no_analytics_event(api, deps):
    api("POST", "/api/upload", {**BODY, "fileSize": 0})
    body = api.create().body
    deps.analytics.events.clear()
    api("POST", f"/api/upload/{body['uploadId']}/confirm", headers={"x-session-token": body["sessionToken"]})

    assert deps.analytics.events == []


def test_confirm_sends_upload_confirmed_and_upload_completed(api, deps):
    body = api.create().body
    deps.storage.put(body["key"], 68, "image/png")

    status, reply = api("POST", f"/api/upload/{body['uploadId']}/confirm",
                         headers={"x-session-token": body["sessionToken"]})

    assert (status, reply) == (200, {"success": True, "jobId": body["uploadId"], "status": "pending"})
    names = [event for event, _, _ in deps.analytics.events]
    assert names == ["session_created", "upload_confirmed", "upload_completed"]
    completed = deps.analytics.events[-1][2]
    assert {k: completed[k] for k in ("uploadId", "fileSize", "fileType")} == {
        "uploadId": body["uploadId"], "fileSize": 68, "fileType": "image/png"}
    assert isinstance(completed["durationMs"], int) and completed["durationMs"] >= 0


def test_a_storage_failure_during_confirm_is_500_and_the_job_stays_unconfirmed(api, deps):
    body = api.create().body
    deps.storage.failure = StorageUnavailable()

    status, reply = api("POST", f"/api/upload/{body['uploadId']}/confirm",
                         headers={"x-session-token": body["sessionToken"]})

    assert (status, reply) == (500, {"error": {"code": "STORAGE_UNAVAILABLE",
                                               "message": "We couldn't verify your upload. Let's try again!"}})
    assert deps.uploads.get(body["uploadId"]).confirmed_at is None


def test_a_database_that_is_down_gives_503_service_unavailable(api, deps):
    deps.uploads.down = True

    status, reply = api("POST", "/api/upload", BODY)

    assert status == 503
    assert reply == {"error": {"code": "SERVICE_UNAVAILABLE",
                               "message": "The service is temporarily unavailable. Please try again in a moment."}}


def test_health_names_the_failing_dependency_with_503(api, deps):
    deps.storage.failure = StorageUnavailable()

    assert api("GET", "/api/health") == (503, {"status": "unavailable",
                                                        "checks": {"database": "ok", "storage": "unavailable"},
                                                        "version": "dev"})


def test_an_unexpected_exception_is_a_friendly_500_without_a_traceback(api, deps, monkeypatch):
    def explode(*args, **kwargs):
        raise KeyError("secret internals")

    monkeypatch.setattr(deps.uploads, "get", explode)

    status, reply = api("GET", "/api/upload/ckabcdefghijklmnopqrstuv",
                         headers={"x-session-token": "t"})

    assert (status, reply) == (500, {"error": {"code": "INTERNAL_ERROR",
                                               "message": "Something went wrong on our side. Please try again."}})


def test_a_wrong_method_gets_our_error_shape(api):
    status, reply = api("DELETE", "/api/upload")

    assert status == 405
    assert reply == {"error": {"code": "METHOD_NOT_ALLOWED", "message": "Unsupported method: DELETE"}}


def test_a_wrong_media_type_gets_our_error_shape(api):
    response = api.client.http.request("POST", "/api/upload", body=json.dumps(BODY), headers={"content-type": "text/xml"})

    assert response.status_code == 415
    assert json.loads(response.body)["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("headers", [{}, {"content-type": "text/plain"}, {"content-type": "*/*"}],
                         ids=["no-type", "text-plain", "any"])
def test_a_create_not_declared_as_json_is_415_so_no_other_site_can_send_it_without_a_preflight(api, deps,
                                                                                                headers):
    response = api.client.http.request("POST", "/api/upload", body=json.dumps(BODY), headers=headers)

    # text/plain is refused by Chalice itself (its message names the type); the others reach our check.
    assert (response.status_code, json.loads(response.body)["error"]["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")
    assert deps.uploads.rows == {}


def test_a_body_larger_than_any_valid_request_is_413(api):
    status, reply = api("POST", "/api/upload", raw=json.dumps({**BODY, "pad": "x" * 20_000}))

    assert (status, reply) == (413, {"error": {"code": "PAYLOAD_TOO_LARGE", "message": "The request body is too large."}})


def test_an_overlong_token_is_refused_without_a_database_lookup(api, deps):
    body = api.create().body
    deps.uploads.down = True  # a lookup would now fail with 503

    status, reply = api("GET", f"/api/upload/{body['uploadId']}", headers={"x-session-token": "t" * 5000})

    assert (status, reply["error"]["code"]) == (401, "INVALID_TOKEN")


def test_path_parameters_that_are_not_our_ids_never_reach_the_database(api, deps):
    deps.uploads.down = True

    for upload_id in ("..%2F..%2Fetc%2Fpasswd", "uploads", "ckabc'--", "%00"):
        status, reply = api("GET", f"/api/upload/{upload_id}", headers={"x-session-token": "t"})
        assert (status, reply["error"]["code"]) == (404, "UPLOAD_NOT_FOUND"), upload_id


@pytest.fixture
def limited(deps):
    deps.settings = replace(deps.settings, rate_limit_per_ip=RateLimit(count=2, seconds=600),
                            rate_limit_per_email=RateLimit(count=5, seconds=600))
    return deps


def test_over_the_limit_is_429_with_retry_after_that_browsers_may_read(api, limited):
    statuses = [api("POST", "/api/upload", {**BODY, "email": f"p{i}@example.com"})[0] for i in range(2)]

    response = api.client.http.request("POST", "/api/upload", body=json.dumps(BODY),
                                   headers={"content-type": "application/json", "origin": ORIGIN})

    assert statuses == [201, 201]
    assert response.status_code == 429
    assert json.loads(response.body) == {"error": {
        "code": "RATE_LIMITED", "message": "Too many uploads right now. Please try again in 10 minutes."}}
    assert 590 <= int(response.headers["Retry-After"]) <= 600
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"].split(",")


def test_the_client_ip_comes_from_the_gateway_never_from_a_forwarded_header(api, limited):
    for i in range(2):
        api("POST", "/api/upload", {**BODY, "email": f"p{i}@example.com"},
             headers={"x-forwarded-for": f"203.0.113.{i}"})

    status, reply = api("POST", "/api/upload", BODY, headers={"x-forwarded-for": "198.51.100.7"})

    assert (status, reply["error"]["code"]) == (429, "RATE_LIMITED")
    assert {scope for scope, _ in limited.uploads.hits} == {"ip", "email"}
    assert len([key for scope, key in limited.uploads.hits if scope == "ip"]) == 1


def test_a_replayed_create_does_not_count_against_limits(api, limited):
    first = api("POST", "/api/upload", BODY, headers={"idempotency-key": "attempt-1-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"})
    replays = [api("POST", "/api/upload", BODY, headers={"idempotency-key": "attempt-1-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"})[0]
               for _ in range(5)]
    second = api("POST", "/api/upload", {**BODY, "email": "other@example.com"})

    assert (first[0], replays, second[0]) == (201, [200] * 5, 201)


def test_a_replay_never_hands_out_a_url_that_outlives_its_job(api, deps):
    deps.settings = replace(deps.settings, upload_url_ttl_seconds=900, abandoned_after_seconds=3600)
    body = api("POST", "/api/upload", BODY, headers={"idempotency-key": "old-attempt-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"})[1]
    row = deps.uploads.rows[body["uploadId"]]
    row["record"] = replace(row["record"], created_at=row["record"].created_at - timedelta(seconds=3300))

    replay = api("POST", "/api/upload", BODY, headers={"idempotency-key": "old-attempt-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"})[1]
    row["record"] = replace(row["record"], created_at=row["record"].created_at - timedelta(seconds=300))
    too_late = api("POST", "/api/upload", BODY, headers={"idempotency-key": "old-attempt-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"})

    assert "ttl=900" in body["uploadUrl"]
    ttl = int(replay["uploadUrl"].rsplit("ttl=", 1)[1])
    assert 295 <= ttl <= 300
    expires = datetime.fromisoformat(replay["expiresAt"].replace("Z", "+00:00"))
    assert expires <= row["record"].created_at + timedelta(seconds=3600 + 300)
    assert too_late == (410, {"error": {"code": "UPLOAD_EXPIRED",
                                        "message": "This upload has expired. Please upload your photo again."}})


def test_confirm_of_bytes_that_are_not_the_declared_type_is_422_and_changes_nothing(api, deps):
    body = api.create().body
    deps.storage.put(body["key"], 68, "image/png", first_bytes=b"GIF89a" + bytes(58))

    status, reply = api("POST", f"/api/upload/{body['uploadId']}/confirm",
                         headers={"x-session-token": body["sessionToken"]})

    assert (status, reply) == (422, {"error": {"code": "UPLOAD_NOT_VERIFIED",
                                               "message": "We couldn't verify your upload. Let's try again!"}})
    assert deps.uploads.get(body["uploadId"]).confirmed_at is None
    assert "etag" not in deps.uploads.rows[body["uploadId"]]


def test_confirm_pins_the_etag_of_the_bytes_it_checked(api, deps):
    body = api.create().body
    deps.storage.put(body["key"], 68, "image/png")

    status, _ = api("POST", f"/api/upload/{body['uploadId']}/confirm",
                     headers={"x-session-token": body["sessionToken"]})

    assert status == 200
    assert deps.uploads.rows[body["uploadId"]]["etag"] == f'"etag-of-{body["key"]}"'



def test_every_answer_of_the_job_routes_is_no_store_and_the_limits_stay_publicly_cacheable(api, deps):
    key = "no-store-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d4e5f"
    created = api.create(key=key)
    replayed = api.create(key=key)
    upload_id, token = created.body["uploadId"], replayed.body["sessionToken"]
    deps.storage.put(created.body["key"], 68, "image/png")
    answers = {
        "create 201": created, "create 200 (replay)": replayed,
        "create 400": api("POST", "/api/upload", raw="[]"),
        "create 413": api("POST", "/api/upload", raw="x" * 20_000),
        "create 415": api("POST", "/api/upload", raw="{}", headers={"content-type": "text/plain"}),
        "create 422": api.create({**BODY, "fileSize": 69}, key=key),
        "status 200": api.status(upload_id, token), "status 401": api.status(upload_id, None),
        "status 404": api.status("zzzzzzzzzzzzzzzzzzzzzzzz", token),
        "confirm 200": api.confirm(upload_id, token), "confirm 409": api.confirm(upload_id, token),
        "cancel 401": api.cancel(upload_id, "wrong"),
        "limits 405": api("POST", "/api/upload/limits"),
    }
    deps.uploads.down = True
    answers.update({"create 503": api.create(), "status 503": api.status(upload_id, token),
                    "confirm 503": api.confirm(upload_id, token), "cancel 503": api.cancel(upload_id, token)})
    limits = api("GET", "/api/upload/limits")

    assert {name: (reply.status, reply.headers.get("Cache-Control")) for name, reply in answers.items()} == {
        name: (int(name.split()[1]), "no-store") for name in answers}
    assert (limits.status, limits.headers["Cache-Control"]) == (200, "public, max-age=3600")
