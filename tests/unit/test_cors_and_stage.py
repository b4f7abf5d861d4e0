"""CORS answered by the function, pages under API Gateway's stage prefix, and 503 when settings cannot be
resolved: through the app with API Gateway REST's proxy events (devstack.apigw builds them) and fakes."""

import json
import logging
from dataclasses import replace

import pytest

import app as app_module
from chalicelib import pages
from chalicelib.config import ConfigError
from chalicelib.http import cors_headers, preflight_response, with_cors
from chalice import Response
from devstack.apigw import ApiGateway, LambdaContext, proxy_event
from tests.unit.fakes import FakeDeps

ALLOWED = ("https://app.3d-ultra.example", "http://localhost:3000")


@pytest.fixture
def deps(monkeypatch):
    fake = FakeDeps(replace(app_module.deps.settings, allowed_origins=ALLOWED,
                            r2_endpoint_url="https://acct.r2.cloudflarestorage.com"))
    monkeypatch.setattr(app_module, "deps", fake)
    return fake


@pytest.fixture
def gateway(deps):
    """The app as API Gateway REST serves it under the stage `api` (no sockets: `handle` is called directly)."""
    return ApiGateway(app_module.app, stage="api")


def call(gateway, method, path, headers=None, body=b""):
    status, headers, payload = gateway.handle(method, path, list((headers or {}).items()), body, "203.0.113.9")
    return status, dict(headers), payload


def test_cors_headers_reflect_an_allowed_origin_and_never_name_another():
    assert cors_headers("http://localhost:3000", ALLOWED) == {
        "Access-Control-Allow-Origin": "http://localhost:3000",
        "Access-Control-Expose-Headers": "Retry-After, x-amzn-RequestId, x-amz-apigw-id",
        "Vary": "Origin"}
    assert cors_headers("https://evil.example", ALLOWED) == {"Vary": "Origin"}
    assert cors_headers(None, ALLOWED) == {"Vary": "Origin"}
    # Exact comparison: what a browser sends for another scheme, port or a sub-domain is another origin.
    for near_miss in ("http://app.3d-ultra.example", "https://app.3d-ultra.example:8443",
                      "https://x.app.3d-ultra.example", "https://app.3d-ultra.example.evil.example", "null"):
        assert cors_headers(near_miss, ALLOWED) == {"Vary": "Origin"}


def test_with_cors_keeps_a_vary_the_response_already_had():
    response = with_cors(Response(body="", headers={"Vary": "Accept-Encoding"}), ALLOWED[0], ALLOWED)

    assert response.headers["Vary"] == "Accept-Encoding, Origin"
    assert response.headers["Access-Control-Allow-Origin"] == ALLOWED[0]


def test_a_preflight_from_an_allowed_origin_gets_methods_headers_and_two_hours():
    response = preflight_response(ALLOWED[1], ALLOWED, ["POST"])

    assert (response.status_code, response.body) == (204, "")
    assert response.headers == {
        "Access-Control-Allow-Origin": "http://localhost:3000",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, X-Session-Token, Idempotency-Key, X-View-Token",
        "Access-Control-Max-Age": "7200",
        "Vary": "Origin",
    }


def test_a_preflight_from_another_origin_is_403_and_an_options_without_origin_learns_the_methods():
    refused = preflight_response("https://evil.example", ALLOWED, ["GET"])
    plain = preflight_response(None, ALLOWED, ["GET"])

    assert (refused.status_code, refused.body) == (403, {"error": {
        "code": "ORIGIN_NOT_ALLOWED", "message": "This website is not allowed to call the upload API."}})
    assert refused.headers == {"Content-Type": "application/json", "Vary": "Origin"}
    assert (plain.status_code, plain.headers) == (204, {"Allow": "GET, OPTIONS", "Vary": "Origin"})


