"""The one place where domain outcomes become HTTP: status codes, JSON bodies, request decoding."""

from __future__ import annotations

import functools
import json
import logging
from datetime import timezone

from chalice import Response

from . import errors, logs, metrics

log = logging.getLogger(__name__)

STATUS = {
    errors.ValidationFailed: 400,
    errors.MissingToken: 401,
    errors.InvalidToken: 401,
    errors.UploadNotFound: 404,
    errors.AlreadyConfirmed: 409,
    errors.JobNotRetryable: 409,
    errors.RetryLimitReached: 409,
    errors.UploadExpired: 410,
    errors.UploadCancelled: 410,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.IdempotencyKeyReused: 422,
    errors.UploadNotVerified: 422,
    errors.RateLimited: 429,
    errors.StorageUnavailable: 500,
    errors.DatabaseUnavailable: 503,
    errors.SettingsUnavailable: 503,
    errors.ProcessingUnavailable: 503,
}
# Chalice answers some requests itself (wrong method, wrong media type); give those our error shape too.
CHALICE_CODES = {
    "BadRequestError": "VALIDATION_ERROR",
    "MethodNotAllowedError": "METHOD_NOT_ALLOWED",
    "UnsupportedMediaType": "UNSUPPORTED_MEDIA_TYPE",
    "NotFoundError": "NOT_FOUND",
    "InternalServerError": "INTERNAL_ERROR",
}
JSON_HEADERS = {"Content-Type": "application/json"}
# What the browser client sends besides CORS-safelisted headers; every API route accepts them all (X-View-Token, the
# emailed link's read-only credential, is read by the status route only).
CORS_ALLOW_HEADERS = "Content-Type, X-Session-Token, Idempotency-Key, X-View-Token"
# Readable by the page's script on a cross-origin response: the 429's retry delay, and the ids API Gateway gives
# the request (on every answer, its own errors and timeouts included) for an error report to name.
CORS_EXPOSE_HEADERS = "Retry-After, x-amzn-RequestId, x-amz-apigw-id"
# Chromium keeps a preflight at most two hours; asking for longer buys nothing.
CORS_MAX_AGE_SECONDS = 7200
# The limits change only with a deploy: an hour in a browser or a shared cache saves a request per page load, and
# a lowered limit is still enforced by the create (a stale page gets 400, never an accepted oversized upload).
LIMITS_CACHE_CONTROL = "public, max-age=3600"
# The API's answers carry session tokens, presigned URLs and a job's state: no browser or shared cache may keep one,
# errors included (a cached 404 or 409 would outlive the job's next change). A route that wants caching says so.
API_CACHE_CONTROL = "no-store"
# A valid create body is well under 1 KiB; anything this large is refused before it is parsed.
MAX_BODY_BYTES = 16 * 1024


def json_response(body: dict, status: int = 200) -> Response:
    """A JSON response with an explicit Content-Type."""
    return Response(body=body, status_code=status, headers=dict(JSON_HEADERS))


def error_response(exc: errors.UploadError) -> Response:
    """`{"error": {"code", "message"}}` with the status that fits the error."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    response = json_response({"error": {"code": exc.code, "message": exc.message}}, status)
    if isinstance(exc, errors.RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


def api_view(view, report=None):
    """Wrap a route so that every failure leaves as a JSON error, never as a traceback; an unexpected one is also
    handed to `report(exc, view_name)` (error tracking), whose own failure changes nothing."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except errors.UnknownStatus as exc:
            # A status the lifecycle does not define (a migration ahead of this code, or a bug): loud, with its value.
            log.error("unknown job status %r", exc.status,
                      extra={"code": exc.code, "jobStatus": repr(exc.status), **metrics.emf(UnhandledErrors=1)})
            return error_response(exc)
        except errors.UploadError as exc:
            reason = getattr(exc, "reason", None)
            if reason:
                logs.bind(reason=reason)  # the access line of this request carries it too
                log.warning("%s: %s", exc.code, reason, extra={"code": exc.code})
            return error_response(exc)
        except Exception as exc:
            # The client still gets the JSON 500 (never a trace). Lambda's Errors metric only counts an
            # invocation that fails, which would replace this answer with API Gateway's 502; the line records
            # an UnhandledErrors metric instead (Embedded Metric Format: no API call), which an alarm watches.
            log.exception("unhandled error in %s", view.__name__,
                          extra={"code": errors.UploadError.code, **metrics.emf(UnhandledErrors=1)})
            if report is not None:
                try:
                    report(exc, view.__name__)
                except Exception as cause:
                    log.warning("error tracking failed: %s", type(cause).__name__)
            return error_response(errors.UploadError())

    return wrapper


def request_secrets(request) -> tuple[str, ...]:
    """The values of a request that no report may repeat: its session token, Idempotency-Key and email."""
    headers = getattr(request, "headers", None) or {}
    values = [headers.get("x-session-token"), headers.get("idempotency-key")]
    try:
        body = json.loads(getattr(request, "raw_body", None) or b"null")
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("email"), str):
        values.append(body["email"])
    return tuple(value for value in values if value)


def iso_utc(moment):
    """ISO-8601 in UTC with a Z, to the millisecond (what JavaScript's Date prints), or None."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decode_json_body(raw: bytes | None, content_type: str | None) -> object:
    """The request body as JSON; a missing, undecodable or too deeply nested body is a validation error.

    The body must be declared application/json. Chalice lets a request without a Content-Type through, and
    such a request (like text/plain) is one a page on any origin may send without a CORS preflight: requiring
    the JSON type keeps other sites from making their visitors' browsers create jobs."""
    if (content_type or "").partition(";")[0].strip().lower() != "application/json":
        raise errors.UnsupportedMediaType()
    if not raw:
        raise errors.ValidationFailed("The request body must be a JSON object.")
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise errors.ValidationFailed("The request body is not valid JSON.") from None


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # pragma: no mutate (decode_json_body replaces the message)


