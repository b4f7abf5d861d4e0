"""PostHog events against a real local capture server: exact events, nothing on failure, bounded waits."""

import logging
import time
from dataclasses import replace

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.deps import Dependencies
from devstack.capture import CaptureServer
from devstack.processes import free_port
from tests.helpers import ApiClient, put_object, upload_body
from tests.images import SMALL_PNG

KEY = "phc_test_key"
BUDGET = 0.5


@pytest.fixture
def capture():
    server = CaptureServer().start()
    yield server
    server.stop()


def api_with_analytics(monkeypatch, live_deps, host):
    settings = replace(live_deps.settings, posthog_api_key=KEY, posthog_host=host, analytics_budget_seconds=BUDGET)
    deps = Dependencies(settings)
    # Share the warm database pool and storage client; only analytics differs.
    deps.__dict__.update(database=live_deps.database, uploads=live_deps.uploads, storage=live_deps.storage)
    monkeypatch.setattr(app_module, "deps", deps)
    return ApiClient(Client(app_module.app).http), deps


def full_flow(api):
    body = api.create(upload_body(file_size=len(SMALL_PNG))).body
    assert put_object(body["uploadUrl"], SMALL_PNG, "image/png")[0] == 200
    assert api.confirm(body["uploadId"], body["sessionToken"]).status == 200
    return body


def test_a_full_flow_sends_the_three_events_with_exact_properties(monkeypatch, live_deps, capture):
    api, _ = api_with_analytics(monkeypatch, live_deps, capture.url)

    body = full_flow(api)

    events = capture.events()
    upload_id = body["uploadId"]
    assert [e["event"] for e in events] == ["session_created", "upload_confirmed", "upload_completed"]
    assert all(e["distinct_id"] == upload_id for e in events)
    assert all(batch["api_key"] == KEY for batch in capture.batches)
    completed = events[-1]["properties"]
    assert {k: completed[k] for k in ("uploadId", "fileSize", "fileType", "$process_person_profile")} == {
        "uploadId": upload_id, "fileSize": len(SMALL_PNG), "fileType": "image/png", "$process_person_profile": False}
    assert isinstance(completed["durationMs"], int) and completed["durationMs"] >= 0
    assert events[0]["properties"]["uploadId"] == upload_id
    sent = str(capture.batches)
    assert "example.com" not in sent and body["sessionToken"] not in sent
    print(f"\ncaptured upload_completed: {events[-1]}")


def test_rejected_requests_and_a_retried_confirm_send_nothing(monkeypatch, live_deps, capture):
    api, _ = api_with_analytics(monkeypatch, live_deps, capture.url)
    body = full_flow(api)
    sent_before = len(capture.events())

    assert api.confirm(body["uploadId"], body["sessionToken"]).status == 409
    assert api.create(upload_body(file_size=0)).status == 400
    assert api.confirm(body["uploadId"], "not-the-token").status == 401

    assert len(capture.events()) == sent_before


def test_one_posthog_client_serves_every_request(monkeypatch, live_deps, capture):
    from posthog.client import Client as PosthogClient

    api, deps = api_with_analytics(monkeypatch, live_deps, capture.url)
    for _ in range(5):
        full_flow(api)

    assert len(PosthogClient._client_registry[(KEY, capture.url)]) == 1
    assert len(capture.events()) == 15


def test_with_analytics_off_nothing_is_sent_and_posthog_is_not_needed(api, live_deps, capture):
    assert live_deps.settings.posthog_api_key is None

    full_flow(api)

    assert capture.batches == []
    assert type(live_deps.analytics).__name__ == "DisabledAnalytics"


@pytest.mark.parametrize("mode", ["healthy", "refusing", "failing", "hanging"])
def test_requests_succeed_whatever_the_capture_server_does(monkeypatch, live_deps, capture, caplog, mode):
    host = f"http://127.0.0.1:{free_port()}" if mode == "refusing" else capture.url
    capture.mode = {"failing": "error", "hanging": "hang"}.get(mode, "ok")
    api, _ = api_with_analytics(monkeypatch, live_deps, host)
    caplog.set_level(logging.WARNING, logger="chalicelib")

    timings = []
    for _ in range(3):
        started = time.perf_counter()
        body = api.create(upload_body(file_size=len(SMALL_PNG))).body
        timings.append(time.perf_counter() - started)
        assert put_object(body["uploadUrl"], SMALL_PNG, "image/png")[0] == 200
        started = time.perf_counter()
        assert api.confirm(body["uploadId"], body["sessionToken"]).status == 200
        timings.append(time.perf_counter() - started)
    time.sleep(BUDGET + 0.3)  # let the last delivery attempt finish (and fail) in the background

    failures = [r for r in caplog.records if "analytics: delivery failed" in r.getMessage()]
    print(f"\n{mode}: request latency ms (create, confirm) x3 = {[round(t * 1000) for t in timings]}, "
          f"budget {BUDGET * 1000:.0f} ms, failure log lines = {len(failures)}")
    if mode == "healthy":
        assert failures == [] and len(capture.events()) == 9
    else:
        assert 1 <= len(failures) <= 6  # at most one per request
    assert all(body["sessionToken"] not in r.getMessage() and "session_created" not in r.getMessage()
               for r in caplog.records)
