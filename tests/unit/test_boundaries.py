"""Each limit tested on both sides of its edge: the last value accepted and the first refused."""

import hashlib
import hmac

import pytest

from chalicelib import domain, services
from chalicelib.errors import DatabaseUnavailable, InvalidToken, ValidationFailed
from tests.unit.fakes import FakeUploads

UPLOAD_ID = "ckabcdefghijklmnopqrstuv"


def email_of_length(n):
    """A valid address of exactly n characters: 64-character local part, labels of at most 63."""
    last = n - (64 + 1 + 63 + 1 + 63 + 1)
    return "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * (last - 4) + ".com"


def parse(body, max_bytes=1000):
    return domain.parse_upload_request({"email": "maya@example.com", "fileType": "image/png", "fileSize": 5,
                                        **body}, max_bytes=max_bytes)


def test_an_email_of_254_characters_is_accepted():
    email = email_of_length(254)

    assert len(email) == 254
    assert parse({"email": email}).email == email


def test_an_email_of_255_characters_is_refused_by_length():
    email = email_of_length(255)

    assert len(email) == 255
    with pytest.raises(ValidationFailed, match=r"^email: must be at most 254 characters\.$"):
        parse({"email": email})


@pytest.mark.parametrize("size, max_bytes", [(1, 1000), (1000, 1000), (1, 1)])
def test_sizes_from_one_byte_to_the_maximum_are_accepted(size, max_bytes):
    assert parse({"fileSize": size}, max_bytes).file_size == size


@pytest.mark.parametrize("size, max_bytes", [(0, 1000), (1001, 1000), (2, 1), (-1, 1000)])
def test_an_empty_or_larger_than_maximum_size_is_refused(size, max_bytes):
    with pytest.raises(ValidationFailed, match=f"^fileSize: must be between 1 and {max_bytes} bytes\\.$"):
        parse({"fileSize": size}, max_bytes)


@pytest.mark.parametrize("key", ["a" * 32, "~" * 32, " " * 32, "!" * 32, "x" * 255, " ~" * 127 + "~"])
def test_idempotency_keys_of_32_to_255_printable_characters_pass(key):
    assert domain.parse_idempotency_key(key) == key


@pytest.mark.parametrize("key", ["", "a", "x" * 31, "x" * 256, "\x7f" * 32, "\x1f" * 32, "ab\x7f" + "x" * 32,
                                 "é" * 32, "a\tb" + "x" * 32])
def test_idempotency_keys_outside_that_range_are_refused(key):
    with pytest.raises(ValidationFailed) as caught:
        domain.parse_idempotency_key(key)

    assert caught.value.message == "Idempotency-Key: must be 32 to 255 printable ASCII characters (a random value such as a UUID)."


def test_no_idempotency_key_is_no_key():
    assert domain.parse_idempotency_key(None) is None


def test_a_token_of_128_characters_is_looked_up():
    uploads = FakeUploads()
    uploads.down = True  # so a lookup shows as DatabaseUnavailable

    with pytest.raises(DatabaseUnavailable):
        services.authorize(UPLOAD_ID, "t" * 128, uploads=uploads)


def test_a_token_of_129_characters_is_refused_without_a_lookup():
    uploads = FakeUploads()
    uploads.down = True

    with pytest.raises(InvalidToken):
        services.authorize(UPLOAD_ID, "t" * 129, uploads=uploads)


def test_the_fingerprint_is_the_hmac_of_the_compact_json_of_the_request_and_the_legacy_one_its_sha256():
    # Stored with each job: changing its form would turn every pending replay into IDEMPOTENCY_KEY_REUSED.
    request = domain.UploadRequest(email="maya@example.com", file_type="image/png", file_size=68)
    secret = "test digest secret, at least 32 characters"

    assert request.fingerprint(secret) == hmac.new(
        secret.encode(), b'fingerprint\0["maya@example.com","image/png",68]', hashlib.sha256).hexdigest()
    assert request.legacy_fingerprint() == hashlib.sha256(b'["maya@example.com","image/png",68]').hexdigest()


def test_the_token_hash_is_the_sha256_hex_of_its_utf8_bytes():
    assert domain.hash_token("tökén") == hashlib.sha256("tökén".encode("utf-8")).hexdigest()