def log_request(request, response: Response, seconds: float, lambda_context=None) -> None:
    """One access-log line per request: ids, route, status, error code and latency; never a token, an email or a
    body."""
    context = getattr(request, "context", None) or {}
    body = response.body if isinstance(response.body, dict) else {}
    error = body.get("error") if isinstance(body.get("error"), dict) else {}
    log.info("request", extra={
        **trace_ids(request, lambda_context),
        "method": getattr(request, "method", None),
        "route": context.get("resourcePath"),
        "status": response.status_code,
        "code": error.get("code"),
        "latencyMs": round(seconds * 1000, 1),
        "uploadId": upload_id_of(request) or body.get("uploadId"),
    })


def request_id(request, lambda_context=None) -> str | None:
    """API Gateway's request id (the one in its access log), else the Lambda invocation's."""
    context = getattr(request, "context", None) or {}
    return context.get("requestId") or getattr(lambda_context, "aws_request_id", None)


def trace_ids(request, lambda_context=None) -> dict:
    """The ids that find this request in every log: API Gateway's `requestId` (x-amzn-RequestId; a client may
    choose it) and `extendedRequestId` (x-amz-apigw-id, always its own), both in its access log, and the Lambda
    invocation's `lambdaRequestId`, which Lambda's own lines (START, END, REPORT, Task timed out) carry."""
    context = getattr(request, "context", None) or {}
    return {"requestId": request_id(request, lambda_context), "extendedRequestId": context.get("extendedRequestId"),
            "lambdaRequestId": getattr(lambda_context, "aws_request_id", None)}


def upload_id_of(request) -> str | None:
    """The upload id in the request's path, if any."""
    return (getattr(request, "uri_params", None) or {}).get("upload_id")


def refuse_oversized(request) -> Response | None:
    """A 413 for bodies no valid request has, or None."""
    body = getattr(request, "raw_body", None)
    if body and len(body) > MAX_BODY_BYTES:
        return error_response(errors.PayloadTooLarge())
    return None


def normalise_chalice_error(response: Response) -> Response:
    """Rewrite Chalice's own `{"Code", "Message"}` error bodies into ours."""
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and "Code" in body and "error" not in body:
        code = CHALICE_CODES.get(body["Code"], "INTERNAL_ERROR" if response.status_code >= 500 else "BAD_REQUEST")
        message = body.get("Message") or "The request could not be handled."
        if code == "INTERNAL_ERROR":
            message = errors.UploadError.message
        response.body = {"error": {"code": code, "message": message}}
        response.headers["Content-Type"] = "application/json"
    return response


def with_cache_policy(response: Response, path: str | None) -> Response:
    """`response` with `Cache-Control: no-store` if it answers an API route that set no policy of its own."""
    if (path or "").startswith("/api/") and not any(name.lower() == "cache-control" for name in response.headers):
        response.headers["Cache-Control"] = API_CACHE_CONTROL
    return response


def cors_headers(origin: str | None, allowed_origins: tuple[str, ...]) -> dict:
    """The CORS headers of an actual response: an allowed Origin reflected, any other never named.

    `Vary: Origin` goes on every answer, allowed or not, so that no cache hands one origin's answer to another.
    """
    if origin and origin in allowed_origins:
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
                "Vary": "Origin"}
    return {"Vary": "Origin"}


def with_cors(response: Response, origin: str | None, allowed_origins: tuple[str, ...]) -> Response:
    """`response` with the CORS headers for `origin` added (keeping any Vary it had)."""
    headers = cors_headers(origin, allowed_origins)
    vary = [v.strip() for v in (response.headers.get("Vary") or "").split(",") if v.strip()]
    if "Origin" not in vary:
        vary.append("Origin")
    response.headers.update({**headers, "Vary": ", ".join(vary)})
    return response


def preflight_response(origin: str | None, allowed_origins: tuple[str, ...], methods: list[str]) -> Response:
    """The answer to `OPTIONS` on an API route, given by the function so that several origins can be allowed.

    An allowed origin gets the methods, headers and max-age the browser needs; a request without Origin (not a
    browser's preflight) just learns the methods; any other origin gets a 403 that names no origin.
    """
    allow = ", ".join([*methods, "OPTIONS"])
    if origin and origin in allowed_origins:
        return Response(body="", status_code=204, headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": allow,
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Max-Age": str(CORS_MAX_AGE_SECONDS),
            "Vary": "Origin",
        })
    if not origin:
        return Response(body="", status_code=204, headers={"Allow": allow, "Vary": "Origin"})
    response = json_response({"error": {"code": "ORIGIN_NOT_ALLOWED",
                                        "message": "This website is not allowed to call the upload API."}}, 403)
    response.headers["Vary"] = "Origin"
    return response


def settings_unavailable(resolve) -> Response | None:
    """None if `resolve()` (settings and secrets) succeeds, else a 503 whose reason goes to the log only."""
    try:
        resolve()
    except Exception as exc:  # SSM unreachable, a parameter missing, a bad value: all leave the same way
        log.error("settings unavailable: %s: %s", type(exc).__name__, exc)
        return error_response(errors.SettingsUnavailable())
    return None
