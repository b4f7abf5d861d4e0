"""The runbook's (docs/runbook.md) CloudWatch Logs filters and the template's metric filters, applied to the lines the
functions really write and to access-log lines in the template's format (from the local API Gateway stand-in,
or rendered as API Gateway fills it in for what the stand-in cannot do, such as throttling)."""

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import app as app_module
from devstack.apigw import ApiGateway
from ops.package import ACCESS_LOG_FIELDS, ACCESS_LOG_METRICS, render_access_log
from tests.logfilter import matches
from tests.unit.fakes import SweepUploads

README = (Path(__file__).resolve().parents[2] / "docs" / "runbook.md").read_text()
# The runbook's `logs GROUP SECONDS PATTERN` lines (its shell function over `aws logs filter-log-events`).
FILTERS = dict(((group, pattern), pattern) for group, pattern in re.findall(
    r"^\s*logs (/\S+) \d+ '([^']+)'$", README, re.M))
API_GROUP, ACCESS_GROUP = "/aws/lambda/three-d-ultra-upload-prod", "/aws/apigateway/three-d-ultra-upload-prod-access"
SWEEP_GROUP = "/aws/lambda/three-d-ultra-upload-prod-expire-abandoned"
BODY = {"email": "person@example.com", "fileType": "image/png", "fileSize": 68}


def readme_filter(group, contains):
    [pattern] = [p for (g, p) in FILTERS if g == group and contains in p]
    return pattern


def gateway_line(status, error=None, integration_status="200"):
    """An access-log line for what the local stand-in cannot produce (API Gateway's own throttling)."""
    return render_access_log({"$context.requestId": "c0ffee-1", "$context.apiId": "a1b2c3d4e5",
                              "$context.httpMethod": "POST", "$context.resourcePath": "/api/upload",
                              "$context.status": status, "$context.integrationStatus": integration_status,
                              "$context.error.responseType": error})


def test_the_local_gateway_writes_the_deployed_access_log_format(deps):
    lines = []
    gateway = ApiGateway(app_module.app, stage="api", access_log=lines.append)
    gateway.handle("POST", "/api/api/upload", [("Content-Type", "application/json")], json.dumps(BODY).encode(),
                   "198.51.100.7")
    gateway.handle("GET", "/api/no/such/route", [], b"", "198.51.100.7")

    created, missing = (json.loads(line) for line in lines)
    assert set(created) == {name for name, _ in ACCESS_LOG_FIELDS}
    assert (created["status"], created["route"], created["integrationStatus"], created["error"], created["ip"]) == (
        201, "/api/upload", "201", "-", "198.51.100.7")
    assert (missing["status"], missing["route"], missing["integrationStatus"], missing["error"]) == (
        403, "-", "-", "MISSING_AUTHENTICATION_TOKEN")
    assert [matches(readme_filter(ACCESS_GROUP, "status"), line) for line in lines] == [False, False]


def test_every_access_log_line_is_json_with_a_numeric_status():
    line = json.loads(gateway_line(429, error="THROTTLED", integration_status="-"))

    assert line["status"] == 429 and line["error"] == "THROTTLED" and line["integrationStatus"] == "-"


def test_the_runbook_429_filter_and_the_metric_filters_select_exactly_their_access_lines():
    created, throttled, limited, missing = (gateway_line(201), gateway_line(429, "THROTTLED", "-"),
                                            gateway_line(429), gateway_line(404))
    lines = [created, throttled, limited, missing]
    by_status = readme_filter(ACCESS_GROUP, "status")

    assert [matches(by_status, line) for line in lines] == [False, True, True, False]
    assert [matches(ACCESS_LOG_METRICS["Responses429"], line) for line in lines] == [False, True, True, False]
    assert [matches(ACCESS_LOG_METRICS["ThrottledRequests"], line) for line in lines] == [False, True, False, False]


def test_a_quoted_status_would_have_matched_no_429_at_all():
    line = gateway_line(429)
    quoted = line.replace('"status":429,', '"status":"429",')

    assert quoted != line
    assert not matches(readme_filter(ACCESS_GROUP, "status"), quoted)


def test_the_runbook_function_filters_select_the_failed_requests_and_one_uploads_lines(client, deps, json_lines):
    created = client.http.post("/api/upload", body=json.dumps(BODY), headers={"content-type": "application/json"})
    upload_id = json.loads(created.body)["uploadId"]
    client.http.get("/api/upload/upl_unknown", headers={"x-session-token": "t"})
    deps.uploads.down = True
    client.http.post("/api/upload", body=json.dumps(BODY), headers={"content-type": "application/json"})
    lines = [json.dumps(line) for line in json_lines()]

    failed = [json.loads(line) for line in lines if matches(readme_filter(API_GROUP, "status"), line)]
    assert [(line["message"], line["status"]) for line in failed] == [("request", 503)]
    one_upload = readme_filter(API_GROUP, "uploadId").replace("<id>", upload_id)
    selected = [json.loads(line) for line in lines if matches(one_upload, line)]
    assert selected and {line["uploadId"] for line in selected} == {upload_id}
    assert ("request", 201) in [(line["message"], line.get("status")) for line in selected]


