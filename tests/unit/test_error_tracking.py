"""Error tracking without a network: what is scrubbed, what a 500 and a failing event function hand over."""

import json
from types import SimpleNamespace

import pytest

import app as app_module
from chalicelib.errortracking import REDACTED, ErrorTracking, scrub, scrub_exception_event


def test_the_requests_own_values_and_anything_shaped_like_a_secret_are_scrubbed():
    text = ("token 3f0c2a9e-8b1d-4c5e-9f7a-1b2c3d4e5f60 key k_9 for maya@example.com"
            " via https://storage.example/uploads/u/original.png?X-Amz-Credential=AK%2F&X-Amz-Signature=abc123"
            " digest hmac:" + "ab" * 32 + " job iz9z8o452gsdxvjnu2n6yw4e")

    scrubbed = scrub({"value": text, "frames": [{"vars": {"x": text}}]}, secrets=["k_9"])

    assert scrubbed["value"] == (
        f"token {REDACTED} key {REDACTED} for {REDACTED} via"
        f" https://storage.example/uploads/u/original.png?{REDACTED} digest hmac:{REDACTED} job"
        " iz9z8o452gsdxvjnu2n6yw4e")
    assert scrubbed["frames"][0]["vars"]["x"] == scrubbed["value"]


def test_only_exception_events_are_scrubbed_and_our_context_is_set_after_the_scrub():
    request_id = "0f0e0d0c-0b0a-4908-8706-050403020100"
    exception = {"event": "$exception", "properties": {
        "$exception_list": [{"value": "for maya@example.com"}],
        "$context": {"requestId": request_id, "function": "api"}}}
    analytics = {"event": "session_created", "properties": {"uploadId": "x", "note": "maya@example.com"}}

    assert scrub_exception_event(exception)["properties"] == {
        "$exception_list": [{"value": f"for {REDACTED}"}], "requestId": request_id, "function": "api"}
    assert scrub_exception_event(analytics) is analytics


class FailingClient:
    def capture_exception(self, exc, **kwargs):
        raise ConnectionError("no")

    def flush(self, timeout_seconds):
        raise ConnectionError("no")


def test_a_failing_client_never_raises_into_the_caller():
    tracking = ErrorTracking(FailingClient(), budget_seconds=0.1, version="v1")

    tracking.capture(RuntimeError("x"), function="api")
    tracking.flush()


def test_a_routes_500_hands_the_exception_over_with_the_requests_ids_and_secrets(api, deps, monkeypatch):
    failure = RuntimeError("boom")

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr(app_module.services, "get_upload_status", broken)

    reply = api.status("iz9z8o452gsdxvjnu2n6yw4e", "3f0c2a9e-8b1d-4c5e-9f7a-1b2c3d4e5f60")

    assert reply == (500, {"error": {"code": "INTERNAL_ERROR",
                                     "message": "Something went wrong on our side. Please try again."}})
    ((exc, context),) = deps.error_tracking.captured
    assert exc is failure
    assert {k: v for k, v in context.items() if k != "request_id"} == {
        "function": "api", "route": "get_upload", "upload_id": "iz9z8o452gsdxvjnu2n6yw4e",
        "secrets": ("3f0c2a9e-8b1d-4c5e-9f7a-1b2c3d4e5f60",)}
    assert deps.error_tracking.flushes == 1


def test_error_tracking_that_cannot_be_built_changes_nothing_about_the_500(api, deps, monkeypatch):
    class Unbuildable:
        def __getattr__(self, name):
            raise ConnectionError("SSM unreachable")

    deps.error_tracking = Unbuildable()
    monkeypatch.setattr(app_module.services, "get_upload_status", lambda *a, **k: 1 / 0)

    assert api.status("iz9z8o452gsdxvjnu2n6yw4e", "t").status == 500


def test_a_failing_event_function_hands_its_exception_over_and_still_fails(deps, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("sweep broke")

    monkeypatch.setattr(app_module.services, "expire_abandoned_uploads", broken)

    with pytest.raises(RuntimeError, match="^sweep broke$"):
        app_module.expire_abandoned({}, SimpleNamespace(aws_request_id="inv-1"))

    ((exc, context),) = deps.error_tracking.captured
    assert (str(exc), context) == ("sweep broke", {"function": "expire-abandoned", "request_id": "inv-1",
                                                   "upload_id": None, "secrets": ()})
    assert deps.error_tracking.flushes == 1
    json.dumps(context)  # plain values only
