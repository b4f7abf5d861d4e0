"""CORS: the configured front-end origin is allowed, with the headers the client sends; no other origin is."""

import urllib.request



def allow_origin(live_server, origin, path="/api/upload"):
    request = urllib.request.Request(f"{live_server}{path}", method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,idempotency-key,x-session-token"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers


def test_the_configured_origin_gets_cors_headers_with_our_custom_headers(live_server, stack_env):
    headers = allow_origin(live_server, stack_env["ALLOWED_ORIGIN"])

    assert headers["Access-Control-Allow-Origin"] == stack_env["ALLOWED_ORIGIN"]
    allowed = {h.strip().lower() for h in headers["Access-Control-Allow-Headers"].split(",")}
    assert {"content-type", "idempotency-key", "x-session-token"} <= allowed


def test_another_origin_is_never_named_as_allowed(live_server, stack_env):
    for path in ("/api/upload", "/api/health"):
        headers = allow_origin(live_server, "https://evil.example.com", path)
        assert headers["Access-Control-Allow-Origin"] != "https://evil.example.com"
        assert headers["Access-Control-Allow-Origin"] == stack_env["ALLOWED_ORIGIN"]
