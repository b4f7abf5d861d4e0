"""Integration fixtures: the real local stack (PostgreSQL + SeaweedFS), started once per session."""

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.config import DatabaseSettings, Settings
from chalicelib.db import Database
from chalicelib.deps import Dependencies
from devstack.processes import free_port, stop_process
from devstack.serve import start_api
from devstack.stack import LocalStack
from tests.conftest import ORIGIN


@pytest.fixture(scope="session")
def stack_env():
    """Start the same local stack as `make dev` (never the developer's own DATABASE_URL or R2 settings)."""
    stack = LocalStack(allowed_origin=ORIGIN, environ={})
    env = stack.start()
    yield env
    stack.stop()


@pytest.fixture(scope="session")
def live_deps(stack_env):
    deps = Dependencies(Settings.from_env(stack_env))
    yield deps
    deps.database.close()


@pytest.fixture
def api(live_deps, monkeypatch):
    """The Chalice app in-process, wired to the real local stack."""
    monkeypatch.setattr(app_module, "deps", live_deps)
    with Client(app_module.app) as client:
        yield ApiClient(client.http)


@pytest.fixture(scope="session")
def db(stack_env):
    """A separate connection pool to the test database, for setting up and checking what was stored."""
    database = Database(DatabaseSettings.from_url(stack_env["DATABASE_URL"]), application_name="tests")
    yield database
    database.close()


@pytest.fixture(scope="session")
def live_server(stack_env, output_dir):
    """`chalice local` serving the app over real HTTP (threaded, as `make dev` runs it)."""
    port = free_port()
    log = open(os.path.join(output_dir, "chalice-local.log"), "ab")
    process = start_api({**stack_env, "PYTHONUNBUFFERED": "1"}, port, log_file=log)
    yield f"http://127.0.0.1:{port}"
    stop_process(process)
    log.close()


@dataclass
class Reply:
    status: int
    body: dict
    headers: dict


class ApiClient:
    """JSON in, JSON out, over chalice.test's in-process HTTP client."""

    def __init__(self, http):
        self._http = http

    def request(self, method, path, body=None, headers=None, raw=None):
        payload = raw if raw is not None else (json.dumps(body) if body is not None else "")
        response = self._http.request(method, path, headers={"content-type": "application/json", **(headers or {})},
                                      body=payload)
        return Reply(response.status_code, json.loads(response.body) if response.body else {}, response.headers)

    def create(self, body=None, headers=None, **overrides):
        return self.request("POST", "/api/upload", body or upload_body(**overrides), headers)

    def confirm(self, upload_id, token):
        headers = {} if token is None else {"x-session-token": token}
        return self.request("POST", f"/api/upload/{upload_id}/confirm", headers=headers)

    def status(self, upload_id, token):
        headers = {} if token is None else {"x-session-token": token}
        return self.request("GET", f"/api/upload/{upload_id}", headers=headers)


def upload_body(email="maya@example.com", file_type="image/png", file_size=68):
    return {"email": email, "fileType": file_type, "fileSize": file_size}


def http(method, url, data=None, headers=None, timeout=10):
    """A plain HTTP request with the standard library; returns (status, body bytes)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def put_object(upload_url, data, content_type):
    """PUT bytes to a presigned URL as the browser does."""
    return http("PUT", upload_url, data=data, headers={"Content-Type": content_type})
