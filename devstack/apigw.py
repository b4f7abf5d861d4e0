"""The app behind a local stand-in for API Gateway REST: routes under a stage prefix, Lambda proxy events.

`chalice local` serves the routes at the root and leaves the event's `path` out; deployed, API Gateway serves
them under the stage (`https://ID.execute-api.REGION.amazonaws.com/api/api/upload` for stage `api`), and the
event's `path`/`resource` exclude the stage while `requestContext.stage` and `requestContext.path` carry it.
This front does the same, and calls the Chalice app one request at a time, as one Lambda container would.

    python -m devstack.apigw --port 8000 --stage api     (the app's settings come from the environment)
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)


def route_for(app, path: str, method: str):
    """(resource template, path parameters) of the app's route for `path` and `method`, or None."""
    from chalice.local import RouteMatcher

    try:
        match = RouteMatcher(list(app.routes)).match_route(path)
    except ValueError:
        return None
    if method not in app.routes[match.route]:
        return None
    return match.route, match.captured


def proxy_event(*, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, source_ip: str,
                stage: str, resource: str, path_parameters: dict | None, binary_types=()) -> dict:
    """The Lambda proxy event API Gateway REST sends for a request to `/{stage}{path}`."""
    parts = urlsplit(raw_path)
    path = parts.path[len(stage) + 1:] or "/"
    query = parse_qs(parts.query, keep_blank_values=True)
    single, multi = {}, {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
    binary = bool(body) and content_type.split(";")[0].strip() in binary_types
    try:
        text = None if binary else body.decode("utf-8")
    except UnicodeDecodeError:
        text, binary = None, True
    now = time.time()
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single or None,
        "multiValueHeaders": multi or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": f"/{stage}{path}",
            "stage": stage,
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "extendedRequestId": extended_request_id(),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": next((v for k, v in headers if k.lower() == "host"), ""),
            "identity": {"sourceIp": source_ip, "userAgent": next(
                (v for k, v in headers if k.lower() == "user-agent"), None)},
        },
        "body": (base64.b64encode(body).decode("ascii") if binary else text) if body else None,
        "isBase64Encoded": binary,
    }


def extended_request_id() -> str:
    """An id shaped like API Gateway's extendedRequestId (its x-amz-apigw-id header), e.g. `MTqkVEq-FiAEHfw=`."""
    return base64.urlsafe_b64encode(os.urandom(11)).decode("ascii")


def id_headers(context: dict) -> list:
    """The ids API Gateway puts on every answer (its own errors included): x-amzn-RequestId, x-amz-apigw-id."""
    return [("x-amzn-RequestId", context["requestId"]), ("x-amz-apigw-id", context["extendedRequestId"])]


class LambdaContext:
    """The parts of the Lambda context object the app reads."""

    def __init__(self, function_name: str, timeout_seconds: float = 15.0):
        self.function_name = function_name
        self.aws_request_id = str(uuid.uuid4())
        self.memory_limit_in_mb = "512"
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def missing_route(origin: str | None):
    """What API Gateway REST answers for a path or method it has no resource for: 403, with the gateway response
    the packaged template configures (ops/package.py), whose CORS headers reflect the caller's Origin."""
    from ops.package import gateway_responses

    answer = gateway_responses()["MISSING_AUTHENTICATION_TOKEN"]
    expose = answer["responseParameters"]["gatewayresponse.header.Access-Control-Expose-Headers"].strip("'")
    headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "MissingAuthenticationTokenException"),
               ("Vary", "Origin"), ("Access-Control-Expose-Headers", expose)]
    if origin:
        headers.append(("Access-Control-Allow-Origin", origin))
    return 403, headers, answer["responseTemplates"]["application/json"].encode()


class ApiGateway:
    """Routes a request under `/{stage}` to the app as a proxy event; one invocation at a time."""

    def __init__(self, app, *, stage: str = "api", access_log=None):
        self.app = app
        self.stage = stage
        # Called with one line per request in the deployed stage's access-log format (ops/package.py).
        self.access_log = access_log
        # A Lambda container never runs two requests at once, and the app relies on that.
        self._invoke_lock = threading.Lock()

    def handle(self, method: str, raw_path: str, headers: list, body: bytes, source_ip: str):
        """(status, [(header, value)], body bytes) for one HTTP request."""
        started = time.monotonic()
        status, out, payload, context = self._handle(method, raw_path, headers, body, source_ip)
        if self.access_log is not None:
            from ops.package import render_access_log

            self.access_log(render_access_log({
                "$context.requestId": context["requestId"], "$context.extendedRequestId": context["extendedRequestId"],
                "$context.integration.requestId": context.get("lambdaRequestId"), "$context.apiId": "local",
                "$context.identity.sourceIp": source_ip,
                "$context.requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
                "$context.httpMethod": method, "$context.resourcePath": context.get("resourcePath"),
                "$context.status": status, "$context.responseLength": len(payload),
                "$context.responseLatency": round((time.monotonic() - started) * 1000),
                "$context.integrationStatus": context.get("integrationStatus"),
                "$context.error.responseType": context.get("error")}))
        return status, out + id_headers(context), payload

    def _handle(self, method: str, raw_path: str, headers: list, body: bytes, source_ip: str):
        path = urlsplit(raw_path).path
        prefix = f"/{self.stage}"
        route = None
        if path == prefix or path.startswith(prefix + "/"):
            route = route_for(self.app, path[len(prefix):] or "/", method)
        if route is None:
            return (*missing_route(next((value for name, value in headers if name.lower() == "origin"), None)),
                    {"error": "MISSING_AUTHENTICATION_TOKEN", "requestId": str(uuid.uuid4()),
                     "extendedRequestId": extended_request_id()})
        event = proxy_event(method=method, raw_path=raw_path, headers=headers, body=body, source_ip=source_ip,
                            stage=self.stage, resource=route[0], path_parameters=route[1],
                            binary_types=self.app.api.binary_types)
        with self._invoke_lock:
            invocation = LambdaContext(self.app.app_name)  # its time starts when the container takes the request
            result = self.app(event, invocation)
        out = [(k, v) for k, values in (result.get("multiValueHeaders") or {}).items() for v in values]
        out += [(k, v) for k, v in (result.get("headers") or {}).items()]
        raw = result.get("body") or ""
        payload = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode("utf-8")
        context = {"requestId": event["requestContext"]["requestId"],
                   "extendedRequestId": event["requestContext"]["extendedRequestId"],
                   "lambdaRequestId": invocation.aws_request_id, "resourcePath": route[0],
                   "integrationStatus": result["statusCode"]}
        return result["statusCode"], out, payload, context


def http_server(gateway: ApiGateway, port: int) -> ThreadingHTTPServer:
    """A threaded HTTP server on 127.0.0.1:port in front of `gateway`; the peer's address is the source IP."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = gateway.handle(self.command, self.path, list(self.headers.items()), body,
                                                      self.client_address[0])
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _handle

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stage", default="api")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from app import app  # reads its settings from the environment, as the Lambda does at a cold start

    # The access log goes to stderr with the app's own lines, as one more JSON line per request.
    server = http_server(ApiGateway(app, stage=args.stage, access_log=lambda line: print(line, file=sys.stderr,
                                                                                            flush=True)), args.port)
    print(f"API Gateway stand-in on http://127.0.0.1:{args.port}/{args.stage}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
