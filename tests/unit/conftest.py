"""Fixtures of the route tests: the app in-process through Chalice's test client, on in-memory dependencies."""

import io
import json
import logging

import pytest
from chalice.test import Client

import app as app_module
from chalicelib import logs
from tests.unit.fakes import FakeDeps


@pytest.fixture
def deps(monkeypatch):
    fake = FakeDeps(app_module.deps.settings)
    monkeypatch.setattr(app_module, "deps", fake)
    return fake


@pytest.fixture
def client(deps):
    with Client(app_module.app) as client:
        yield client


class Reply(tuple):
    """(status, body) of one answer, the body decoded from JSON (None when empty, as a 204's is); `.headers` too."""

    def __new__(cls, status, body, headers):
        reply = super().__new__(cls, (status, body))
        reply.headers = headers
        return reply

    status = property(lambda self: self[0])
    body = property(lambda self: self[1])


class Api:
    """The unit tests' one way to call a route: JSON in (Content-Type set unless `headers` say otherwise), a Reply
    out."""

    BODY = {"email": "maya@example.com", "fileType": "image/png", "fileSize": 68}

    def __init__(self, client):
        self.client = client

    def __call__(self, method, path, body=None, raw=None, headers=None) -> Reply:
        payload = raw if raw is not None else ("" if body is None else json.dumps(body))
        response = self.client.http.request(method, path, body=payload,
                                            headers={"content-type": "application/json", **(headers or {})})
        return Reply(response.status_code, json.loads(response.body) if response.body else None, response.headers)

    def create(self, body=None, key=None) -> Reply:
        return self("POST", "/api/upload", self.BODY if body is None else body,
                    headers={"idempotency-key": key} if key else None)

    def confirm(self, upload_id, token) -> Reply:
        return self("POST", f"/api/upload/{upload_id}/confirm", headers=_token(token))

    def status(self, upload_id, token) -> Reply:
        return self("GET", f"/api/upload/{upload_id}", headers=_token(token))

    def cancel(self, upload_id, token) -> Reply:
        return self("DELETE", f"/api/upload/{upload_id}", headers=_token(token))


def _token(token):
    return {} if token is None else {"x-session-token": token}


@pytest.fixture
def api(client):
    return Api(client)


@pytest.fixture
def service_logs(caplog):
    """The service's loggers do not propagate to the root logger (Lambda would print each line twice), so the
    capture handler is attached to the `chalicelib` logger itself."""
    logger = logging.getLogger("chalicelib")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def json_lines():
    """The lines the service's JSON log handler writes (as Lambda ships them), parsed; call it to read them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("chalicelib")
    logger.addHandler(handler)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
