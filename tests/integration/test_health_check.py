"""The synthetic check (ops/health_check.py, deployed inline as a scheduled function): one JSON line per run that
is also the HealthCheckFailed metric, against the real local API and against answers an outage gives."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.processes import free_port
from ops import health_check


@pytest.fixture
def run(monkeypatch, capsys):
    def check(url, timeout="2"):
        monkeypatch.setenv("HEALTH_URL", url)
        monkeypatch.setenv("TIMEOUT_SECONDS", timeout)
        monkeypatch.setenv("STAGE", "prod")
        result = health_check.handler({}, None)
        [line] = capsys.readouterr().out.splitlines()
        return result, json.loads(line)

    return check


@pytest.fixture
def answering():
    """A server answering every GET with (status, body, delay) set by the test."""
    answer = {"status": 200, "body": b"{}", "delay": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            time.sleep(answer["delay"])
            self.send_response(answer["status"])
            self.send_header("x-amzn-RequestId", "c0ffee-1")
            self.send_header("x-amz-apigw-id", "MTqkVEq-FiAEHfw=")
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield answer, f"http://127.0.0.1:{server.server_address[1]}/api/api/health"
    server.shutdown()


def test_the_check_of_the_real_api_passes_and_records_a_zero(run, live_server):
    result, line = run(f"{live_server}/api/health", timeout="10")

    assert result == {"failed": 0, "status": 200}
    assert (line["HealthCheckFailed"], line["message"], line["checks"]) == (
        0, "health check ok", {"database": "ok", "storage": "ok"})
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive == {"Namespace": "3DUltra/Upload", "Dimensions": [["Stage"]], "Metrics": [
        {"Name": "HealthCheckFailed", "Unit": "Count"}, {"Name": "HealthCheckMs", "Unit": "Milliseconds"}]}
    assert line["Stage"] == "prod" and isinstance(line["HealthCheckMs"], int)


@pytest.mark.parametrize("status, body, problem", [
    (503, b'{"status": "unavailable", "checks": {"database": "unavailable", "storage": "ok"}}', None),
    (502, b'{"message": "Internal server error"}', None),
    (200, b'{"status": "unavailable"}', None),
    (200, b"<html>", "the answer is not JSON"),
])
def test_an_answer_other_than_200_ok_is_a_failed_check(run, answering, status, body, problem):
    answer, url = answering
    answer.update(status=status, body=body)

    result, line = run(url)

    assert result == {"failed": 1, "status": status}
    assert (line["HealthCheckFailed"], line["message"], line["problem"]) == (1, "health check failed", problem)
    # API Gateway's ids of the failed request find it in the access log and the function's log.
    assert (line["requestId"], line["extendedRequestId"]) == ("c0ffee-1", "MTqkVEq-FiAEHfw=")
    if status == 503:
        assert line["checks"] == {"database": "unavailable", "storage": "ok"}


def test_no_answer_within_the_timeout_is_a_failed_check(run, answering):
    answer, url = answering
    answer["delay"] = 2

    started = time.monotonic()
    result, line = run(url, timeout="0.5")

    assert time.monotonic() - started < 1.9
    assert (result["failed"], result["status"]) == (1, None)
    assert "timed out" in line["problem"]


def test_an_unreachable_api_is_a_failed_check(run):
    result, line = run(f"http://127.0.0.1:{free_port()}/api/api/health")

    assert result == {"failed": 1, "status": None}
    assert line["problem"].startswith("URLError")
