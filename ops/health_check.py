"""The synthetic check of GET <ApiUrl>api/health, deployed inline as its own scheduled function (no dependency).

Every run prints one JSON line that is also a metric (Embedded Metric Format): HealthCheckFailed 0 or 1 and
HealthCheckMs, dimension Stage. Failed: no 200 with status "ok" within the timeout (a 503 names the failing
dependency, a 5XX of API Gateway's a broken function, none at all an unreachable API). It never raises, so
Lambda never retries a run and the metric alone tells the alarm.
"""

import json
import os
import time
import urllib.error
import urllib.request


def handler(event, context):
    url = os.environ["HEALTH_URL"]
    timeout = float(os.environ.get("TIMEOUT_SECONDS", "10"))
    started = time.monotonic()
    status, body, headers, problem = None, {}, {}, None
    request = urllib.request.Request(url, headers={"User-Agent": "3d-ultra-health-check"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    except Exception as exc:  # unreachable, refused, timed out, TLS: all a failed check
        raw, problem = b"", f"{type(exc).__name__}: {exc}"
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        problem = problem or "the answer is not JSON"
    if not isinstance(body, dict):
        body = {}
    failed = 0 if status == 200 and body.get("status") == "ok" else 1
    line = {
        "_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
            "Namespace": os.environ.get("METRICS_NAMESPACE", "3DUltra/Upload"), "Dimensions": [["Stage"]],
            "Metrics": [{"Name": "HealthCheckFailed", "Unit": "Count"},
                        {"Name": "HealthCheckMs", "Unit": "Milliseconds"}]}]},
        "Stage": os.environ.get("STAGE", "dev"),
        "HealthCheckFailed": failed,
        "HealthCheckMs": round((time.monotonic() - started) * 1000),
        "message": "health check failed" if failed else "health check ok",
        "url": url, "status": status, "checks": body.get("checks"), "version": body.get("version"),
        # The ids API Gateway gave this request: they find it in the access log and the function's log.
        "requestId": headers.get("x-amzn-RequestId") if headers else None,
        "extendedRequestId": headers.get("x-amz-apigw-id") if headers else None,
        "problem": problem,
    }
    print(json.dumps(line))
    return {"failed": failed, "status": status}
