"""The confirm looks at the bytes and pins them: real files through SeaweedFS, which checks signatures and
honours If-Match as R2 does."""

from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from tests.helpers import http, put_object, upload_body
from tests.images import heic_header, pillow_bytes, png_bytes, zip_bytes

NOT_VERIFIED = {"error": {"code": "UPLOAD_NOT_VERIFIED", "message": "We couldn't verify your upload. Let's try again!"}}
REAL_FILES = {
    "image/png": png_bytes(),
    "image/jpeg": pillow_bytes("JPEG"),
    "image/webp": pillow_bytes("WEBP"),
    "image/heic": heic_header(),
}
NOT_PHOTOS = {
    "gif": pillow_bytes("GIF"),
    "zip": zip_bytes(),
    "text": b"Hello! This is a text file, not a photo.\n" * 3,
    "empty-looking": bytes(200),
}
SHORTER_THAN_SIGNATURE = {
    "image/png": b"\x89PNG\r\n\x1a",
    "image/jpeg": b"\xff\xd8",
    "image/webp": b"RIFF\x24\x00\x00\x00WEB",
    "image/heic": b"\x00\x00\x00\x18ftyphei",
}


def upload(api, data, file_type, headers=None):
    created = api.create(upload_body(file_type=file_type, file_size=len(data)), headers=headers)
    assert created.status == 201, created.body
    assert put_object(created.body["uploadUrl"], data, file_type)[0] == 200
    return created.body


def row(db, upload_id):
    return db.run("SELECT confirmed_at, etag, updated_at FROM uploads WHERE id = :id", id=upload_id)[0]


@pytest.mark.parametrize("file_type", REAL_FILES)
def test_a_real_file_of_each_type_is_confirmed_and_pinned_to_its_etag(api, db, live_deps, file_type):
    body = upload(api, REAL_FILES[file_type], file_type)

    reply = api.confirm(body["uploadId"], body["sessionToken"])

    assert (reply.status, reply.body) == (200, {"success": True, "jobId": body["uploadId"], "status": "pending"})
    stored = live_deps.storage._client.head_object(Bucket=live_deps.settings.r2_bucket, Key=body["key"])
    confirmed_at, etag, _ = row(db, body["uploadId"])
    assert confirmed_at is not None and etag == stored["ETag"]


@pytest.mark.parametrize("file_type", REAL_FILES)
@pytest.mark.parametrize("content", NOT_PHOTOS)
def test_a_file_that_is_not_the_declared_image_is_422_and_nothing_changes(api, db, content, file_type):
    body = upload(api, NOT_PHOTOS[content], file_type)
    before = row(db, body["uploadId"])

    reply = api.confirm(body["uploadId"], body["sessionToken"])

    assert (reply.status, reply.body) == (422, NOT_VERIFIED)
    assert row(db, body["uploadId"]) == before and before[:2] == [None, None]


@pytest.mark.parametrize("file_type", SHORTER_THAN_SIGNATURE)
def test_a_file_shorter_than_the_signature_is_422(api, db, file_type):
    body = upload(api, SHORTER_THAN_SIGNATURE[file_type], file_type)

    reply = api.confirm(body["uploadId"], body["sessionToken"])

    assert (reply.status, reply.body) == (422, NOT_VERIFIED)
    assert row(db, body["uploadId"])[:2] == [None, None]


def test_a_real_file_of_another_type_is_422(api):
    body = upload(api, pillow_bytes("JPEG"), "image/png")

    assert (api.confirm(body["uploadId"], body["sessionToken"]).body) == NOT_VERIFIED


def test_after_a_same_size_same_type_replacement_a_read_pinned_to_the_etag_is_refused_412(api, db, live_deps):
    original, replacement = png_bytes(color=(200, 80, 40)), png_bytes(color=(10, 200, 90))
    assert len(original) == len(replacement) and original != replacement
    body = upload(api, original, "image/png")
    assert api.confirm(body["uploadId"], body["sessionToken"]).status == 200
    etag = row(db, body["uploadId"])[1]
    client, bucket = live_deps.storage._client, live_deps.settings.r2_bucket
    pinned_before = client.get_object(Bucket=bucket, Key=body["key"], IfMatch=etag)["Body"].read()

    # The presigned URL is still valid after the confirm: anyone holding it can swap the bytes.
    assert put_object(body["uploadUrl"], replacement, "image/png")[0] == 200
    with pytest.raises(ClientError) as refused:
        client.get_object(Bucket=bucket, Key=body["key"], IfMatch=etag)

    assert pinned_before == original
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=bucket, Key=body["key"])["Body"].read() == replacement


def url_lifetime(upload_url):
    return int(parse_qs(urlsplit(upload_url).query)["X-Amz-Expires"][0])


def test_a_replayed_create_never_hands_out_a_url_that_outlives_the_job(api, db, live_deps):
    abandoned_after = live_deps.settings.abandoned_after_seconds
    headers = {"idempotency-key": "late-replay-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d"}
    first = api.create(upload_body(), headers=headers).body
    db.run("UPDATE uploads SET created_at = now() - make_interval(secs => :age) WHERE id = :id",
           age=abandoned_after - 120, id=first["uploadId"])

    replay = api.create(upload_body(), headers=headers)
    db.run("UPDATE uploads SET created_at = now() - make_interval(secs => :age) WHERE id = :id",
           age=abandoned_after + 1, id=first["uploadId"])
    too_late = api.create(upload_body(), headers=headers)

    assert url_lifetime(first["uploadUrl"]) == live_deps.settings.upload_url_ttl_seconds
    assert replay.status == 200 and 100 <= url_lifetime(replay.body["uploadUrl"]) <= 120
    assert too_late.status == 410 and too_late.body["error"]["code"] == "UPLOAD_EXPIRED"


@pytest.mark.parametrize("header, value", [
    ("Content-Encoding", "gzip"),
    ("Content-Encoding", "br"),
    ("Content-Disposition", 'attachment; filename="invoice.html"'),
])
def test_an_object_stored_with_an_encoding_or_a_disposition_the_url_did_not_sign_is_422_and_nothing_changes(
        api, db, header, value):
    data = png_bytes()
    created = api.create(upload_body(file_type="image/png", file_size=len(data))).body
    # Storage accepts these headers on a presigned PUT without their being signed.
    status, _ = http("PUT", created["uploadUrl"], data=data, headers={"Content-Type": "image/png", header: value})
    before = row(db, created["uploadId"])

    reply = api.confirm(created["uploadId"], created["sessionToken"])

    assert status == 200
    assert (reply.status, reply.body) == (422, NOT_VERIFIED)
    assert row(db, created["uploadId"]) == before


def test_an_object_stored_as_identity_is_confirmed(api):
    data = png_bytes()
    created = api.create(upload_body(file_type="image/png", file_size=len(data))).body
    status, _ = http("PUT", created["uploadUrl"], data=data,
                     headers={"Content-Type": "image/png", "Content-Encoding": "identity"})

    reply = api.confirm(created["uploadId"], created["sessionToken"])

    assert (status, reply.status) == (200, 200)
