"""Request validation, ids, keys and tokens: pure functions."""

import hashlib
import hmac
import re

import pytest

from chalicelib import domain
from chalicelib.errors import (
    AlreadyConfirmed,
    UnknownStatus,
    UploadCancelled,
    UploadError,
    UploadExpired,
    ValidationFailed,
)

SECRET = "test digest secret, at least 32 characters"

MAX = 20 * 1024 * 1024


def parse(**overrides):
    body = {"email": "maya@example.com", "fileType": "image/png", "fileSize": 1000, **overrides}
    return domain.parse_upload_request(body, max_bytes=MAX)


def test_an_integral_json_number_is_an_integer_size():
    assert parse(fileSize=1024.0).file_size == 1024


def test_a_valid_request_is_normalised():
    request = parse(email="  Maya@EXAMPLE.com ", fileType="image/heic", fileSize=MAX)

    assert request == domain.UploadRequest(email="Maya@example.com", file_type="image/heic", file_size=MAX)
    assert request.extension == "heic"


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "The request body must be a JSON object."),
        ("text", "The request body must be a JSON object."),
        ({"fileType": "image/png", "fileSize": 1}, "email: a non-empty string is required."),
        ({"email": 42, "fileType": "image/png", "fileSize": 1}, "email: a non-empty string is required."),
        ({"email": "x@" + "a" * 260 + ".com", "fileType": "image/png", "fileSize": 1},
         "email: must be at most 254 characters."),
        ({"email": "maya@example.com", "fileType": "image/gif", "fileSize": 1},
         "fileType: must be one of image/jpeg, image/png, image/webp, image/heic."),
        ({"email": "maya@example.com", "fileSize": 1},
         "fileType: must be one of image/jpeg, image/png, image/webp, image/heic."),
        ({"email": "maya@example.com", "fileType": "image/png", "fileSize": True},
         "fileSize: an integer number of bytes is required."),
        ({"email": "maya@example.com", "fileType": "image/png", "fileSize": 1.5},
         "fileSize: an integer number of bytes is required."),
        ({"email": "maya@example.com", "fileType": "image/png", "fileSize": "10"},
         "fileSize: an integer number of bytes is required."),
        ({"email": "maya@example.com", "fileType": "image/png", "fileSize": 0},
         f"fileSize: must be between 1 and {MAX} bytes."),
        ({"email": "maya@example.com", "fileType": "image/png", "fileSize": MAX + 1},
         f"fileSize: must be between 1 and {MAX} bytes."),
    ],
)
def test_bad_requests_name_the_field(body, message):
    with pytest.raises(ValidationFailed) as caught:
        domain.parse_upload_request(body, max_bytes=MAX)

    assert caught.value.message == message
    assert caught.value.code == "VALIDATION_ERROR"


@pytest.mark.parametrize("email", ["plainaddress", "a@b", "maya@@example.com", "maya@example..com"])
def test_a_bad_email_is_refused_with_the_reason(email):
    with pytest.raises(ValidationFailed) as caught:
        parse(email=email)

    assert caught.value.message.startswith("email: not a valid email address (")


def test_the_fingerprint_changes_with_any_field_and_with_the_secret_and_not_otherwise():
    base = parse().fingerprint(SECRET)

    assert parse().fingerprint(SECRET) == base
    assert parse(email="MAYA@example.com").fingerprint(SECRET) != base
    assert parse(fileSize=1001).fingerprint(SECRET) != base
    assert parse(fileType="image/jpeg").fingerprint(SECRET) != base
    assert parse().fingerprint("another-secret-of-at-least-32-chars") != base
    # Without the secret, a guessed email cannot be tested against it: no plain hash of the request matches.
    assert base != parse().legacy_fingerprint()


def test_tokens_are_random_uuid4_strings_and_unique():
    tokens = {domain.mint_token() for _ in range(1000)}

    assert len(tokens) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", t) for t in tokens)


def test_the_stored_hash_is_sha256_hex_and_matches_only_its_token():
    token = domain.mint_token()

    assert domain.hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert domain.token_matches(token, domain.hash_token(token))
    assert not domain.token_matches(domain.mint_token(), domain.hash_token(token))
    assert not domain.token_matches("\udcff", domain.hash_token(token))


def test_upload_ids_are_cuid2_and_only_such_ids_are_accepted():
    upload_id = domain.new_upload_id()

    assert domain.is_upload_id(upload_id) and len(upload_id) == 24
    for bad in ["", "../../etc/passwd", "A" * 24, "1" + upload_id[1:], upload_id + "x", upload_id[:-1], "uploads/x"]:
        assert not domain.is_upload_id(bad), bad


def test_the_object_key_is_built_from_the_id_and_the_type_extension():
    assert domain.object_key("ckabc", "jpg") == "uploads/ckabc/original.jpg"
    assert {parse(fileType=t).extension for t in domain.FILE_TYPES} == {"jpg", "png", "webp", "heic"}


@pytest.mark.parametrize("key", ["", "x" * 31, "x" * 256, "caf\u00e9" + "x" * 32, "new\nline" + "x" * 32])
def test_bad_idempotency_keys_are_refused(key):
    with pytest.raises(ValidationFailed) as caught:
        domain.parse_idempotency_key(key)

    assert caught.value.message == "Idempotency-Key: must be 32 to 255 printable ASCII characters (a random value such as a UUID)."


def test_good_idempotency_keys_pass_unchanged():
    assert domain.parse_idempotency_key(None) is None
    assert domain.parse_idempotency_key("x" * 255) == "x" * 255
    assert domain.parse_idempotency_key("x" * 32) == "x" * 32
    # Our client's keys: crypto.randomUUID(), 36 characters.
    assert domain.parse_idempotency_key("0b6e3a9e-5d2c-4f7a-9c1e-4b3d8e6f0a1b") == "0b6e3a9e-5d2c-4f7a-9c1e-4b3d8e6f0a1b"


