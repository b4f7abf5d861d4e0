"""3D Ultra upload API: routes only. Each parses the request, calls one use case and returns a dict."""

import functools
import logging
import time
from datetime import datetime, timezone

from chalice import Chalice, Rate, Response

from chalicelib import http, logs, metrics, pages, services, worker
from chalicelib.config import Settings
from chalicelib.deps import Dependencies
from chalicelib.queue import parse_message
from chalicelib.http import (
    decode_json_body,
    LIMITS_CACHE_CONTROL,
    iso_utc,
    json_response,
    log_request,
    normalise_chalice_error,
    preflight_response,
    refuse_oversized,
    request_secrets,
    settings_unavailable,
    trace_ids,
    upload_id_of,
    with_cache_policy,
    with_cors,
)

settings = Settings.from_env()
logs.configure_logging(version=settings.version)
metrics.configure(settings.stage)
deps = Dependencies(settings)
app = Chalice(app_name="three-d-ultra-upload")
log = logging.getLogger("chalicelib.app")
# No route-level CORSConfig: API Gateway would answer preflights itself, for one fixed origin. The function
# answers OPTIONS on every API route instead (see the end of this file) and adds CORS headers to every response.
# `/api/upload/limits` and `/api/upload/{upload_id}` share a shape: the literal path wins in both routers
# (API Gateway prefers literal resources; chalice local sorts `limits` before `{`), and "limits" is no upload id.
API_PATHS = ("/api/upload", "/api/upload/limits", "/api/upload/{upload_id}/confirm", "/api/upload/{upload_id}/retry",
             "/api/upload/{upload_id}", "/api/health", "/openapi.json")
# The presigned GETs of a job's preview and model live this long; the page asks for fresh ones before they die.
RESULT_LINK_SECONDS = 900


def report_unexpected(exc: BaseException, *, function: str, secrets=(), **context) -> None:
    """Hand an unexpected exception to error tracking with the ids bound for this request or invocation; never
    raises (a key that cannot be read or a client that fails leaves a log line, and the exception was logged)."""
    try:
        fields = logs.bound()
        deps.error_tracking.capture(exc, function=function, request_id=fields.get("requestId"),
                                    upload_id=fields.get("uploadId"), secrets=secrets, **context)
    except Exception as cause:
        log.warning("error tracking unavailable: %s", type(cause).__name__)


def flush_reports() -> None:
    """Deliver the events and exceptions this request or invocation queued, each within the analytics budget
    (they share one client, so the second flush finds nothing left)."""
    for name in ("analytics", "error_tracking"):
        built = deps.built(name)
        if built is not None:
            built.flush()


# Every API route: its failures leave as JSON errors, an unexpected one reaches error tracking with the request's
# own token, key and email scrubbed from it.
api_view = functools.partial(http.api_view, report=lambda exc, view: report_unexpected(
    exc, function="api", route=view, secrets=request_secrets(app.current_request)))


@app.middleware("http")
def finish_request(request, get_response):
    started = time.perf_counter()
    bound = logs.bind(**trace_ids(request, app.lambda_context), uploadId=upload_id_of(request))
    try:
        if request.method == "OPTIONS":
            response = get_response(request)
        else:
            response = (settings_unavailable(lambda: deps.secrets) or refuse_oversized(request)
                        or normalise_chalice_error(get_response(request)))
            response = with_cors(response, request.headers.get("origin"), deps.settings.allowed_origins)
            response = with_cache_policy(response, request.path)
        flush_reports()
        log_request(request, response, time.perf_counter() - started, app.lambda_context)
    finally:
        logs.unbind(bound)
    return response


@app.route("/api/upload", methods=["POST"])
@api_view
def create_upload():
    request = app.current_request
    created = services.create_upload(
        decode_json_body(request.raw_body, request.headers.get("content-type")),
        request.headers.get("idempotency-key"),
        uploads=deps.uploads,
        storage=deps.storage,
        analytics=deps.analytics,
        max_upload_bytes=deps.settings.max_upload_bytes,
        url_ttl_seconds=deps.settings.upload_url_ttl_seconds,
        abandoned_after_seconds=deps.settings.abandoned_after_seconds,
        # The address API Gateway saw the request come from; a header such as X-Forwarded-For is the client's to set.
        source_ip=((request.context or {}).get("identity") or {}).get("sourceIp"),
        rate_limit_per_ip=deps.settings.rate_limit_per_ip,
        rate_limit_per_email=deps.settings.rate_limit_per_email,
        digest_secret=deps.secrets.digest_secret,
    )
    logs.bind(uploadId=created.upload_id)
    return json_response(
        {
            "uploadUrl": created.upload_url,
            "uploadId": created.upload_id,
            "key": created.key,
            "expiresAt": iso_utc(created.expires_at),
            "sessionToken": created.session_token,
        },
        200 if created.replayed else 201,
    )


