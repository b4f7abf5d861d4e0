"""The API contract through Chalice's test client with in-memory dependencies: whole bodies, statuses, headers."""

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import domain, services
from chalicelib.errors import AlreadyConfirmed, IdempotencyKeyReused, UploadError, UploadExpired
from chalicelib.repository import CreateOutcome, ReplayConflict
from tests.unit.fakes import SIGNATURES, FakeDeps

BODY = {"email": "Maya@Example.com", "fileType": "image/png", "fileSize": 68}


def create(api, body=BODY, key=None):
    return api.create(body, key)


def confirm(api, created, token=None):
    return api.confirm(created["uploadId"], token or created["sessionToken"])


def error(code, message):
    return {"error": {"code": code, "message": message}}


def record_of(deps, upload_id):
    return deps.uploads.rows[upload_id]["record"]


def set_record(deps, upload_id, **changes):
    deps.uploads.rows[upload_id]["record"] = replace(record_of(deps, upload_id), **changes)


def test_create_answers_201_with_everything_the_browser_needs(api, deps):
    before = datetime.now(timezone.utc).replace(microsecond=0)
    reply = create(api)
    (status, body), headers = reply, reply.headers
    after = datetime.now(timezone.utc)

    assert status == 201 and headers["Content-Type"] == "application/json"
    upload_id = body["uploadId"]
    assert domain.is_upload_id(upload_id)
    ttl = deps.settings.upload_url_ttl_seconds
    assert body == {
        "uploadUrl": f"https://storage.test/uploads/{upload_id}/original.png?type=image/png&length=68&ttl={ttl}",
        "uploadId": upload_id,
        "key": f"uploads/{upload_id}/original.png",
        "expiresAt": body["expiresAt"],
        "sessionToken": body["sessionToken"],
    }
    expires = datetime.strptime(body["expiresAt"], "%Y-%m-%dT%H:%M:%S.000Z").replace(tzinfo=timezone.utc)
    assert before + timedelta(seconds=ttl) <= expires <= after + timedelta(seconds=ttl)
    assert uuid.UUID(body["sessionToken"]).version == 4
    row = deps.uploads.rows[upload_id]
    assert row["email"] == "Maya@example.com"  # the domain part normalised, the local part kept
    assert row["fingerprint"] == domain.UploadRequest("Maya@example.com", "image/png", 68).fingerprint(
        deps.secrets.digest_secret)
    assert row["idem"] is None
    assert row["record"].token_hash == domain.hash_token(body["sessionToken"])
    assert deps.analytics.events == [("session_created", upload_id, {"uploadId": upload_id})]


def test_the_url_expiry_is_in_whole_seconds_in_utc_ttl_from_now():
    deps = FakeDeps(None)
    before = datetime.now(timezone.utc).replace(microsecond=0)

    created = services.create_upload(BODY, None, uploads=deps.uploads, storage=deps.storage,
                                     analytics=deps.analytics, max_upload_bytes=100, url_ttl_seconds=60,
                                     digest_secret="s" * 32)

    assert created.expires_at.tzinfo == timezone.utc and created.expires_at.microsecond == 0
    assert before + timedelta(seconds=60) <= created.expires_at <= datetime.now(timezone.utc) + timedelta(seconds=60)
    assert created.replayed is False