def test_the_runbook_sweep_filter_selects_the_sweep_summary(deps, json_lines):
    deps.uploads = SweepUploads()
    app_module.expire_abandoned({}, SimpleNamespace(aws_request_id="sweep-1"))
    lines = [json.dumps(line) for line in json_lines()]

    selected = [json.loads(line) for line in lines if matches(readme_filter(SWEEP_GROUP, "sweep"), line)]
    assert [(line["message"], line["expired"]) for line in selected] == [("sweep finished", 7)]


@pytest.mark.parametrize("pattern, line, selected", [
    ('{ $.status = 429 }', '{"status": "429"}', False),
    ('{ $.status >= 500 }', 'START RequestId: 1 Version: $LATEST', False),
    ('{ $.route = "/api/upload*" }', '{"route": "/api/upload/{upload_id}"}', True),
    ('{ $.status >= 500 && $.route = "/api/health" }', '{"status": 503, "route": "/api/upload"}', False),
    ('"sweep finished"', '{"message": "sweep started"}', False),
])
def test_the_filter_matcher_follows_cloudwatch_rules(pattern, line, selected):
    assert matches(pattern, line) is selected


def test_the_runbook_error_filter_selects_the_line_of_a_sweep_that_failed(deps, json_lines):
    class Down(SweepUploads):
        def expire_abandoned(self, older_than_seconds):
            raise TimeoutError("statement timeout")

    deps.uploads = Down()
    with pytest.raises(TimeoutError):
        app_module.expire_abandoned({}, SimpleNamespace(aws_request_id="sweep-2"))
    lines = [json.dumps(line) for line in json_lines()]

    selected = [json.loads(line) for line in lines if matches(readme_filter(SWEEP_GROUP, "level"), line)]
    assert [(line["message"], line["requestId"]) for line in selected] == [
        ("expire-abandoned failed: TimeoutError", "sweep-2")]


def test_the_runbook_reads_logs_with_a_command_the_pinned_cli_has():
    # CLI v1 has no `logs tail` ("Invalid choice"); the runbook's function runs filter-log-events.
    assert "aws logs tail" not in README
    assert len(FILTERS) >= 8
    [function] = re.findall(r"^  logs\(\) \{.*?\n  \}", README, re.M | re.S)
    assert "aws logs filter-log-events --region eu-central-1 --log-group-name \"$1\"" in function
    assert '--filter-pattern "$3"' in function


def test_one_id_follows_a_request_through_the_access_log_our_lines_and_lambdas_own(deps, json_lines):
    lines = []
    gateway = ApiGateway(app_module.app, stage="api", access_log=lines.append)
    status, headers, _ = gateway.handle("POST", "/api/api/upload", [("Content-Type", "application/json")],
                                        json.dumps(BODY).encode(), "198.51.100.7")
    gateway.handle("GET", "/api/api/upload/limits", [], b"", "198.51.100.7")
    ours = [json.dumps(line) for line in json_lines()]
    answer = dict(headers)
    access = json.loads(lines[0])

    # The answer carries API Gateway's ids; either finds the request's access line, and only that one.
    by_id = readme_filter(ACCESS_GROUP, "extendedRequestId")
    for header in ("x-amzn-RequestId", "x-amz-apigw-id"):
        selected = [line for line in lines if matches(by_id.replace("<id>", answer[header]), line)]
        assert selected == [lines[0]]
    invocation = access["lambdaRequestId"]
    assert status == 201 and invocation not in ("", "-")
    # The access line's invocation id selects our lines of that request (not the other's) and Lambda's own.
    term = readme_filter(API_GROUP, "lambdaRequestId").replace("<lambdaRequestId>", invocation)
    mine = [json.loads(line) for line in ours if matches(term, line)]
    assert mine and {line["lambdaRequestId"] for line in mine} == {invocation}
    assert {line["requestId"] for line in mine} == {answer["x-amzn-RequestId"]}
    assert {line["extendedRequestId"] for line in mine} == {answer["x-amz-apigw-id"]}
    assert ("request", 201) in [(line["message"], line.get("status")) for line in mine]
    platform = [f"START RequestId: {invocation} Version: $LATEST",
                f"2026-01-01T00:00:15.000Z {invocation} Task timed out after 15.00 seconds",
                f"REPORT RequestId: {invocation}\tDuration: 15000.00 ms\tBilled Duration: 15000 ms"]
    assert all(matches(term, line) for line in platform)
