"""Small exact promises: the 429's wait in words, the metric line's fields, what logging configuration adds."""

import io
import json
import logging
import sys
from types import SimpleNamespace

import pytest

from chalicelib import errors, logs, metrics
from chalicelib.http import error_response


@pytest.mark.parametrize("retry_after, seconds, wait", [
    (-5, 1, "1 minute"), (0, 1, "1 minute"), (1, 1, "1 minute"), (2.9, 2, "1 minute"), (60, 60, "1 minute"),
    (61, 61, "2 minutes"), (120, 120, "2 minutes"), (121, 121, "3 minutes"), (3600, 3600, "60 minutes"),
])
def test_a_rate_limit_says_the_wait_in_whole_minutes_rounded_up_and_retry_after_in_whole_seconds(
        retry_after, seconds, wait):
    response = error_response(errors.RateLimited(retry_after))

    assert (response.status_code, response.headers["Retry-After"]) == (429, str(seconds))
    assert response.body == {"error": {"code": "RATE_LIMITED",
                                       "message": f"Too many uploads right now. Please try again in {wait}."}}


def test_an_unverified_upload_keeps_a_message_given_to_it_and_its_reason():
    refused = errors.UploadNotVerified("Only the size differs.", reason="size")

    assert (refused.message, str(refused), refused.reason) == ("Only the size differs.", "Only the size differs.",
                                                               "size")


def test_a_metric_line_names_its_namespace_stage_counts_and_the_time_in_milliseconds(monkeypatch):
    monkeypatch.setattr(metrics, "time", SimpleNamespace(time=lambda: 1700000000.1234))
    monkeypatch.setattr(metrics, "_stage", "dev")
    metrics.configure("prod")

    assert metrics.emf(Uploads=2, Failures=0) == {
        "_aws": {"Timestamp": 1700000000123, "CloudWatchMetrics": [{
            "Namespace": "3DUltra/Upload", "Dimensions": [["Stage"]],
            "Metrics": [{"Name": "Uploads", "Unit": "Count"}, {"Name": "Failures", "Unit": "Count"}]}]},
        "Stage": "prod", "Uploads": 2, "Failures": 0}
    assert metrics.emf("staging", Uploads=1)["Stage"] == "staging"


def test_configured_logging_stamps_every_line_with_the_version_and_the_bound_request(monkeypatch):
    logger = logging.getLogger("chalicelib")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "propagate", True)
    monkeypatch.setattr(logs, "_process_fields", {})
    monkeypatch.setattr(sys, "stderr", io.StringIO())

    logs.configure_logging(version="1.4.2-3-gabc")
    token = logs.bind(requestId="req-9")
    try:
        logging.getLogger("chalicelib.services").info("done")
    finally:
        logs.unbind(token)

    assert json.loads(sys.stderr.getvalue()) == {"level": "INFO", "logger": "chalicelib.services",
                                                 "message": "done", "version": "1.4.2-3-gabc", "requestId": "req-9"}


def test_without_a_version_lines_carry_none(monkeypatch):
    logger = logging.getLogger("chalicelib")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logs, "_process_fields", {})
    monkeypatch.setattr(sys, "stderr", io.StringIO())

    logs.configure_logging(version="")
    logging.getLogger("chalicelib.services").warning("done")

    assert "version" not in json.loads(sys.stderr.getvalue())
