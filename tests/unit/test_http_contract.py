"""chalicelib/http.py on its own: the access log's fields, Chalice's error bodies, the body-size limit, dates."""

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from chalice import Response

from chalicelib import errors
from chalicelib.http import (
    MAX_BODY_BYTES,
    decode_json_body,
    error_response,
    iso_utc,
    json_response,
    log_request,
    normalise_chalice_error,
    refuse_oversized,
)
from tests.unit.logcapture import records

UPLOAD_ID = "ckabcdefghijklmnopqrstuv"


def access_log(caplog):
    (record,) = records(caplog, "chalicelib.http")
    fields = ("requestId", "method", "route", "status", "code", "latencyMs", "uploadId")
    return record.getMessage(), record.levelno, {name: getattr(record, name, "<absent>") for name in fields}


def test_the_access_log_names_request_route_status_latency_and_the_upload_from_the_path(service_logs):
    request = SimpleNamespace(context={"requestId": "req-1", "resourcePath": "/api/upload/{upload_id}"},
                              method="GET", uri_params={"upload_id": UPLOAD_ID})
    response = Response(body={"uploadId": "from-the-body"}, status_code=200)

    log_request(request, response, 0.012345, SimpleNamespace(aws_request_id="lambda-1"))

    assert access_log(service_logs) == ("request", logging.INFO, {
        "requestId": "req-1", "method": "GET", "route": "/api/upload/{upload_id}", "status": 200, "code": None,
        "latencyMs": 12.3, "uploadId": UPLOAD_ID})


def test_the_access_log_takes_the_upload_id_from_the_body_and_the_request_id_from_lambda(service_logs):
    request = SimpleNamespace(context={"resourcePath": "/api/upload"}, method="POST", uri_params=None)
    response = Response(body={"uploadId": UPLOAD_ID}, status_code=201)

    log_request(request, response, 1.23456, SimpleNamespace(aws_request_id="lambda-1"))

    assert access_log(service_logs)[2] == {"requestId": "lambda-1", "method": "POST", "route": "/api/upload",
                                           "status": 201, "code": None, "latencyMs": 1234.6, "uploadId": UPLOAD_ID}


def test_the_access_log_copes_with_a_bare_request_and_a_text_body(service_logs):
    log_request(object(), Response(body="Not found", status_code=404), 0.0004)

    assert access_log(service_logs)[2] == {"requestId": None, "method": None, "route": None, "status": 404,
                                           "code": None, "latencyMs": 0.4, "uploadId": None}


def test_the_access_log_prefers_the_path_upload_id_when_the_body_has_none(service_logs):
    request = SimpleNamespace(context=None, method="POST", uri_params={"upload_id": UPLOAD_ID})

    log_request(request, Response(body={"success": True}, status_code=200), 0.001)

    assert access_log(service_logs)[2]["uploadId"] == UPLOAD_ID
    assert access_log(service_logs)[2]["requestId"] is None


@pytest.mark.parametrize("body, code", [
    ({"error": {"code": "RATE_LIMITED", "message": "Too many uploads right now."}}, "RATE_LIMITED"),
    ({"error": "not our shape"}, None),
    ({"error": None}, None),
])
def test_the_access_log_names_the_error_code_of_an_error_answer(service_logs, body, code):
    request = SimpleNamespace(context={"requestId": "req-1", "resourcePath": "/api/upload"}, method="POST")

    log_request(request, Response(body=body, status_code=429), 0.002)

    assert access_log(service_logs)[2]["code"] == code


@pytest.mark.parametrize("status, chalice_body, expected", [
    (400, {"Code": "BadRequestError", "Message": "Bad JSON"}, ("VALIDATION_ERROR", "Bad JSON")),
    (404, {"Code": "NotFoundError", "Message": "No such thing"}, ("NOT_FOUND", "No such thing")),
    (405, {"Code": "MethodNotAllowedError", "Message": "Unsupported method: PUT"},
     ("METHOD_NOT_ALLOWED", "Unsupported method: PUT")),
    (415, {"Code": "UnsupportedMediaType", "Message": "Unsupported media type: text/xml"},
     ("UNSUPPORTED_MEDIA_TYPE", "Unsupported media type: text/xml")),
    # Codes Chalice may add later fall back by status class.
    (400, {"Code": "SomethingNew", "Message": "Odd"}, ("BAD_REQUEST", "Odd")),
    (499, {"Code": "SomethingNew", "Message": "Odd"}, ("BAD_REQUEST", "Odd")),
    (409, {"Code": "SomethingNew"}, ("BAD_REQUEST", "The request could not be handled.")),
    # A 5xx never shows Chalice's own words (they may carry internals).
    (500, {"Code": "SomethingNew", "Message": "Traceback..."},
     ("INTERNAL_ERROR", "Something went wrong on our side. Please try again.")),
    (502, {"Code": "InternalServerError", "Message": "An internal server error occurred."},
     ("INTERNAL_ERROR", "Something went wrong on our side. Please try again.")),
])
def test_chalice_error_bodies_are_rewritten_into_ours(status, chalice_body, expected):
    response = normalise_chalice_error(Response(body=chalice_body, status_code=status, headers={"X-Other": "1"}))

    code, message = expected
    assert response.status_code == status
    assert response.body == {"error": {"code": code, "message": message}}
    assert response.headers == {"X-Other": "1", "Content-Type": "application/json"}


