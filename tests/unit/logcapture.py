"""The service's loggers do not propagate to the root logger (Lambda would print each line twice), so tests
that read log records attach pytest's capture handler to the `chalicelib` logger itself."""

import logging

import pytest


@pytest.fixture
def service_logs(caplog):
    logger = logging.getLogger("chalicelib")
    logger.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    try:
        yield caplog
    finally:
        logger.removeHandler(caplog.handler)


def records(caplog, logger_name):
    return [r for r in caplog.records if r.name == logger_name]