def test_a_key_is_kept_as_a_tagged_hmac_under_the_secret_and_its_pre_0006_form_as_a_tagged_sha256():
    key = "0b6e3a9e-5d2c-4f7a-9c1e-4b3d8e6f0a1b"

    assert domain.idempotency_key_digest(SECRET, key) == "hmac:" + hmac.new(
        SECRET.encode(), b"idempotency-key\0" + key.encode(), hashlib.sha256).hexdigest()
    assert domain.legacy_idempotency_key_digest(key) == "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    assert key not in domain.idempotency_key_digest(SECRET, key)


def test_the_per_email_limit_counts_an_address_in_any_letter_case_as_one_and_keeps_no_clear_text():
    keys = {domain.rate_limit_key(SECRET, "email", email, "203.0.113.7")
            for email in ("Maya.Lee@Example.com", "maya.lee@example.com ", "MAYA.LEE@EXAMPLE.COM")}

    assert len(keys) == 1
    assert re.fullmatch(r"[0-9a-f]{64}", keys.pop())
    assert domain.rate_limit_key(SECRET, "ip", "203.0.113.7") != domain.rate_limit_key(SECRET, "email", "203.0.113.7")


def test_the_email_limit_counts_each_client_address_apart_so_no_client_uses_up_anothers():
    mine = domain.rate_limit_key(SECRET, "email", "maya@example.com", "203.0.113.7")

    assert domain.rate_limit_key(SECRET, "email", "maya@example.com", "198.51.100.9") != mine
    assert domain.rate_limit_key(SECRET, "email", "maya@example.com", " 203.0.113.7 ") == mine


@pytest.mark.parametrize("scope, value, source_ip, counted", [
    ("email", " Maya.Lee@Example.com ", "203.0.113.7", "maya.lee@example.com\0" "203.0.113.7"),
    ("email", "maya@example.com", None, "maya@example.com\0"),
    ("ip", " 2001:DB8::1 ", None, "2001:DB8::1"),  # only emails are lower-cased
    ("ip", "203.0.113.7", None, "203.0.113.7"),
])
def test_a_rate_limit_key_is_the_hmac_of_the_scope_and_the_trimmed_value(scope, value, source_ip, counted):
    assert domain.rate_limit_key(SECRET, scope, value, source_ip) == hmac.new(
        SECRET.encode(), f"rate-limit:{scope}\0{counted}".encode(), hashlib.sha256).hexdigest()


def test_a_rate_limit_key_of_text_with_a_lone_surrogate_is_still_a_digest():
    assert domain.rate_limit_key(SECRET, "email", "a\udc80@x") == hmac.new(
        SECRET.encode(), "rate-limit:email\0a\udc80@x\0".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


# The job lifecycle

@pytest.mark.parametrize("status, confirmed, stage", [
    ("pending", False, "pending"),
    ("pending", True, "confirmed"),
    ("processing", True, "processing"),
    ("completed", True, "completed"),
    ("failed", True, "failed"),
    ("expired", False, "expired"),
    ("cancelled", False, "cancelled"),
])
def test_a_stored_status_and_its_confirmation_give_the_stage(status, confirmed, stage):
    assert domain.stage_of(status, confirmed) == stage


@pytest.mark.parametrize("status", ["archived", "Pending", "", None, "confirmed"])
def test_a_status_the_lifecycle_does_not_define_is_an_unknown_status_carrying_its_value(status):
    with pytest.raises(UnknownStatus) as unknown:
        domain.stage_of(status, False)

    assert (unknown.value.status, unknown.value.code) == (status, "INTERNAL_ERROR")


@pytest.mark.parametrize("stage, refused", [
    ("confirmed", AlreadyConfirmed),
    ("processing", AlreadyConfirmed),
    ("completed", AlreadyConfirmed),
    ("failed", AlreadyConfirmed),
    ("expired", UploadExpired),
    ("cancelled", UploadCancelled),
])
def test_a_job_past_pending_refuses_every_client_step_with_the_error_of_its_stage(stage, refused):
    assert type(domain.refusal(stage)) is refused
    for step in ("confirmed", "cancelled"):
        with pytest.raises(refused):
            domain.ensure_may(stage, step)


def test_a_pending_job_may_be_confirmed_or_cancelled_and_a_refusal_of_it_is_no_users_fault():
    domain.ensure_may("pending", "confirmed")
    domain.ensure_may("pending", "cancelled")
    assert type(domain.refusal("pending")) is UploadError
    assert type(domain.refusal("no such stage")) is UploadError


def test_only_a_cancelled_job_is_hidden_from_its_status():
    for stage in domain.TRANSITIONS:
        if stage == "cancelled":
            with pytest.raises(UploadCancelled):
                domain.ensure_visible(stage)
        else:
            domain.ensure_visible(stage)


def test_the_lifecycle_lists_each_stored_status_once_and_confirmed_only_as_a_stage():
    assert len(set(domain.STATUSES)) == len(domain.STATUSES) and domain.CONFIRMED not in domain.STATUSES
    assert set(domain.TRANSITIONS) == {*domain.STATUSES, domain.CONFIRMED}
    assert {"completed", "failed", "expired", "cancelled"} <= set(domain.FINISHED)
    assert not {"pending", "processing"} & set(domain.FINISHED)
    assert domain.TRANSITIONS["pending"] == {"confirmed", "expired", "cancelled"}
    assert domain.TRANSITIONS["confirmed"] == {"processing", "failed"}
    assert domain.TRANSITIONS["processing"] == {"completed", "failed"}
    assert all(not domain.TRANSITIONS[final] for final in domain.FINISHED)
