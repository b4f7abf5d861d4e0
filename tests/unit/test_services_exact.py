"""The use cases' exact effects: which limits a create asks the database to check, the URL lifetime of a replay
at its last second and why a confirm refused (the sweep: test_sweep.py)."""

import hashlib
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


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


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
                                  max_upload_bytes=100, **{"url_ttl_seconds": 900, **kwargs})


# Create: limits

def recording_create(deps, outcome=None):
    asked = []

    def create_(**kwargs):
        asked.append(kwargs["limits"])
        return outcome or CreateOutcome(UploadRecord("ck1", "h", "uploads/ck1/original.png", "image/png", 68,
                                                     "pending", NOW, None), True)

    deps.uploads.create = create_
    return asked


def test_a_create_asks_for_the_ip_and_email_limits_keyed_by_digests_of_the_address_and_lower_cased_email(deps):
    asked = recording_create(deps)

    create(deps, source_ip="203.0.113.7", rate_limit_per_ip=RateLimit(10, 60),
           rate_limit_per_email=RateLimit(3, 3600))

    assert asked == [[LimitCheck("ip", sha256("ip:203.0.113.7"), 10, 60),
                      LimitCheck("email", sha256("email:maya.lee@example.com"), 3, 3600)]]


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
    first = create(deps, key="k1", abandoned_after_seconds=3600)
    row = deps.uploads.rows[first.upload_id]
    row["record"] = replace(row["record"], created_at=NOW - timedelta(seconds=age))

    again = create(deps, key="k1", abandoned_after_seconds=3600)

    assert again.upload_url.endswith(f"&ttl={expected_ttl}")
    assert again.expires_at == NOW + timedelta(seconds=expected_ttl) and again.replayed is True


@pytest.mark.parametrize("age", [3600, 3599.5, 3601])
def test_a_replay_with_less_than_a_second_left_is_expired(deps, age):
    first = create(deps, key="k1", abandoned_after_seconds=3600)
    row = deps.uploads.rows[first.upload_id]
    row["record"] = replace(row["record"], created_at=NOW - timedelta(seconds=age))

    with pytest.raises(UploadExpired):
        create(deps, key="k1", abandoned_after_seconds=3600)


# Confirm: what it reads and why it refuses

@pytest.mark.parametrize("stored, reason", [
    (None, "missing"),
    (ObjectInfo(67, "image/png", '"e"', SIGNATURES["image/png"]), "size"),
    (ObjectInfo(68, "image/jpeg", '"e"', SIGNATURES["image/png"]), "type"),
    (ObjectInfo(68, "image/png", '"e"', SIGNATURES["image/jpeg"]), "bytes"),
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


