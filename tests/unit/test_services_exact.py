"""The use cases' exact effects: which limits a create asks the database to check, the URL lifetime of a replay
at its last second and why a confirm refused (the sweep: test_sweep.py)."""

import hashlib
import hmac
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import services
from chalicelib.config import RateLimit
from chalicelib.errors import RateLimited, UploadExpired, UploadNotVerified
from chalicelib.repository import CreateOutcome, LimitCheck, UploadRecord
from chalicelib.storage import ObjectInfo
from tests.unit.fakes import SIGNATURES, FakeDeps, FakeStorage

BODY = {"email": "Maya.Lee@Example.com", "fileType": "image/png", "fileSize": 68}
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc)


SECRET = "test digest secret, at least 32 characters"


def keyed(purpose, text):
    return hmac.new(SECRET.encode(), f"{purpose}\0{text}".encode(), hashlib.sha256).hexdigest()


class FixedNow(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW


@pytest.fixture
def deps(monkeypatch):
    monkeypatch.setattr(services, "datetime", FixedNow)
    return FakeDeps(None)


def create(deps, key=None, **kwargs):
    return services.create_upload(BODY, key, uploads=deps.uploads, storage=deps.storage, analytics=deps.analytics,
                                  max_upload_bytes=100, digest_secret=SECRET, **{"url_ttl_seconds": 900, **kwargs})


# Create: limits

def recording_create(deps, outcome=None):
    asked = []

    def create_(**kwargs):
        asked.append(kwargs["limits"])
        return outcome or CreateOutcome(UploadRecord("ck1", "h", "uploads/ck1/original.png", "image/png", 68,
                                                     "pending", NOW, None), True)

    deps.uploads.create = create_
    return asked


def test_a_create_asks_for_the_ip_limit_and_the_email_and_address_limit_keyed_by_hmacs_under_the_secret(deps):
    asked = recording_create(deps)

    create(deps, source_ip="203.0.113.7", rate_limit_per_ip=RateLimit(10, 60),
           rate_limit_per_email=RateLimit(3, 3600))

    assert asked == [[LimitCheck("ip", keyed("rate-limit:ip", "203.0.113.7"), 10, 60),
                      LimitCheck("email", keyed("rate-limit:email", "maya.lee@example.com\x00203.0.113.7"), 3, 3600)]]


def test_a_keyed_create_hands_the_database_hmacs_of_key_and_request_and_the_pre_0006_forms_to_match(deps):
    asked = []
    deps.uploads.create = lambda **kwargs: asked.append(kwargs) or CreateOutcome(
        UploadRecord("ck1", "h", "uploads/ck1/original.png", "image/png", 68, "pending", NOW, None), True)
    key = "0b6e3a9e-5d2c-4f7a-9c1e-4b3d8e6f0a1b"

    create(deps, key=key)

    canonical = '["Maya.Lee@example.com","image/png",68]'
    assert {name: asked[0][name] for name in ("idempotency_key", "legacy_idempotency_key", "fingerprint",
                                              "legacy_fingerprint", "email")} == {
        "idempotency_key": "hmac:" + keyed("idempotency-key", key),
        "legacy_idempotency_key": "sha256:" + hashlib.sha256(key.encode()).hexdigest(),
        "fingerprint": keyed("fingerprint", canonical),
        "legacy_fingerprint": hashlib.sha256(canonical.encode()).hexdigest(),
        "email": "Maya.Lee@example.com",
    }


@pytest.mark.parametrize("source_ip, per_ip, per_email, scopes", [
    (None, RateLimit(10, 60), RateLimit(3, 3600), ["email"]),  # no address seen: only the email limit applies
    ("", RateLimit(10, 60), None, []),
    ("203.0.113.7", None, None, []),
    ("203.0.113.7", RateLimit(10, 60), None, ["ip"]),
])
def test_only_configured_limits_with_something_to_count_by_are_asked_for(deps, source_ip, per_ip, per_email, scopes):
    asked = recording_create(deps)

    create(deps, source_ip=source_ip, rate_limit_per_ip=per_ip, rate_limit_per_email=per_email)

    assert [check.scope for check in asked[0]] == scopes


def test_a_create_over_a_limit_raises_rate_limited_with_the_databases_wait(deps):
    recording_create(deps, CreateOutcome(None, False, retry_after_seconds=125))

    with pytest.raises(RateLimited) as caught:
        create(deps, source_ip="203.0.113.7", rate_limit_per_ip=RateLimit(1, 600))

    assert (caught.value.retry_after_seconds, caught.value.message) == (
        125, "Too many uploads right now. Please try again in 3 minutes.")
    assert deps.analytics.events == []


# Create: a replay's URL lifetime

@pytest.mark.parametrize("age, expected_ttl", [
    (3600 - 901, 900),  # more than the TTL left: the TTL
    (3600 - 900, 900),
    (3600 - 899, 899),
    (3600 - 1, 1),      # one second left: a one-second URL
])
def test_a_replay_gets_the_smaller_of_the_ttl_and_what_is_left_of_its_job(deps, age, expected_ttl):
    first = create(deps, key="k1-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d", abandoned_after_seconds=3600)
    row = deps.uploads.rows[first.upload_id]
    row["record"] = replace(row["record"], created_at=NOW - timedelta(seconds=age))

    again = create(deps, key="k1-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d", abandoned_after_seconds=3600)

    assert again.upload_url.endswith(f"&ttl={expected_ttl}")
    assert again.expires_at == NOW + timedelta(seconds=expected_ttl) and again.replayed is True


@pytest.mark.parametrize("age", [3600, 3599.5, 3601])
def test_a_replay_with_less_than_a_second_left_is_expired(deps, age):
    first = create(deps, key="k1-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d", abandoned_after_seconds=3600)
    row = deps.uploads.rows[first.upload_id]
    row["record"] = replace(row["record"], created_at=NOW - timedelta(seconds=age))

    with pytest.raises(UploadExpired):
        create(deps, key="k1-5d2c4f7a-9c1e-4b3d-8e6f-0a1b2c3d", abandoned_after_seconds=3600)


# Confirm: what it reads and why it refuses

@pytest.mark.parametrize("stored, reason", [
    (None, "missing"),
    (ObjectInfo(67, "image/png", '"e"', SIGNATURES["image/png"]), "size"),
    (ObjectInfo(68, "image/jpeg", '"e"', SIGNATURES["image/png"]), "type"),
    (ObjectInfo(68, "image/png", '"e"', SIGNATURES["image/jpeg"]), "bytes"),
    (ObjectInfo(68, "image/png", '"e"', SIGNATURES["image/png"], content_encoding="gzip"), "encoding"),
    (ObjectInfo(68, "image/png", '"e"', SIGNATURES["image/png"], content_encoding="br, identity"), "encoding"),
    (ObjectInfo(68, "image/png", '"e"', SIGNATURES["image/png"], content_disposition="attachment; filename=a.html"),
     "disposition"),
])
def test_a_refused_confirm_names_the_check_that_failed_after_reading_the_first_64_bytes(deps, stored, reason):
    created = create(deps)
    storage = FakeStorage()
    if stored is not None:
        storage.objects[created.key] = stored

    with pytest.raises(UploadNotVerified) as caught:
        services.confirm_upload(created.upload_id, created.session_token, uploads=deps.uploads, storage=storage,
                                analytics=deps.analytics)

    assert caught.value.reason == reason
    assert storage.peeks == [{"key": created.key, "length": 64}]
    assert deps.uploads.get(created.upload_id).confirmed_at is None


@pytest.mark.parametrize("encoding", ["", "identity", " Identity "])
def test_a_confirm_accepts_an_object_stored_without_an_encoding_or_as_identity(deps, encoding):
    created = create(deps)
    storage = FakeStorage()
    storage.objects[created.key] = ObjectInfo(68, "image/png", '"e"', SIGNATURES["image/png"], content_encoding=encoding)

    confirmed = services.confirm_upload(created.upload_id, created.session_token, uploads=deps.uploads,
                                        storage=storage, analytics=deps.analytics)

    assert confirmed.job_id == created.upload_id