@app.route("/api/upload/limits", methods=["GET"])
@api_view
def upload_limits():
    limits = services.describe_upload_limits(max_upload_bytes=deps.settings.max_upload_bytes)
    response = json_response({"maxUploadBytes": limits.max_upload_bytes, "fileTypes": list(limits.file_types)})
    response.headers["Cache-Control"] = LIMITS_CACHE_CONTROL
    return response


@app.route("/api/upload/{upload_id}/confirm", methods=["POST"])
@api_view
def confirm_upload(upload_id):
    confirmed = services.confirm_upload(
        upload_id,
        app.current_request.headers.get("x-session-token"),
        uploads=deps.uploads,
        storage=deps.storage,
        analytics=deps.analytics,
        queue=deps.queue,
    )
    return json_response({"success": True, "jobId": confirmed.job_id, "status": confirmed.status})


@app.route("/api/upload/{upload_id}/retry", methods=["POST"])
@api_view
def retry_job(upload_id):
    job = services.retry_job(upload_id, app.current_request.headers.get("x-session-token"), uploads=deps.uploads,
                             queue=deps.queue, analytics=deps.analytics,
                             max_attempts=deps.settings.processing_max_attempts)
    return json_response({"jobId": job.id, "status": job.status, "attempt": job.attempt}, 202)


@app.route("/api/upload/{upload_id}", methods=["GET"])
@api_view
def get_upload(upload_id):
    headers = app.current_request.headers
    status = services.get_upload_status(upload_id, headers.get("x-session-token"),
                                        view_token=headers.get("x-view-token"), uploads=deps.uploads,
                                        storage=deps.storage, link_seconds=RESULT_LINK_SECONDS)
    job = status.record
    return json_response(
        {
            "jobId": job.id,
            "status": job.status,
            "fileType": job.file_type,
            "fileSize": job.file_size,
            "createdAt": iso_utc(job.created_at),
            "confirmedAt": iso_utc(job.confirmed_at),
            "updatedAt": iso_utc(job.updated_at),
            "attempt": job.attempt,
            "progress": job.progress,
            "previewUrl": status.preview_url,
            "resultUrl": status.result_url,
            "errorMessage": job.error_message if job.status == "failed" else None,
            "resultsDeletedAt": iso_utc(job.results_deleted_at),
        }
    )


@app.route("/api/upload/{upload_id}", methods=["DELETE"])
@api_view
def cancel_upload(upload_id):
    services.cancel_upload(upload_id, app.current_request.headers.get("x-session-token"), uploads=deps.uploads,
                           storage=deps.storage, analytics=deps.analytics)
    return Response(body="", status_code=204)


@app.route("/api/health", methods=["GET"])
@api_view
def health():
    checks = services.check_health(uploads=deps.uploads, storage=deps.storage)
    healthy = all(state == "ok" for state in checks.values())
    return json_response({"status": "ok" if healthy else "unavailable", "checks": checks,
                          "version": deps.settings.version}, 200 if healthy else 503)


@app.route("/openapi.json", methods=["GET"])
def openapi():
    return pages.openapi()


@app.route("/", methods=["GET"])
def upload_page():
    return pages.page("index.html", max_upload_bytes=deps.settings.max_upload_bytes,
                      storage_endpoint=deps.secrets.r2_endpoint_url, base=pages.base_path(app.current_request))


@app.route("/processing/{job_id}", methods=["GET"])
def processing_page(job_id):
    return pages.page("processing.html", max_upload_bytes=deps.settings.max_upload_bytes,
                      storage_endpoint=deps.secrets.r2_endpoint_url, base=pages.base_path(app.current_request))


@app.route("/static/{name}", methods=["GET"])
def static_asset(name):
    return pages.asset(name)


