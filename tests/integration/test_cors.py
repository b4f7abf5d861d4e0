"""CORS over real HTTP (`chalice local`, as `make dev` runs it): every allowed origin is reflected on preflights
and on every response, errors included; any other origin is never named."""

import json
import urllib.error
import urllib.request

import pytest

import app as app_module
from tests.stack_fixtures import SECOND_ORIGIN

EVIL = "https://evil.example.com"


def send(url, method="GET", headers=None, body=None):
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def preflight(live_server, origin, path="/api/upload", method="POST"):
    return send(f"{live_server}{path}", "OPTIONS", {
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "content-type,idempotency-key,x-session-token"})


def example_path(route):
    return route.replace("{upload_id}", "abcdefghijklmnopqrstuvwx")


@pytest.mark.parametrize("route", app_module.API_PATHS)
def test_every_allowed_origin_gets_the_preflight_of_every_api_route(live_server, route):
    for origin in (live_server, SECOND_ORIGIN):  # make dev's own origin, and one ALLOWED_ORIGINS adds
        status, headers, body = preflight(live_server, origin, example_path(route))

        assert (status, body) == (204, b"")
        assert {k: headers[k] for k in ("Access-Control-Allow-Origin", "Access-Control-Allow-Headers",
                                        "Access-Control-Max-Age", "Vary")} == {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Headers": "Content-Type, X-Session-Token, Idempotency-Key, X-View-Token",
            "Access-Control-Max-Age": "7200",
            "Vary": "Origin",
        }
        # Whatever methods the app routes there, in any order: a new route's preflight needs no edit here.
        assert sorted(headers["Access-Control-Allow-Methods"].split(", ")) == sorted(app_module.app.routes[route])


def test_the_preflight_of_a_job_allows_its_cancel(live_server):
    status, headers, _ = preflight(live_server, SECOND_ORIGIN, example_path("/api/upload/{upload_id}"), "DELETE")

    assert status == 204 and "DELETE" in headers["Access-Control-Allow-Methods"].split(", ")


def test_another_origin_is_refused_and_never_named(live_server):
    for path in ("/api/upload", "/api/health"):
        status, headers, body = preflight(live_server, EVIL, path)

        assert status == 403
        assert json.loads(body) == {"error": {"code": "ORIGIN_NOT_ALLOWED",
                                              "message": "This website is not allowed to call the upload API."}}
        assert "Access-Control-Allow-Origin" not in headers and headers["Vary"] == "Origin"


def test_actual_responses_errors_included_reflect_an_allowed_origin_only(live_server):
    bad_body = {"Origin": SECOND_ORIGIN, "Content-Type": "application/json"}
    status, headers, body = send(f"{live_server}/api/upload", "POST", bad_body, b"{}")
    assert status == 400 and json.loads(body)["error"]["code"] == "VALIDATION_ERROR"
    assert (headers["Access-Control-Allow-Origin"], headers["Access-Control-Expose-Headers"], headers["Vary"]) == (
        SECOND_ORIGIN, "Retry-After, x-amzn-RequestId, x-amz-apigw-id", "Origin")

    status, headers, _ = send(f"{live_server}/api/upload/abcdefghijklmnopqrstuvwx", headers={"Origin": EVIL})
    assert status == 401 and "Access-Control-Allow-Origin" not in headers and headers["Vary"] == "Origin"

    status, headers, _ = send(f"{live_server}/api/health", headers={"Origin": SECOND_ORIGIN})
    assert status == 200 and headers["Access-Control-Allow-Origin"] == SECOND_ORIGIN


def test_the_limits_reach_another_origin_cacheably_and_are_not_taken_for_an_upload_id(live_server):
    status, headers, body = send(f"{live_server}/api/upload/limits", headers={"Origin": SECOND_ORIGIN})

    assert (status, json.loads(body)) == (200, {"maxUploadBytes": 20 * 1024 * 1024,
                                                "fileTypes": ["image/jpeg", "image/png", "image/webp", "image/heic"]})
    assert (headers["Access-Control-Allow-Origin"], headers["Cache-Control"], headers["Content-Type"]) == (
        SECOND_ORIGIN, "public, max-age=3600", "application/json")
