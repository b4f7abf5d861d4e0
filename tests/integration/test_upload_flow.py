"""Create, PUT, confirm and status against real PostgreSQL and a signature-checking S3 server."""

from datetime import datetime, timedelta, timezone

from chalicelib.domain import hash_token
from tests.images import png_bytes
from tests.helpers import put_object, upload_body

PNG = png_bytes()


def create_and_put(api, data=PNG, file_type="image/png", **headers):
    created = api.create(upload_body(file_type=file_type, file_size=len(data)), headers=headers)
    assert created.status == 201, created.body
    status, _ = put_object(created.body["uploadUrl"], data, file_type)
    assert status == 200
    return created.body


def test_create_writes_exactly_one_pending_row_with_the_declared_file(api, db):
    reply = api.create(upload_body(email="  Maya.Lee@Example.COM ", file_type="image/webp", file_size=1234))

    assert reply.status == 201
    upload_id = reply.body["uploadId"]
    rows = db.run(
        "SELECT email, status, original_url, file_type, file_size, confirmed_at FROM uploads WHERE id = :id",
        id=upload_id,
    )
    assert rows == [["Maya.Lee@example.com", "pending", f"uploads/{upload_id}/original.webp", "image/webp", 1234, None]]


def test_create_returns_the_contract_fields(api):
    before = datetime.now(timezone.utc)
    reply = api.create()

    body = reply.body
    assert set(body) == {"uploadUrl", "uploadId", "key", "expiresAt", "sessionToken"}
    assert body["key"] == f"uploads/{body['uploadId']}/original.png"
    assert f"/{body['key']}?" in body["uploadUrl"]
    assert "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in body["uploadUrl"]
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert timedelta(seconds=895) < expires - before <= timedelta(seconds=901)
    assert reply.headers["Content-Type"] == "application/json"


def test_only_the_token_hash_is_stored(api, db):
    body = api.create().body

    stored = db.run("SELECT session_token_hash FROM uploads WHERE id = :id", id=body["uploadId"])[0][0]
    assert stored == hash_token(body["sessionToken"])
    assert db.run("SELECT count(*) FROM uploads WHERE session_token_hash = :t", t=body["sessionToken"]) == [[0]]


def test_presigned_put_with_the_declared_bytes_is_accepted_by_storage(api):
    body = api.create(upload_body(file_size=len(PNG))).body

    assert put_object(body["uploadUrl"], PNG, "image/png")[0] == 200


def test_presigned_put_with_a_different_size_is_refused_by_storage(api):
    body = api.create(upload_body(file_size=len(PNG))).body

    status, answer = put_object(body["uploadUrl"], PNG + b"extra", "image/png")
    assert status == 403
    assert b"SignatureDoesNotMatch" in answer


def test_presigned_put_with_a_different_type_is_refused_by_storage(api):
    body = api.create(upload_body(file_size=len(PNG))).body

    status, answer = put_object(body["uploadUrl"], PNG, "image/jpeg")
    assert status == 403
    assert b"SignatureDoesNotMatch" in answer


def test_confirm_after_the_put_marks_the_job_confirmed_and_keeps_it_pending(api, db):
    body = create_and_put(api)

    reply = api.confirm(body["uploadId"], body["sessionToken"])

    assert (reply.status, reply.body) == (200, {"success": True, "jobId": body["uploadId"], "status": "pending"})
    status, confirmed_at = db.run("SELECT status, confirmed_at FROM uploads WHERE id = :id", id=body["uploadId"])[0]
    assert status == "pending" and confirmed_at is not None


def test_confirm_without_the_object_is_422_and_the_job_stays_confirmable(api):
    body = api.create(upload_body(file_size=len(PNG))).body

    refused = api.confirm(body["uploadId"], body["sessionToken"])
    put_object(body["uploadUrl"], PNG, "image/png")
    accepted = api.confirm(body["uploadId"], body["sessionToken"])

    assert (refused.status, refused.body) == (422, {"error": {
        "code": "UPLOAD_NOT_VERIFIED", "message": "We couldn't verify your upload. Let's try again!"}})
    assert accepted.status == 200


