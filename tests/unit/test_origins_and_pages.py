"""Exact edges of the allowed origins, the CORS headers, the stage prefix and the page's storage origin."""

from types import SimpleNamespace

import pytest
from chalice import Response

from chalicelib import pages
from chalicelib.config import ConfigError, Settings, parse_origins
from chalicelib.http import preflight_response, settings_unavailable, with_cors
from tests.unit.logcapture import records

REQUIRED = {"DATABASE_URL": "postgresql://app@db.example/app", "R2_ENDPOINT_URL": "https://acc.r2.example",
            "R2_ACCESS_KEY_ID": "key-id", "R2_SECRET_ACCESS_KEY": "secret-key", "R2_BUCKET": "photos",
            "DIGEST_SECRET": "test digest secret, at least 32 characters"}


@pytest.mark.parametrize("raw, message", [
    ("https://user@app.example.com", "with credentials in it: 'https://user@app.example.com'"),
    ("https://:pw@app.example.com", "with credentials in it: 'https://:pw@app.example.com'"),
    ("https://app.example.com?", "with a path or a trailing slash (origins have none): 'https://app.example.com?'"),
    ("https://app.example.com#", "with a path or a trailing slash (origins have none): 'https://app.example.com#'"),
    ("https://app.example.com#x", "with a path or a trailing slash (origins have none): 'https://app.example.com#x'"),
    ("http://app.example.com:80", "with its scheme's default port (browsers omit it): 'http://app.example.com:80'"),
])
def test_an_origin_with_credentials_an_empty_query_or_fragment_or_the_default_port_is_refused(raw, message):
    with pytest.raises(ConfigError) as caught:
        parse_origins(raw)

    assert str(caught.value) == f"ALLOWED_ORIGINS has an origin {message}"


@pytest.mark.parametrize("raw, origins", [
    ("http://app.example.com:81,https://app.example.com:80", ("http://app.example.com:81",
                                                              "https://app.example.com:80")),
    (" , https://a.example,,https://b.example ,", ("https://a.example", "https://b.example")),
])
def test_empty_items_are_skipped_and_another_schemes_default_port_is_kept(raw, origins):
    assert parse_origins(raw) == origins


def test_a_bad_single_allowed_origin_is_refused_by_its_own_name():
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**REQUIRED, "ALLOWED_ORIGIN": "https://app.example.com/"})

    assert str(caught.value) == ("ALLOWED_ORIGIN has an origin with a path or a trailing slash (origins have none): "
                                 "'https://app.example.com/'")


@pytest.mark.parametrize("vary, expected", [
    (None, "Origin"), ("Accept-Encoding", "Accept-Encoding, Origin"), ("Accept-Encoding, Origin", "Accept-Encoding, Origin"),
    ("Origin,Accept", "Origin, Accept"), (" , Origin", "Origin"),
])
def test_vary_names_origin_once_beside_what_the_response_had(vary, expected):
    response = Response(body="", headers={"Vary": vary} if vary else {})

    assert with_cors(response, "https://evil.example", ("https://app.example.com",)).headers["Vary"] == expected


def test_a_preflight_without_origin_is_an_empty_204_naming_the_methods():
    response = preflight_response(None, ("https://app.example.com",), ["GET", "POST"])

    assert (response.status_code, response.body, response.headers) == (
        204, "", {"Allow": "GET, POST, OPTIONS", "Vary": "Origin"})


def test_settings_that_fail_to_resolve_are_logged_with_the_reason(service_logs):
    def resolve():
        raise ConfigError("SSM parameter(s) not found: /p/db")

    response = settings_unavailable(resolve)

    assert response.status_code == 503
    assert [(r.levelname, r.getMessage()) for r in records(service_logs, "chalicelib.http")] == [
        ("ERROR", "settings unavailable: ConfigError: SSM parameter(s) not found: /p/db")]


def request(path, context_path):
    return SimpleNamespace(to_original_event=lambda: {"path": path},
                           context=None if context_path is None else {"path": context_path})


@pytest.mark.parametrize("path, context_path, base", [
    ("/api/upload", "/api/api/upload", "/api"),
    ("/api/upload", "/stageX/api/upload", "/stageX"),
    ("/api/upload", "/api//api/upload", "/api"),
    ("/api/upload", "/api/upload", ""),
    ("/", "/prod/", "/prod"),
    ("/", "/stageX", "/stageX"),
    ("/", "/stage ", "/stage "),
    ("/", "/", ""),
    ("/api/upload", "/elsewhere", ""),
    ("", "/api/api/upload", ""),
    (None, "/api/api/upload", ""),
    (None, "/stageXXXX", ""),  # no route path: no prefix, whatever the full path ends with
    ("/api/upload", "api/upload", ""),
    ("/api/upload", None, ""),
])
def test_the_stage_prefix_is_what_the_full_path_has_in_front_of_the_route(path, context_path, base):
    assert pages.base_path(request(path, context_path)) == base


def test_a_page_without_a_base_links_from_the_root():
    response = pages.page("index.html", max_upload_bytes=5, storage_endpoint="https://acc.r2.example")

    assert 'href="/static/styles.css"' in response.body and 'content=""' in response.body


@pytest.mark.parametrize("endpoint, origin", [
    ("http://127.0.0.1:8333", "http://127.0.0.1:8333"),
    ("https://key:secret@acc.r2.example/bucket", "https://acc.r2.example"),
    ("https://acc.r2.example:8443/x", "https://acc.r2.example:8443"),
    ("HTTP://acc.r2.example", "http://acc.r2.example"),
    (None, None), ("", None), ("https://", None), ("https://acc.r2.example:99999", None),
])
def test_the_storage_origin_is_the_scheme_host_and_port_of_the_endpoint(endpoint, origin):
    assert pages.storage_origin(endpoint) == origin


def test_a_page_refused_for_an_unknown_storage_origin_says_why_in_the_log(service_logs):
    assert pages.page("index.html", max_upload_bytes=5, storage_endpoint="").status_code == 503

    assert [r.getMessage() for r in records(service_logs, "chalicelib.pages")] == [
        "page index.html refused: the storage origin is unknown (the resolved R2 endpoint is empty or not an "
        "http(s) URL)"]
