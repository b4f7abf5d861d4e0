"""Unexpected exceptions reach PostHog's error tracking (a real local capture server), with the ids needed to find
them and none of the request's secrets: a request's 500, a failing sweep, a failing migration."""

import json
import time
import uuid
from dataclasses import replace
from types import SimpleNamespace

import pytest

import app as app_module
from chalicelib.deps import Dependencies
from chalicelib.errors import DatabaseUnavailable
from devstack.capture import CaptureServer
from devstack.processes import free_port
from tests.helpers import ApiClient, put_object, upload_body
from tests.images import SMALL_PNG

KEY = "phc_test_key"
BUDGET = 0.5
EMAIL = "maya.secret@example.com"


@pytest.fixture
def capture():
    server = CaptureServer().start()
    yield server
    server.stop()


def tracked(monkeypatch, live_deps, host, **settings):
    settings = replace(live_deps.settings, posthog_api_key=KEY, posthog_host=host, analytics_budget_seconds=BUDGET,
                       version="v-test-1", **settings)
    deps = Dependencies(settings)
    deps.__dict__.update(database=live_deps.database, uploads=live_deps.uploads, storage=live_deps.storage)
    monkeypatch.setattr(app_module, "deps", deps)
    return deps


def event(method, path, body=None, headers=None, request_id=None, upload_id=None):
    """A Lambda proxy event as API Gateway sends it, with a request id of our choosing."""
    resource = path.replace(upload_id, "{upload_id}") if upload_id else path
    return {
        "resource": resource, "path": path, "httpMethod": method,
        "headers": {"content-type": "application/json", **(headers or {})}, "multiValueHeaders": {},
        "queryStringParameters": None, "multiValueQueryStringParameters": None,
        "pathParameters": {"upload_id": upload_id} if upload_id else None, "stageVariables": None,
        "isBase64Encoded": False, "body": json.dumps(body) if body is not None else None,
        "requestContext": {"resourcePath": resource, "httpMethod": method, "requestId": request_id,
                           "identity": {"sourceIp": "10.9.8.7"}},
    }


def exceptions(capture):
    return [e for e in capture.events() if e["event"] == "$exception"]


def test_a_requests_500_reaches_error_tracking_with_its_ids_and_without_its_secrets(monkeypatch, live_deps,
                                                                                     capture):
    tracked(monkeypatch, live_deps, capture.url)
    idempotency_key = str(uuid.uuid4())
    created = app_module.app(event("POST", "/api/upload", upload_body(email=EMAIL, file_size=len(SMALL_PNG)),
                                   {"idempotency-key": idempotency_key}, str(uuid.uuid4())), None)
    job = json.loads(created["body"])
    assert put_object(job["uploadUrl"], SMALL_PNG, "image/png")[0] == 200
    token, presigned = job["sessionToken"], job["uploadUrl"]

    def broken_get(upload_id):
        # What a careless error could carry: every secret of the request, in its message and in its locals.
        session_token, upload_url, email, idem = token, presigned, EMAIL, idempotency_key
        note = f"copy of {session_token} for {email} via {upload_url}"
        raise RuntimeError(f"database exploded at {upload_url} (token {session_token}, {email}, key {idem}); {note}")

    monkeypatch.setattr(app_module.deps.uploads, "get", broken_get)
    request_id = str(uuid.uuid4())
    started = time.perf_counter()
    answer = app_module.app(event("GET", f"/api/upload/{job['uploadId']}",
                                  headers={"x-session-token": token}, request_id=request_id,
                                  upload_id=job["uploadId"]), None)
    elapsed = time.perf_counter() - started

    assert (answer["statusCode"], json.loads(answer["body"])) == (500, {"error": {
        "code": "INTERNAL_ERROR", "message": "Something went wrong on our side. Please try again."}})
    (reported,) = exceptions(capture)
    properties = reported["properties"]
    assert {k: properties[k] for k in ("function", "route", "requestId", "uploadId", "version")} == {
        "function": "api", "route": "get_upload", "requestId": request_id, "uploadId": job["uploadId"],
        "version": "v-test-1"}
    assert reported["distinct_id"] == job["uploadId"] and properties["$process_person_profile"] is False
    (thrown,) = [e for e in properties["$exception_list"] if e["type"] == "RuntimeError"]
    assert thrown["value"].startswith("database exploded at ")
    frames = {frame["function"]: frame for frame in thrown["stacktrace"]["frames"]}
    assert "broken_get" in frames and frames["broken_get"].get("code_variables")  # locals were sent, scrubbed
    sent = json.dumps(capture.batches)
    for secret in (token, idempotency_key, EMAIL, "maya.secret", presigned, presigned.split("?")[1],
                   "X-Amz-Signature=", "X-Amz-Credential="):
        assert secret not in sent, secret
    assert elapsed < BUDGET + 1.0
    print(f"\ncaptured $exception (value, one frame's locals): {thrown['value']!r}, "
          f"{frames['broken_get']['code_variables']}")


@pytest.mark.parametrize("mode", ["hanging", "refusing"])
def test_a_500_is_answered_within_the_budget_whatever_the_capture_server_does(monkeypatch, live_deps, capture,
                                                                              mode):
    host = f"http://127.0.0.1:{free_port()}" if mode == "refusing" else capture.url
    capture.mode = "hang" if mode == "hanging" else "ok"
    tracked(monkeypatch, live_deps, host)

    def broken(*args, **kwargs):
        raise RuntimeError("forced")

    monkeypatch.setattr(app_module.services, "describe_upload_limits", broken)
    started = time.perf_counter()
    answer = app_module.app(event("GET", "/api/upload/limits", request_id=str(uuid.uuid4())), None)
    elapsed = time.perf_counter() - started

    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"]["code"] == "INTERNAL_ERROR"
    assert elapsed < BUDGET + 0.5, elapsed


def test_a_failing_sweep_reaches_error_tracking_before_it_fails(monkeypatch, live_deps, capture):
    deps = tracked(monkeypatch, live_deps, capture.url)

    def broken(older_than_seconds):
        raise RuntimeError(f"sweep broke near {EMAIL}")

    deps.__dict__["uploads"] = SimpleNamespace(forget_rate_limits=broken, expire_abandoned=broken)
    context = SimpleNamespace(aws_request_id="sweep-invocation-1")

    with pytest.raises(RuntimeError, match="sweep broke"):
        app_module.expire_abandoned({}, context)

    (reported,) = exceptions(capture)
    assert {k: reported["properties"].get(k) for k in ("function", "requestId", "version")} == {
        "function": "expire-abandoned", "requestId": "sweep-invocation-1", "version": "v-test-1"}
    assert EMAIL not in json.dumps(capture.batches)


def test_a_failing_migration_reaches_error_tracking_before_it_fails(monkeypatch, live_deps, capture):
    tracked(monkeypatch, live_deps, capture.url,
            database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/none?sslmode=disable")
    context = SimpleNamespace(aws_request_id="migrate-invocation-1")

    with pytest.raises(DatabaseUnavailable):
        app_module.migrate({}, context)

    (reported,) = exceptions(capture)
    assert {k: reported["properties"].get(k) for k in ("function", "requestId", "version")} == {
        "function": "migrate", "requestId": "migrate-invocation-1", "version": "v-test-1"}
    assert [e["type"] for e in reported["properties"]["$exception_list"]][0] == "DatabaseUnavailable"