def test_confirm_of_an_object_that_differs_from_the_declaration_is_422(api, live_deps):
    body = api.create(upload_body(file_size=len(PNG))).body
    live_deps.storage._client.put_object(
        Bucket=live_deps.settings.r2_bucket, Key=body["key"], Body=PNG[:10], ContentType="image/png"
    )

    reply = api.confirm(body["uploadId"], body["sessionToken"])

    assert reply.status == 422 and reply.body["error"]["code"] == "UPLOAD_NOT_VERIFIED"


def test_second_confirm_is_rejected_with_409(api):
    body = create_and_put(api)
    api.confirm(body["uploadId"], body["sessionToken"])

    reply = api.confirm(body["uploadId"], body["sessionToken"])

    assert (reply.status, reply.body) == (409, {"error": {
        "code": "UPLOAD_ALREADY_CONFIRMED", "message": "This upload has already been processed."}})


def test_confirm_without_a_token_is_401_missing_token(api):
    body = create_and_put(api)

    reply = api.confirm(body["uploadId"], None)

    assert (reply.status, reply.body["error"]["code"]) == (401, "MISSING_TOKEN")


def test_a_token_of_one_job_never_opens_another(api, db):
    first = create_and_put(api)
    second = create_and_put(api)

    confirm = api.confirm(first["uploadId"], second["sessionToken"])
    status = api.status(first["uploadId"], second["sessionToken"])

    assert (confirm.status, confirm.body["error"]["code"]) == (401, "INVALID_TOKEN")
    assert (status.status, status.body["error"]["code"]) == (401, "INVALID_TOKEN")
    assert db.run("SELECT confirmed_at FROM uploads WHERE id = :id", id=first["uploadId"]) == [[None]]


def test_unknown_or_malformed_upload_ids_are_404(api):
    expected = {"error": {"code": "UPLOAD_NOT_FOUND", "message": "Upload not found. Please try again."}}
    for upload_id in ("zzzzzzzzzzzzzzzzzzzzzzzz", "..%2F..%2Fetc", "NOT-A-CUID", "a" * 300):
        confirm = api.confirm(upload_id, "6f1c1b7e-6a53-4a57-8d3c-4c1f1d2b9a10")
        status = api.status(upload_id, "6f1c1b7e-6a53-4a57-8d3c-4c1f1d2b9a10")
        assert (confirm.status, confirm.body) == (404, expected), upload_id
        assert (status.status, status.body) == (404, expected), upload_id


def test_status_shows_the_job_and_never_the_email_or_token(api):
    body = create_and_put(api)
    pending = api.status(body["uploadId"], body["sessionToken"])
    api.confirm(body["uploadId"], body["sessionToken"])
    confirmed = api.status(body["uploadId"], body["sessionToken"])

    assert pending.status == 200
    assert set(pending.body) == {"jobId", "status", "fileType", "fileSize", "createdAt", "confirmedAt", "updatedAt",
                                 "attempt", "progress", "previewUrl", "resultUrl", "errorMessage", "resultsDeletedAt"}
    assert pending.body["jobId"] == body["uploadId"] and pending.body["status"] == "pending"
    assert (pending.body["fileType"], pending.body["fileSize"]) == ("image/png", len(PNG))
    assert pending.body["confirmedAt"] is None
    assert confirmed.body["confirmedAt"].endswith("Z") and confirmed.body["createdAt"].endswith("Z")
    assert "maya" not in str(confirmed.body) and body["sessionToken"] not in str(confirmed.body)


def test_status_without_a_token_is_401(api):
    body = api.create().body

    reply = api.status(body["uploadId"], None)

    assert (reply.status, reply.body["error"]["code"]) == (401, "MISSING_TOKEN")


def test_health_reports_both_dependencies_ok(api):
    reply = api.request("GET", "/api/health")

    assert (reply.status, reply.body) == (200, {"status": "ok", "checks": {"database": "ok", "storage": "ok"},
                                                "version": "dev"})