def test_the_proxy_event_keeps_the_stage_out_of_path_and_resource_and_in_the_request_context():
    event = proxy_event(method="POST", raw_path="/api/api/upload/abc/confirm?x=1", body=b"{}",
                        headers=[("Host", "id.execute-api.example"), ("Origin", ALLOWED[0])],
                        source_ip="203.0.113.9", stage="api", resource="/api/upload/{upload_id}/confirm",
                        path_parameters={"upload_id": "abc"})

    assert (event["path"], event["resource"], event["pathParameters"]) == (
        "/api/upload/abc/confirm", "/api/upload/{upload_id}/confirm", {"upload_id": "abc"})
    context = event["requestContext"]
    assert (context["stage"], context["path"], context["resourcePath"], context["identity"]["sourceIp"]) == (
        "api", "/api/api/upload/abc/confirm", "/api/upload/{upload_id}/confirm", "203.0.113.9")
    assert (event["body"], event["isBase64Encoded"], event["multiValueQueryStringParameters"]) == (
        "{}", False, {"x": ["1"]})


@pytest.mark.parametrize("path", ["/api/api/upload", "/api/api/upload/limits", "/api/api/upload/abc/confirm",
                                  "/api/api/upload/abc", "/api/api/health", "/api/openapi.json"])
def test_every_api_route_answers_its_preflight_in_the_function(gateway, path):
    status, headers, _ = call(gateway, "OPTIONS", path, {"Origin": ALLOWED[0],
                                                         "Access-Control-Request-Method": "POST"})

    assert status == 204 and headers["Access-Control-Allow-Origin"] == ALLOWED[0]
    assert headers["Access-Control-Max-Age"] == "7200"


def test_under_the_stage_prefix_the_limits_route_wins_over_the_upload_id_route(gateway, deps):
    deps.uploads.down = True  # the status route would answer 503 (or 401 without a token)

    status, headers, body = call(gateway, "GET", "/api/api/upload/limits", {"Origin": ALLOWED[0]})

    assert (status, json.loads(body)) == (200, {"maxUploadBytes": deps.settings.max_upload_bytes,
                                                "fileTypes": ["image/jpeg", "image/png", "image/webp", "image/heic"]})
    assert (headers["Cache-Control"], headers["Access-Control-Allow-Origin"]) == ("public, max-age=3600", ALLOWED[0])


def test_an_error_response_carries_the_cors_headers_of_an_allowed_origin(gateway):
    status, headers, body = call(gateway, "POST", "/api/api/upload",
                                 {"Origin": ALLOWED[1], "Content-Type": "application/json"}, b"[]")

    assert (status, json.loads(body)) == (400, {"error": {"code": "VALIDATION_ERROR",
                                                          "message": "The request body must be a JSON object."}})
    assert (headers["Access-Control-Allow-Origin"], headers["Vary"]) == (ALLOWED[1], "Origin")


def test_a_path_outside_the_stage_or_unknown_is_api_gateway_s_403_with_the_packaged_gateway_response(gateway):
    status, headers, body = call(gateway, "GET", "/api/api/nothing-here", {"Origin": ALLOWED[1]})

    assert call(gateway, "GET", "/api/upload")[0] == 403
    assert call(gateway, "DELETE", "/api/api/health")[0] == 403
    assert (status, json.loads(body)) == (403, {"error": {"code": "NOT_FOUND", "message": "There is no such route."}})
    assert (headers["Access-Control-Allow-Origin"], headers["Vary"]) == (ALLOWED[1], "Origin")


def test_the_served_pages_under_the_stage_prefix_load_everything_from_it(gateway):
    status, headers, body = call(gateway, "GET", "/api/processing/abcdefghijklmnopqrstuvwx")
    html = body.decode()

    assert status == 200
    assert '<meta name="3d-ultra-api-base" content="/api">' in html
    assert 'src="/api/static/processing-page.js"' in html and 'href="/api/static/styles.css"' in html
    assert '<a id="start-over" href="/api/"' in html
    assert "connect-src 'self' https://acct.r2.cloudflarestorage.com blob:;" in headers["Content-Security-Policy"]


