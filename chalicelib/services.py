"""Use cases of the upload API: plain values in, plain values out, dependencies passed in."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Optional

from . import domain, metrics
from .errors import (
    DatabaseOutcomeUnknown,
    IdempotencyKeyReused,
    InvalidToken,
    MissingToken,
    RateLimited,
    StorageUnavailable,
    UploadError,
    UploadExpired,
    UploadNotFound,
    UploadNotVerified,
)
from .repository import LimitCheck, UploadRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CreatedUpload:
    """What the browser needs to PUT its photo and later prove it owns the job."""

    upload_url: str
    upload_id: str
    key: str
    expires_at: datetime
    session_token: str
    replayed: bool


def create_upload(
    body: object,
    idempotency_key: Optional[str],
    *,
    uploads,
    storage,
    analytics,
    max_upload_bytes: int,
    url_ttl_seconds: int,
    abandoned_after_seconds: Optional[int] = None,
    source_ip: Optional[str] = None,
    rate_limit_per_ip=None,
    rate_limit_per_email=None,
    digest_secret: str,
) -> CreatedUpload:
    """Validate the request, create (or replay) the pending job, mint its token and presign its PUT.

    `source_ip` is the address API Gateway saw (never a header the client sets); the limits (`RateLimit`s,
    None for none) are decided by the database in the create's one statement. The key, the fingerprint and the
    limits' keys reach the database only as HMACs under `digest_secret`.
    """
    request = domain.parse_upload_request(body, max_bytes=max_upload_bytes)
    idempotency_key = domain.parse_idempotency_key(idempotency_key)
    upload_id = domain.new_upload_id()
    token = domain.mint_token()
    replay = dict(fingerprint=request.fingerprint(digest_secret), idempotency_key=None,
                  legacy_fingerprint=request.legacy_fingerprint(), legacy_idempotency_key=None)
    if idempotency_key is not None:
        replay.update(idempotency_key=domain.idempotency_key_digest(digest_secret, idempotency_key),
                      legacy_idempotency_key=domain.legacy_idempotency_key_digest(idempotency_key))
    limits = []
    if rate_limit_per_ip is not None and source_ip:
        limits.append(LimitCheck("ip", domain.rate_limit_key(digest_secret, "ip", source_ip), rate_limit_per_ip.count,
                                 rate_limit_per_ip.seconds))
    if rate_limit_per_email is not None:
        limits.append(LimitCheck("email", domain.rate_limit_key(digest_secret, "email", request.email, source_ip),
                                 rate_limit_per_email.count, rate_limit_per_email.seconds))
    token_hash = domain.hash_token(token)
    try:
        outcome = uploads.create(
            upload_id=upload_id,
            email=request.email,
            token_hash=token_hash,
            key=domain.object_key(upload_id, request.extension),
            file_type=request.file_type,
            file_size=request.file_size,
            limits=limits,
            **replay,
        )
    except DatabaseOutcomeUnknown:
        _settle_unanswered_create(uploads, upload_id, token_hash, idempotency_key)
        raise
    if outcome.retry_after_seconds is not None:
        raise RateLimited(outcome.retry_after_seconds)
    if outcome.record is None:
        _explain_refused_replay(uploads.replay_conflict(replay["idempotency_key"], replay["fingerprint"],
                                                        replay["legacy_idempotency_key"],
                                                        replay["legacy_fingerprint"]))
    if not outcome.inserted and uploads.claim_owed_report(outcome.record.id, token_hash, "created"):
        # The first attempt created this job but its answer was lost: this replay is the creation the client sees.
        outcome = replace(outcome, inserted=True)
    record = outcome.record
    # Whole seconds: the signature's own clock is truncated the same way, so the URL never dies earlier.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ttl = url_ttl_seconds
    if abandoned_after_seconds is not None:
        # A replay must not hand out a URL that outlives its job: after the sweep, such a URL could put the
        # deleted object back.
        ttl = min(ttl, int((record.created_at + timedelta(seconds=abandoned_after_seconds) - now).total_seconds()))
        if ttl <= 0:
            raise UploadExpired()
    expires_at = now + timedelta(seconds=ttl)
    upload_url = storage.presign_put(
        record.key, content_type=record.file_type, content_length=record.file_size, expires_in=ttl
    )
    if outcome.inserted:
        analytics.capture("session_created", record.id, {"uploadId": record.id})
    return CreatedUpload(
        upload_url=upload_url,
        upload_id=record.id,
        key=record.key,
        expires_at=expires_at,
        session_token=token,
        replayed=not outcome.inserted,
    )


def _settle_unanswered_create(uploads, upload_id: str, token_hash: str, idempotency_key: Optional[str]) -> None:
    """The insert was sent and its answer lost: it may have committed. With an Idempotency-Key the client's retry
    will replay it, so mark the job as owing its creation; without one nobody can reach the job, so remove it."""
    try:
        if idempotency_key is None:
            uploads.forget_unseen(upload_id)
        else:
            uploads.owe_report(upload_id, token_hash, "created")
    except UploadError:
        pass  # the database is still unreachable; the sweep expires a job nobody reached


def _explain_refused_replay(conflict) -> None:
    if conflict is None or conflict.same_request is False:
        raise IdempotencyKeyReused()
    raise domain.refusal(domain.stage_of(conflict.status, conflict.confirmed))


def _presented_token(upload_id: str, token: Optional[str]) -> str:
    """What can be refused before the database is asked: no token, a malformed id, a token we never mint."""
    if not token:
        raise MissingToken()
    if not domain.is_upload_id(upload_id):
        raise UploadNotFound()
    if len(token) > domain.MAX_TOKEN_LENGTH:
        raise InvalidToken()
    return token


def authorize(upload_id: str, token: Optional[str], *, uploads) -> UploadRecord:
    """The session check every job-scoped route uses: the token must belong to this upload."""
    token = _presented_token(upload_id, token)
    record = uploads.get(upload_id)
    if record is None:
        raise UploadNotFound()
    if not domain.token_matches(token, record.token_hash):
        raise InvalidToken()
    return record


VIEW_LINK_INVALID = "This link is not valid for this upload."
VIEW_LINK_EXPIRED = "This link has expired: the photo and its 3D model were deleted. Please upload your photo again."


def authorize_view(upload_id: str, view_token: Optional[str], *, uploads) -> UploadRecord:
    """The read-only check of the emailed link: the view credential must be this job's and still live (it dies
    with the results' retention). One statement reads the job, the credential's digest and its expiry."""
    view_token = _presented_token(upload_id, view_token)
    record = uploads.get(upload_id)
    if record is None:
        raise UploadNotFound()
    if record.view_token_hash is None or not domain.token_matches(view_token, record.view_token_hash):
        raise InvalidToken(VIEW_LINK_INVALID)
    if not record.view_live:
        raise UploadExpired(VIEW_LINK_EXPIRED)
    return record


@dataclass(frozen=True)
class ConfirmedUpload:
    """A job that is confirmed and ready for processing."""

    job_id: str
    status: str


def confirm_upload(upload_id: str, token: Optional[str], *, uploads, storage, analytics,
                   queue=None) -> ConfirmedUpload:
    """Check the photo really is in storage as declared (size, type and its first bytes, in one storage request),
    then mark the job confirmed, exactly once, pinned to the ETag of those bytes, and hand it to processing."""
    record = authorize(upload_id, token, uploads=uploads)
    if record.confirmed_at is not None:
        owed = uploads.claim_owed_report(record.id, record.token_hash, "confirmed")
        if owed is not None:
            # This token's earlier confirm committed but its answer was lost: answer it now, and report it once.
            hand_off(owed.id, owed.attempt, queue=queue)
            return _report_confirmed(owed, analytics)
    _ensure_confirmable(record)
    stored = storage.peek(record.key, domain.SIGNATURE_BYTES)
    if stored is None:
        raise UploadNotVerified(reason="missing")
    if stored.size != record.file_size:
        raise UploadNotVerified(reason="size")
    if _media_type(stored.content_type) != record.file_type:
        raise UploadNotVerified(reason="type")
    if stored.content_encoding.strip().lower() not in ("", "identity"):
        # A browser or a processing step would decode these bytes before reading them: not what was checked.
        raise UploadNotVerified(reason="encoding")
    if stored.content_disposition:
        raise UploadNotVerified(reason="disposition")
    if not domain.matches_declared_type(stored.first_bytes, record.file_type):
        raise UploadNotVerified(reason="bytes")
    try:
        confirmed = uploads.mark_confirmed(record.id, record.token_hash, stored.etag)
    except DatabaseOutcomeUnknown:
        try:
            uploads.owe_report(record.id, record.token_hash, "confirmed")
        except UploadError:
            pass  # still unreachable: the confirm stays unreported rather than risk reporting it twice
        raise
    if confirmed is None:
        # Someone else changed the row between our read and our update: say what happened.
        current = uploads.get(record.id)
        if current is None:
            raise UploadNotFound()
        _ensure_confirmable(current)
        raise InvalidToken()
    hand_off(confirmed.id, confirmed.attempt, queue=queue)
    return _report_confirmed(confirmed, analytics)


def hand_off(upload_id: str, attempt: int, *, queue) -> None:
    """Send the committed job to the processing queue. A send that fails or times out (bounded by the queue
    client's timeouts) fails nothing: the dispatcher sends every confirmed job that was not taken in time."""
    if queue is None:
        return
    try:
        queue.send(upload_id, attempt)
    except Exception as exc:  # the confirm has committed; its answer must not depend on the queue
        log.warning("hand-off to processing deferred to the dispatcher: %s", type(exc).__name__)


def _report_confirmed(confirmed: UploadRecord, analytics) -> "ConfirmedUpload":
    duration_ms = int((confirmed.confirmed_at - confirmed.created_at).total_seconds() * 1000)
    analytics.capture("upload_confirmed", confirmed.id, {"uploadId": confirmed.id})
    analytics.capture(
        "upload_completed",
        confirmed.id,
        {
            "uploadId": confirmed.id,
            "fileSize": confirmed.file_size,
            "fileType": confirmed.file_type,
            "durationMs": duration_ms,
        },
    )
    return ConfirmedUpload(job_id=confirmed.id, status=confirmed.status)


def _ensure_confirmable(record: UploadRecord) -> None:
    domain.ensure_may(_stage(record), domain.CONFIRMED)


def _stage(record: UploadRecord) -> str:
    return domain.stage_of(record.status, record.confirmed_at is not None)


def _media_type(content_type: str) -> str:
    return content_type.partition(";")[0].strip().lower()


@dataclass(frozen=True)
class JobStatus:
    """The job as the processing screen shows it, with short-lived links to its preview and model."""

    record: UploadRecord
    preview_url: Optional[str]
    result_url: Optional[str]


def get_upload_status(upload_id: str, token: Optional[str], *, view_token: Optional[str] = None, uploads,
                      storage=None, link_seconds: int = 900) -> JobStatus:
    """The job as the processing screen shows it: links (presigned GETs, no storage request) only to results
    that were written and not yet removed by their retention. Opened with the session token, or, without one,
    with the emailed view credential (read-only: this is the only use case that takes it)."""
    if token or not view_token:
        record = authorize(upload_id, token, uploads=uploads)
    else:
        record = authorize_view(upload_id, view_token, uploads=uploads)
    domain.ensure_visible(_stage(record))
    links = {}
    if storage is not None and record.results_deleted_at is None:
        for name, key in (("preview_url", record.preview_key), ("result_url", record.result_key)):
            if key:
                links[name] = storage.presign_get(key, expires_in=link_seconds)
    return JobStatus(record=record, preview_url=links.get("preview_url"), result_url=links.get("result_url"))


def retry_job(upload_id: str, token: Optional[str], *, uploads, queue, analytics, max_attempts: int) -> UploadRecord:
    """Start a new attempt of a failed job, without a new upload, up to `max_attempts` attempts in all; one
    conditional statement decides (a double click retries once)."""
    token_hash = domain.hash_token(_presented_token(upload_id, token))
    outcome = uploads.retry(upload_id, token_hash, max_attempts)
    if outcome is None:
        raise UploadNotFound()
    if not outcome.owned:
        raise InvalidToken()
    if outcome.retried_attempt is None:
        stage = domain.stage_of(outcome.status, outcome.confirmed)
        domain.ensure_visible(stage)
        if stage == domain.FAILED and outcome.results_deleted:
            raise UploadExpired()
        if stage == domain.FAILED and outcome.attempt < max_attempts:
            # A concurrent retry (a double click) won after this statement's snapshot: that one sent it.
            return uploads.get(upload_id)
        domain.ensure_retryable(stage, outcome.attempt, max_attempts)
    attempt = outcome.retried_attempt
    analytics.capture("processing_retried", upload_id, {"uploadId": upload_id, "attempt": attempt})
    hand_off(upload_id, attempt, queue=queue)
    return uploads.get(upload_id)


def cancel_upload(upload_id: str, token: Optional[str], *, uploads, storage, analytics) -> None:
    """Cancel a pending, unconfirmed job, then delete its object; repeating a cancel changes and reports nothing.

    One conditional statement decides (a concurrent confirm or expiry either wins or loses, never both). The
    object is deleted after the commit: if storage fails now, or a still-valid URL puts the object back later, the
    hourly sweep removes it once no URL of the job can be valid (see `expire_abandoned_uploads`).
    """
    token_hash = domain.hash_token(_presented_token(upload_id, token))
    try:
        outcome = uploads.cancel(upload_id, token_hash)
    except DatabaseOutcomeUnknown:
        try:
            uploads.owe_report(upload_id, token_hash, "cancelled")
        except UploadError:
            pass  # still unreachable: the cancel stays unreported rather than risk reporting it twice
        raise
    if outcome is None:
        raise UploadNotFound()
    if not outcome.owned:
        raise InvalidToken()
    if not outcome.cancelled:
        stage = domain.stage_of(outcome.status, outcome.confirmed)
        if stage == domain.PENDING:
            # Another transaction changed the job after this statement's snapshot: look at what it did.
            current = uploads.get(upload_id)
            if current is None:
                raise UploadNotFound()
            if not domain.token_matches(token, current.token_hash):
                raise InvalidToken()
            stage = _stage(current)
        if stage != domain.CANCELLED:
            raise domain.refusal(stage)
        if outcome.report_owed != "cancelled" or uploads.claim_owed_report(upload_id, token_hash, "cancelled") is None:
            return  # cancelled before, and reported then
    analytics.capture("upload_cancelled", upload_id, {"uploadId": upload_id})
    try:
        storage.delete(outcome.key)
    except StorageUnavailable:
        # The request's log context already names the upload.
        log.warning("cancelled upload's object not deleted; the sweep will")


def _delete_old_results(uploads, storage, retention_days: int, batch_size: int, out_of_time=lambda: False) -> int:
    """Remove the photo, preview and model of jobs finished longer ago than the retention; the status then
    shows no links and says when they went. No batch starts once `out_of_time()`."""
    deleted = 0
    while not out_of_time():
        finished = uploads.results_to_delete(retention_days, batch_size)
        if not finished:
            return deleted
        for _, keys in finished:
            for key in keys:
                storage.delete(key)
        uploads.mark_results_deleted([upload_id for upload_id, _ in finished])
        deleted += len(finished)
    return deleted


@dataclass(frozen=True)
class UploadLimits:
    """What a front end on any origin checks before it creates a job."""

    max_upload_bytes: int
    file_types: tuple[str, ...]


def describe_upload_limits(*, max_upload_bytes: int) -> UploadLimits:
    """The size limit from the settings and the accepted types from the domain's table: no I/O at all."""
    return UploadLimits(max_upload_bytes=max_upload_bytes, file_types=tuple(domain.FILE_TYPES))


def check_health(*, uploads, storage) -> dict:
    """Ask each dependency for one round trip; name the ones that fail."""
    checks = {}
    for name, ping in (("database", uploads.ping), ("storage", storage.ping)):
        try:
            ping()
            checks[name] = "ok"
        except UploadError:
            checks[name] = "unavailable"
    return checks


# What the sweep keeps of its time limit for the work after its deletes (marking a batch, clearing emails, the
# summary): it starts no batch with less left, so a backlog ends the run early instead of timing it out.
SWEEP_RESERVE_SECONDS = 30


def expire_abandoned_uploads(*, uploads, storage, older_than_seconds: int, url_ttl_seconds: int,
                             email_retention_days: int | None = None, rate_limit_windows: tuple = (),
                             batch_size: int = 200, result_retention_days: int | None = None,
                             seconds_left=None) -> dict:
    """Expire jobs created but never confirmed, delete the objects of expired and cancelled jobs (a cancelled one's
    once `url_ttl_seconds` have passed since the cancel, so that no upload URL outlives its job), clear emails past
    their retention and forget rate-limit rows older than the longest window in `rate_limit_windows` (seconds);
    safe to repeat or run concurrently. Ends with one summary line that is also the sweep's heartbeat metric.
    `seconds_left()` (the invocation's remaining time): no batch starts with less than SWEEP_RESERVE_SECONDS left;
    the next run deletes the rest (`stoppedEarly` in the summary)."""
    started = time.monotonic()
    if rate_limit_windows:
        uploads.forget_rate_limits(max(rate_limit_windows))
    expired = uploads.expire_abandoned(older_than_seconds)
    stopped = []

    def out_of_time() -> bool:
        if not stopped and seconds_left is not None and seconds_left() < SWEEP_RESERVE_SECONDS:
            stopped.append(True)
        return bool(stopped)

    deleted = 0
    while not out_of_time():
        pending = uploads.objects_to_delete(batch_size, url_ttl_seconds)
        if not pending:
            break
        for _, key in pending:
            storage.delete(key)
        uploads.mark_objects_deleted([upload_id for upload_id, _ in pending])
        deleted += len(pending)
    summary = {"expired": expired, "objectsDeleted": deleted}
    if result_retention_days is not None:
        summary["resultsDeleted"] = _delete_old_results(uploads, storage, result_retention_days, batch_size,
                                                        out_of_time)
    if stopped:
        summary["stoppedEarly"] = True
    if email_retention_days is not None:
        summary["emailsCleared"] = uploads.clear_old_emails(email_retention_days)
    log.info("sweep finished", extra={
        **summary, "seconds": round(time.monotonic() - started, 3),
        **metrics.emf(SweepHeartbeat=1, UploadsExpired=expired, ObjectsDeleted=deleted,
                      EmailsCleared=summary.get("emailsCleared", 0)),
    })
    return summary