def test_a_replay_with_the_same_key_and_body_answers_200_for_the_same_upload_with_a_new_token(api, deps):
    _, first = create(api, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")

    status, again = create(api, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")

    assert status == 200
    assert (again["uploadId"], again["key"], again["uploadUrl"]) == (first["uploadId"], first["key"],
                                                                      first["uploadUrl"])
    assert again["sessionToken"] != first["sessionToken"]
    # The key itself is never stored: only its HMAC under the server's secret.
    assert deps.uploads.rows[first["uploadId"]]["idem"] == domain.idempotency_key_digest(
        deps.secrets.digest_secret, "order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")
    assert len(deps.uploads.rows) == 1
    assert [event for event, _, _ in deps.analytics.events] == ["session_created"]
    # Only the newest token is good: the replaced one no longer opens the job.
    assert api("GET", f"/api/upload/{first['uploadId']}", headers={"x-session-token": again["sessionToken"]})[0] == 200
    assert api("GET", f"/api/upload/{first['uploadId']}", headers={"x-session-token": first["sessionToken"]}) == (
        401, error("INVALID_TOKEN", "This session token is not valid for this upload."))


def test_a_key_reused_with_another_body_is_422(api, deps):
    create(api, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")

    status, body = create(api, {**BODY, "fileSize": 69}, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")

    assert (status, body) == (422, error("IDEMPOTENCY_KEY_REUSED",
                                         "This Idempotency-Key was already used for a different upload."))


def test_a_replay_of_a_confirmed_upload_is_409(api, deps):
    _, created = create(api, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")
    deps.storage.put(created["key"], 68, "image/png")
    confirm(api, created)

    assert create(api, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d") == (409, error("UPLOAD_ALREADY_CONFIRMED",
                                                             "This upload has already been processed."))


def test_a_replay_of_an_expired_upload_is_410(api, deps):
    _, created = create(api, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d")
    set_record(deps, created["uploadId"], status="expired")

    assert create(api, key="order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d") == (410, error(
        "UPLOAD_EXPIRED", "This upload has expired. Please upload your photo again."))


@pytest.mark.parametrize("conflict, expected", [
    (None, IdempotencyKeyReused),  # the first request's row is gone
    (ReplayConflict(False, False, "pending"), IdempotencyKeyReused),
    (ReplayConflict(True, True, "pending"), AlreadyConfirmed),
    (ReplayConflict(True, False, "expired"), UploadExpired),
    (ReplayConflict(True, False, "pending"), UploadError),  # refused for no reason we know: a plain 500
])
def test_a_refused_replay_is_explained_by_what_the_first_request_became(conflict, expected):
    deps = FakeDeps(None)
    asked = []
    deps.uploads.create = lambda **kwargs: CreateOutcome(None, False)
    deps.uploads.replay_conflict = lambda *digests: asked.append(digests) or conflict

    with pytest.raises(UploadError) as caught:
        services.create_upload(BODY, "order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d", uploads=deps.uploads, storage=deps.storage,
                               analytics=deps.analytics, max_upload_bytes=100, url_ttl_seconds=60,
                               digest_secret="s" * 32)

    assert type(caught.value) is expected
    request = domain.UploadRequest("Maya@example.com", "image/png", 68)
    assert asked == [(domain.idempotency_key_digest("s" * 32, "order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"), request.fingerprint("s" * 32),
                      domain.legacy_idempotency_key_digest("order-17-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"), request.legacy_fingerprint())]


def test_a_malformed_idempotency_key_is_400_and_creates_nothing(api, deps):
    status, body = create(api, key="k" * 256)

    assert (status, body) == (400, error("VALIDATION_ERROR",
                                         "Idempotency-Key: must be 32 to 255 printable ASCII characters"
                                         " (a random value such as a UUID)."))
    assert deps.uploads.rows == {}


def test_a_key_too_short_to_be_a_secret_is_400_and_creates_nothing(api, deps):
    status, body = create(api, key="attempt-1")

    assert (status, body) == (400, error("VALIDATION_ERROR",
                                         "Idempotency-Key: must be 32 to 255 printable ASCII characters"
                                         " (a random value such as a UUID)."))
    assert deps.uploads.rows == {}


def test_status_answers_the_whole_job(api, deps):
    _, created = create(api)
    record = record_of(deps, created["uploadId"])

    status, body = api("GET", f"/api/upload/{created['uploadId']}", headers={"x-session-token": created["sessionToken"]})

    assert (status, body) == (200, {
        "jobId": created["uploadId"], "status": "pending", "fileType": "image/png", "fileSize": 68,
        "createdAt": record.created_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "confirmedAt": None, "updatedAt": None, "attempt": 1, "progress": None, "previewUrl": None,
        "resultUrl": None, "errorMessage": None, "resultsDeletedAt": None})


def test_status_after_confirm_shows_when(api, deps):
    _, created = create(api)
    deps.storage.put(created["key"], 68, "image/png")
    confirm(api, created)
    confirmed_at = record_of(deps, created["uploadId"]).confirmed_at

    _, body = api("GET", f"/api/upload/{created['uploadId']}", headers={"x-session-token": created["sessionToken"]})

    assert body["confirmedAt"] == confirmed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.mark.parametrize("stored", [None, (67, "image/png"), (69, "image/png"), (68, "image/jpeg"),
                                    (68, "image/png2"), (68, "")])
def test_confirm_of_a_missing_or_different_object_is_422_and_leaves_the_job_pending(api, deps, stored):
    _, created = create(api)
    if stored:
        deps.storage.put(created["key"], *stored)

    assert confirm(api, created) == (422, error("UPLOAD_NOT_VERIFIED",
                                                   "We couldn't verify your upload. Let's try again!"))
    assert record_of(deps, created["uploadId"]).confirmed_at is None


@pytest.mark.parametrize("content_type", ["image/png", "IMAGE/PNG", " image/png ; charset=binary",
                                          "image/png;a=1;b=2"])
def test_confirm_accepts_the_declared_type_with_any_case_or_parameters(api, deps, content_type):
    _, created = create(api)
    deps.storage.put(created["key"], 68, content_type, first_bytes=SIGNATURES["image/png"])

    assert confirm(api, created) == (200, {"success": True, "jobId": created["uploadId"], "status": "pending"})


def test_confirm_refuses_a_type_whose_parameters_hide_a_different_type(api, deps):
    _, created = create(api)
    deps.storage.put(created["key"], 68, "image/jpeg;x=image/png")

    assert confirm(api, created)[0] == 422


def test_confirm_without_a_token_with_a_wrong_one_or_for_an_unknown_id(api, deps):
    _, created = create(api)
    path = f"/api/upload/{created['uploadId']}/confirm"

    assert api("POST", path) == (401, error("MISSING_TOKEN",
                                                 "This request needs the session token of your upload."))
    assert confirm(api, created, token=str(uuid.uuid4())) == (401, error(
        "INVALID_TOKEN", "This session token is not valid for this upload."))
    assert confirm(api, {**created, "uploadId": "ckzzzzzzzzzzzzzzzzzzzzzz"}) == (404, error(
        "UPLOAD_NOT_FOUND", "Upload not found. Please try again."))


def test_confirm_of_an_expired_job_is_410_and_of_a_confirmed_one_409(api, deps):
    _, expired = create(api)
    set_record(deps, expired["uploadId"], status="expired")
    _, done = create(api, {**BODY, "fileSize": 70})
    deps.storage.put(done["key"], 70, "image/png")
    confirm(api, done)

    assert confirm(api, expired) == (410, error("UPLOAD_EXPIRED",
                                                   "This upload has expired. Please upload your photo again."))
    assert confirm(api, done) == (409, error("UPLOAD_ALREADY_CONFIRMED", "This upload has already been processed."))


@pytest.mark.parametrize("change, expected", [
    ("deleted", (404, "UPLOAD_NOT_FOUND")),
    ("confirmed", (409, "UPLOAD_ALREADY_CONFIRMED")),
    ("expired", (410, "UPLOAD_EXPIRED")),
    ("token replaced", (401, "INVALID_TOKEN")),
])
def test_a_confirm_that_loses_a_race_says_what_happened_instead(api, deps, monkeypatch, change, expected):
    _, created = create(api)
    deps.storage.put(created["key"], 68, "image/png")
    upload_id = created["uploadId"]

    def changed_meanwhile(upload_id_, token_hash, etag):
        assert (upload_id_, token_hash, etag) == (upload_id, domain.hash_token(created["sessionToken"]),
                                                  f'"etag-of-{created["key"]}"')
        if change == "deleted":
            del deps.uploads.rows[upload_id]
        elif change == "confirmed":
            set_record(deps, upload_id, confirmed_at=datetime.now(timezone.utc))
        elif change == "expired":
            set_record(deps, upload_id, status="expired")
        else:
            set_record(deps, upload_id, token_hash="another")
        return None

    monkeypatch.setattr(deps.uploads, "mark_confirmed", changed_meanwhile)

    status, body = confirm(api, created)

    assert (status, body["error"]["code"]) == expected
    assert [event for event, _, _ in deps.analytics.events] == ["session_created"]


def test_confirm_sends_both_events_with_their_properties_and_the_duration_in_milliseconds(api, deps, monkeypatch):
    _, created = create(api, {**BODY, "fileType": "image/webp", "fileSize": 4096})
    deps.storage.put(created["key"], 4096, "image/webp")
    upload_id = created["uploadId"]
    record = record_of(deps, upload_id)
    monkeypatch.setattr(deps.uploads, "mark_confirmed", lambda upload_id_, token_hash, etag: replace(
        record, confirmed_at=record.created_at + timedelta(seconds=2, microseconds=345_900)))
    deps.analytics.events.clear()

    assert confirm(api, created)[0] == 200
    assert deps.analytics.events == [
        ("upload_confirmed", upload_id, {"uploadId": upload_id}),
        ("upload_completed", upload_id, {"uploadId": upload_id, "fileSize": 4096, "fileType": "image/webp",
                                         "durationMs": 2345}),
    ]