def answer_preflight(**_uri_params):
    request = app.current_request
    methods = [method for method in app.routes[request.path] if method != "OPTIONS"]
    return preflight_response(request.headers.get("origin"), deps.settings.allowed_origins, methods)


for _path in API_PATHS:
    app.route(_path, methods=["OPTIONS"], name="preflight_" + "_".join(filter(None, (
        part.strip("{}") for part in _path.replace(".", "_").split("/")))))(answer_preflight)


def reported(function_name):
    """An exception escaping an event function leaves one JSON line naming the function and the invocation's
    request id and reaches error tracking (delivered before the invocation ends), then propagates, so that Lambda
    still counts the failure (its Errors metric, the sweep's retries and failure destination). Any event function
    (a queue worker too) is wrapped with it."""

    def decorate(handler):
        @functools.wraps(handler)
        def run(event, context):
            invocation = getattr(context, "aws_request_id", None)
            bound = logs.bind(requestId=invocation, lambdaRequestId=invocation, function=function_name)
            try:
                return handler(event, context)
            except Exception as exc:
                log.exception("%s failed: %s", function_name, type(exc).__name__,
                              extra={"errorType": type(exc).__name__})
                report_unexpected(exc, function=function_name)
                flush_reports()
                raise
            finally:
                logs.unbind(bound)

        return run

    return decorate


def accepting_manual_runs(handler):
    """A scheduled handler that also takes a hand-made event (`aws lambda invoke` with `{}`): Chalice's wrapper
    reads every field of an EventBridge event, so the missing ones are filled in and marked as manual."""

    def invoke(event, context):
        if isinstance(event, dict) and "version" not in event:
            event = {"version": "0", "id": getattr(context, "aws_request_id", None) or "manual",
                     "detail-type": "Manual Invocation", "source": "manual", "account": "", "region": "",
                     "time": iso_utc(datetime.now(timezone.utc)), "resources": [], "detail": {}, **event}
        return handler(event, context)

    return invoke


@app.schedule(Rate(1, unit=Rate.HOURS), name="expire-abandoned")
def expire_abandoned(event):
    """Expire uploads that were never confirmed, delete their objects, clear emails past their retention."""
    s = deps.settings
    windows = tuple(limit.seconds for limit in (s.rate_limit_per_ip, s.rate_limit_per_email) if limit)
    context = getattr(event, "context", None)
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return services.expire_abandoned_uploads(uploads=deps.uploads, storage=deps.storage,
                                             older_than_seconds=s.abandoned_after_seconds,
                                             url_ttl_seconds=s.upload_url_ttl_seconds,
                                             email_retention_days=s.email_retention_days,
                                             rate_limit_windows=windows,
                                             result_retention_days=s.result_retention_days,
                                             seconds_left=(lambda: remaining() / 1000) if remaining else None)


# Lambda resolves the handler `app.expire_abandoned` by name when it runs: this wrapping is what it calls (the
# schedule and the packaging keep Chalice's registration above), so a manual run works and whatever escapes,
# Chalice's event parsing included, is reported.
expire_abandoned = reported("expire-abandoned")(accepting_manual_runs(expire_abandoned))


@app.lambda_function(name="migrate")
@reported("migrate")
def migrate(event, context):
    """Apply pending database migrations (the deploy runs them before the code; this checks they are applied).

    Only DATABASE_URL is resolved (in production `/3d-ultra/<stage>/database-url-direct`), never the storage
    secrets; the PostHog key (the only other parameter this function's role may read) only to report a failure."""
    from chalicelib.config import DatabaseSettings, fetch_ssm_parameters
    from chalicelib.db import Database
    from chalicelib.migrate import MIGRATE_TIMEOUT_SECONDS, apply_migrations

    url = deps.settings.database_url
    if not url:
        parameter = dict(deps.settings.ssm_parameters)["DATABASE_URL"]
        url = fetch_ssm_parameters([parameter])[parameter]
    db = Database(DatabaseSettings.from_url(url), timeout=MIGRATE_TIMEOUT_SECONDS,
                  application_name="3d-ultra-migrate")
    try:
        return {"applied": apply_migrations(db), "version": deps.settings.version}
    finally:
        db.close()


