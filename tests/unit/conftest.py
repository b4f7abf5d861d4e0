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