def test_the_served_page_at_the_root_of_a_custom_domain_has_no_prefix(gateway):
    # A custom domain mapped at its root: requestContext.path is the route path itself.
    event = proxy_event(method="GET", raw_path="/api/", headers=[], body=b"", source_ip="203.0.113.9",
                        stage="api", resource="/", path_parameters=None)
    event["requestContext"]["path"] = "/"
    html = app_module.app(event, LambdaContext("upload"))["body"]

    assert '<meta name="3d-ultra-api-base" content="">' in html and 'src="/static/upload-page.js"' in html


def test_the_page_csp_uses_the_resolved_storage_endpoint_not_the_unresolved_setting(gateway, deps):
    # In production the endpoint comes from SSM: the unresolved settings hold "".
    deps.settings = replace(deps.settings, r2_endpoint_url="")
    deps.secrets = replace(deps.settings, r2_endpoint_url="https://resolved.r2.cloudflarestorage.com")

    headers = call(gateway, "GET", "/api/")[1]

    assert headers["Content-Security-Policy"] == (
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
        f"style-src 'self' {' '.join(pages.viewer_style_hashes())}; "
        "connect-src 'self' https://resolved.r2.cloudflarestorage.com blob:; "
        "img-src 'self' data: blob: https://resolved.r2.cloudflarestorage.com; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@pytest.mark.parametrize("endpoint", ["", "://", "r2.example.com", "ftp://files.example.com"])
def test_a_page_fails_closed_with_a_logged_reason_when_the_storage_origin_is_unknown(gateway, deps, caplog,
                                                                                   endpoint):
    deps.secrets = replace(deps.settings, r2_endpoint_url=endpoint)

    with caplog.at_level(logging.ERROR):
        status, headers, body = call(gateway, "GET", "/api/")

    assert (status, json.loads(body)) == (503, {"error": {
        "code": "SERVICE_UNAVAILABLE", "message": "The service is temporarily unavailable. Please try again in a moment."}})
    assert "Content-Security-Policy" not in headers
    assert "page index.html refused: the storage origin is unknown" in caplog.text


class UnresolvableDeps(FakeDeps):
    @property
    def secrets(self):
        raise ConfigError("SSM parameter(s) not found: /3d-ultra/prod/database-url")

    @secrets.setter
    def secrets(self, value):
        pass


@pytest.mark.parametrize("method, path", [("GET", "/api/api/health"), ("POST", "/api/api/upload"),
                                          ("GET", "/api/api/upload/abcdefghijklmnopqrstuvwx"),
                                          ("POST", "/api/api/upload/abcdefghijklmnopqrstuvwx/confirm"),
                                          ("GET", "/api/"), ("GET", "/api/static/upload-page.js"),
                                          ("GET", "/api/openapi.json")])
def test_settings_that_cannot_be_resolved_answer_503_on_every_route_with_the_reason_only_in_the_log(
        monkeypatch, caplog, method, path):
    deps = UnresolvableDeps(replace(app_module.deps.settings, allowed_origins=ALLOWED))
    monkeypatch.setattr(app_module, "deps", deps)
    gateway = ApiGateway(app_module.app, stage="api")

    with caplog.at_level(logging.ERROR):
        status, headers, body = call(gateway, method, path, {"Origin": ALLOWED[0],
                                                             "Content-Type": "application/json"}, b"{}")

    assert (status, json.loads(body)) == (503, {"error": {
        "code": "SERVICE_UNAVAILABLE", "message": "The service is temporarily unavailable. Please try again in a moment."}})
    assert headers["Access-Control-Allow-Origin"] == ALLOWED[0]
    assert "settings unavailable: ConfigError: SSM parameter(s) not found: /3d-ultra/prod/database-url" in caplog.text
    assert deps.uploads.rows == {}