# --- Processing: the hand-off queue's worker, its dead letters and the dispatcher -----------------------------
# One message per invocation: Chalice cannot report a partial batch failure, and a failed message must be retried
# alone. The queue names come from the stage's settings (JOBS_QUEUE_NAME), as the template creates them.
JOBS_QUEUE = settings.jobs_queue_name
DEAD_JOBS_QUEUE = JOBS_QUEUE + "-dead"


def worker_timing() -> worker.Timing:
    s = deps.settings
    return worker.Timing(poll_seconds=s.processing_poll_seconds, lease_seconds=max(60, 3 * s.processing_timeout_seconds),
                         input_url_seconds=3600, max_result_bytes=s.max_result_bytes,
                         output_hosts=s.processing_output_hosts)


def email_policy() -> worker.EmailPolicy:
    s = deps.settings
    # A try's lease outlasts the slowest send (SMTP's connect, greeting and data each wait up to the timeout).
    return worker.EmailPolicy(frontend_url=s.frontend_url, max_tries=s.email_max_tries,
                              retry_seconds=s.email_retry_seconds, lease_seconds=max(30.0, 4 * s.email_timeout_seconds),
                              retention_days=s.result_retention_days)


def each_job(event, context, step, notify=None):
    """Run `step(upload_id, attempt)` for the event's one message, or `notify(upload_id, attempt)` for an email's
    message; one that no step can act on is dropped."""
    for record in event:
        parsed = parse_message(record.body)
        if parsed is None:
            log.error("queue message dropped: not a job message", extra={"messageId": record.to_dict().get("messageId")})
            continue
        upload_id, attempt, wants_email = parsed
        bound = logs.bind(uploadId=upload_id)
        try:
            if wants_email and notify is None:
                log.warning("email message dropped here: the dispatcher offers it again while tries remain",
                            extra={"attempt": attempt})
                continue
            outcome = (notify if wants_email else step)(upload_id, attempt)
            log.info("job step: %s", outcome, extra={"attempt": attempt, "outcome": outcome})
        finally:
            logs.unbind(bound)
            analytics = deps.built("analytics")
            if analytics is not None:
                analytics.flush()


@app.on_sqs_message(queue=JOBS_QUEUE, batch_size=1, name="process-job")
def process_job(event):
    """A job's next step at the processing service (submit, or look at its task and record what it shows)."""
    each_job(event, None, lambda upload_id, attempt: worker.process_job(
        upload_id, attempt, uploads=deps.uploads, storage=deps.storage, processing_service=deps.processing,
        queue=deps.queue, analytics=deps.analytics, timing=worker_timing(),
        max_attempts=deps.settings.processing_max_attempts),
        notify=lambda upload_id, attempt: worker.notify_job(
            upload_id, attempt, uploads=deps.uploads, mailer=deps.mailer, queue=deps.queue, analytics=deps.analytics,
            policy=email_policy()))


@app.on_sqs_message(queue=DEAD_JOBS_QUEUE, batch_size=1, name="fail-undeliverable")
def fail_undeliverable(event):
    """A message that failed five receives: its job is failed with words its person can read."""
    each_job(event, None, lambda upload_id, attempt: worker.fail_job(
        upload_id, attempt, "undeliverable", uploads=deps.uploads, analytics=deps.analytics,
        max_attempts=deps.settings.processing_max_attempts, queue=deps.queue))


@app.schedule(Rate(1, unit=Rate.MINUTES), name="dispatch-jobs")
def dispatch_jobs(event):
    """Send again every confirmed job nobody took in time; fail those processing past the deadline."""
    s = deps.settings
    try:
        return worker.dispatch_jobs(uploads=deps.uploads, queue=deps.queue, processing_service=deps.processing,
                                    analytics=deps.analytics, older_than_seconds=s.dispatch_after_seconds,
                                    deadline_seconds=s.processing_deadline_seconds,
                                    max_attempts=s.processing_max_attempts,
                                    email_max_tries=s.email_max_tries if s.email_configured else None)
    finally:
        analytics = deps.built("analytics")
        if analytics is not None:
            analytics.flush()


process_job = reported("process-job")(process_job)
fail_undeliverable = reported("fail-undeliverable")(fail_undeliverable)
dispatch_jobs = reported("dispatch-jobs")(accepting_manual_runs(dispatch_jobs))
