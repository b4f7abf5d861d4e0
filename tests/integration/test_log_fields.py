"""What an on-call person reads about a failed confirm: one request's lines share its ids and say why."""

import io
import json
import logging

import pytest

from chalicelib.storage import s3_client
from tests.helpers import upload_body
from tests.images import png_bytes

PNG = png_bytes()


@pytest.fixture
def log_lines():
    """The JSON lines the service's own handler writes (what CloudWatch receives), parsed."""
    handler = next(h for h in logging.getLogger("chalicelib").handlers if h.filters)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    lines = []
    yield lambda: lines.extend(json.loads(line) for line in stream.getvalue().splitlines()[len(lines):]) or lines
    handler.setStream(previous)


def stored(live_deps, key, data, content_type):
    live_deps.storage._client.put_object(Bucket=live_deps.settings.r2_bucket, Key=key, Body=data,
                                         ContentType=content_type)


@pytest.mark.parametrize("reason, upload", [
    ("missing", None),
    ("size", (PNG + b"extra", "image/png")),
    ("type", (PNG, "image/jpeg")),
    ("bytes", (b"GIF89a" + PNG[6:], "image/png")),
])
def test_a_failed_confirm_logs_its_reason_code_and_ids_on_every_line(api, live_deps, log_lines, reason, upload):
    created = api.create(upload_body(file_size=len(PNG))).body
    if upload:
        stored(live_deps, created["key"], *upload)
    log_lines()  # skip the create's lines

    reply = api.confirm(created["uploadId"], created["sessionToken"])

    assert (reply.status, reply.body["error"]["code"]) == (422, "UPLOAD_NOT_VERIFIED")
    lines = log_lines()[-2:]
    warning, access = lines
    assert warning["message"] == f"UPLOAD_NOT_VERIFIED: {reason}"
    assert {k: access[k] for k in ("message", "status", "code", "reason", "uploadId")} == {
        "message": "request", "status": 422, "code": "UPLOAD_NOT_VERIFIED", "reason": reason,
        "uploadId": created["uploadId"]}
    assert access["requestId"] and warning["requestId"] == access["requestId"]
    assert warning["uploadId"] == created["uploadId"]
    assert created["sessionToken"] not in json.dumps(lines) and "maya" not in json.dumps(lines)


def test_a_create_binds_the_new_upload_id_and_every_line_names_the_version(api, log_lines):
    created = api.create(upload_body(file_size=len(PNG))).body

    access = log_lines()[-1]
    assert (access["status"], access["code"], access["uploadId"]) == (201, None, created["uploadId"])
    assert access["version"] == "dev"


def test_a_storage_failure_logs_the_s3_error_code_and_http_status(api, live_deps, stack_env, log_lines, monkeypatch):
    created = api.create(upload_body(file_size=len(PNG))).body
    refused = s3_client(endpoint_url=stack_env["R2_ENDPOINT_URL"], access_key_id=stack_env["R2_ACCESS_KEY_ID"],
                        secret_access_key="not-the-secret", timeout=5)
    monkeypatch.setattr(live_deps.storage, "_client", refused)
    log_lines()

    reply = api.confirm(created["uploadId"], created["sessionToken"])

    assert reply.status == 500 and reply.body["error"]["code"] == "STORAGE_UNAVAILABLE"
    failure = next(line for line in log_lines() if line["message"].startswith("storage get failed"))
    # The confirm's ranged GET carries S3's error body, so the log names the refusal itself.
    assert (failure["s3ErrorCode"], failure["httpStatus"]) == ("SignatureDoesNotMatch", 403)
    assert failure["requestId"] and failure["uploadId"] == created["uploadId"]
    assert log_lines()[-1]["code"] == "STORAGE_UNAVAILABLE"