@pytest.mark.parametrize("status, body", [
    (399, {"Code": "BadRequestError", "Message": "m"}),  # not an error status
    (200, {"Code": "x"}),
    (400, {"error": {"code": "VALIDATION_ERROR", "message": "ours"}, "Code": "BadRequestError"}),  # already ours
    (400, "Bad request"),
    (404, {"Message": "no code"}),
])
def test_responses_that_are_not_chalice_errors_pass_unchanged(status, body):
    response = normalise_chalice_error(Response(body=body, status_code=status, headers={"X-Other": "1"}))

    assert (response.status_code, response.body, response.headers) == (status, body, {"X-Other": "1"})


def test_a_body_of_exactly_the_limit_is_parsed_and_one_byte_more_is_413():
    assert refuse_oversized(SimpleNamespace(raw_body=b"x" * MAX_BODY_BYTES)) is None

    refused = refuse_oversized(SimpleNamespace(raw_body=b"x" * (MAX_BODY_BYTES + 1)))

    assert (refused.status_code, refused.body, refused.headers) == (
        413, {"error": {"code": "PAYLOAD_TOO_LARGE", "message": "The request body is too large."}},
        {"Content-Type": "application/json"})


def test_the_body_limit_is_sixteen_kibibytes():
    assert MAX_BODY_BYTES == 16 * 1024


@pytest.mark.parametrize("request_", [SimpleNamespace(raw_body=None), SimpleNamespace(raw_body=b""), object()])
def test_a_request_without_a_body_is_not_refused_as_too_large(request_):
    assert refuse_oversized(request_) is None


def test_json_responses_say_they_are_json_and_do_not_share_their_headers():
    first, second = json_response({"a": 1}, 201), json_response({"b": 2})
    first.headers["X-Extra"] = "1"

    assert (first.status_code, first.body) == (201, {"a": 1})
    assert (second.status_code, second.headers) == (200, {"Content-Type": "application/json"})


@pytest.mark.parametrize("error, status", [
    (errors.ValidationFailed("x"), 400), (errors.MissingToken(), 401), (errors.InvalidToken(), 401),
    (errors.UploadNotFound(), 404), (errors.AlreadyConfirmed(), 409), (errors.UploadExpired(), 410),
    (errors.PayloadTooLarge(), 413), (errors.IdempotencyKeyReused(), 422), (errors.UploadNotVerified(), 422),
    (errors.StorageUnavailable(), 500), (errors.DatabaseUnavailable(), 503),
    (errors.UploadError(), 500),  # an error with no status of its own
])
def test_each_domain_error_has_its_status_and_its_own_words(error, status):
    response = error_response(error)

    assert (response.status_code, response.body) == (status, {"error": {"code": error.code, "message": error.message}})


def test_dates_are_utc_with_a_z_to_the_millisecond():
    moment = datetime(2026, 5, 1, 14, 30, 5, 123987, tzinfo=timezone(timedelta(hours=2)))

    assert iso_utc(moment) == "2026-05-01T12:30:05.123Z"
    assert iso_utc(None) is None


def test_dates_do_not_depend_on_the_machine_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert iso_utc(datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)) == "2026-05-01T12:00:00.000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_json_constants_are_refused_as_invalid_json():
    for raw in (b"NaN", b'{"a": Infinity}', b"[-Infinity]"):
        with pytest.raises(errors.ValidationFailed, match=r"^The request body is not valid JSON\.$"):
            decode_json_body(raw, "application/json")
    assert decode_json_body(json.dumps({"a": 1.5}).encode(), "application/json; charset=utf-8") == {"a": 1.5}
