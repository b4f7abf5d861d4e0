"""Log lines carry the request's ids; an unexpected error still answers JSON 500 and records a metric."""

import io
import json
import logging

from chalicelib import logs
from chalicelib.errors import UploadNotVerified
from chalicelib.http import api_view


def capture():
    logger = logging.getLogger("chalicelib.test_log_context")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger("chalicelib")
    root.addHandler(handler)
    return logger, handler, lambda: [json.loads(line) for line in handler.stream.getvalue().splitlines()]


def test_bound_fields_reach_every_line_until_unbound():
    logger, handler, lines = capture()
    try:
        token = logs.bind(requestId="req-1", uploadId=None)
        logger.info("first")
        logs.bind(uploadId="up-1")
        logger.info("second", extra={"requestId": "explicit"})
        logs.unbind(token)
        logger.info("after")
    finally:
        logging.getLogger("chalicelib").removeHandler(handler)

    first, second, after = lines()
    assert (first["requestId"], "uploadId" in first) == ("req-1", False)
    assert (second["requestId"], second["uploadId"]) == ("explicit", "up-1")
    assert "requestId" not in after and "uploadId" not in after


def test_an_unexpected_error_answers_json_500_and_emits_an_unhandled_errors_metric():
    logger, handler, lines = capture()

    @api_view
    def broken():
        raise KeyError("boom")

    try:
        response = broken()
    finally:
        logging.getLogger("chalicelib").removeHandler(handler)

    assert (response.status_code, response.body["error"]["code"]) == (500, "INTERNAL_ERROR")
    line = next(line for line in lines() if line["message"] == "unhandled error in broken")
    assert line["UnhandledErrors"] == 1 and line["Stage"] == "dev"
    assert line["_aws"]["CloudWatchMetrics"] == [{"Namespace": "3DUltra/Upload", "Dimensions": [["Stage"]],
                                                  "Metrics": [{"Name": "UnhandledErrors", "Unit": "Count"}]}]


def test_an_unverified_upload_knows_only_the_reasons_processing_can_act_on():
    assert UploadNotVerified(reason="bytes").reason == "bytes"
    assert UploadNotVerified().message == "We couldn't verify your upload. Let's try again!"
    try:
        UploadNotVerified(reason="colour")
    except ValueError as exc:
        assert str(exc) == "unknown reason 'colour'"
    else:
        raise AssertionError("an unknown reason was accepted")
