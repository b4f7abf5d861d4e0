"""Use cases of processing: a confirmed job handed to the processing service, followed to its result.

The queue carries `(upload id, attempt)` and nothing else; each message asks for the job's next step, which this
module works out from the job's row. Every step is one conditional statement in the repository, scoped to the
attempt, so a duplicate message, a redelivery after a crash or two workers on one job change nothing twice: one
task at the provider, one set of events. No function waits for the provider: a task still running is looked at
again through a delayed message.

A job that ends (completed, or failed for good) owes its person one email: the step that ended it asks for it
with a message of the second kind, `notify`, and `notify_job` sends it. Each try is taken by one conditional
statement, so duplicates send nothing twice; a try the mail service did not take is asked for again later by a
delayed message, up to a number of tries. No email's fate changes the job's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import domain, emails, processing
from .errors import BadProcessingOutput, EmailRejected, EmailUnavailable, ProcessingUnavailable, UploadError
from .queue import MAX_DELAY_SECONDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """How the worker paces itself (all from the settings)."""

    poll_seconds: int  # between two looks at a running task
    lease_seconds: float  # how long a claimed submission is left to the worker that claimed it
    input_url_seconds: int  # the life of the presigned GET the provider reads the photo through
    max_result_bytes: int  # the ceiling for any output's bytes
    output_hosts: tuple[str, ...] = ("replicate.delivery", "*.replicate.delivery")  # where outputs may be fetched


@dataclass(frozen=True)
class EmailPolicy:
    """How a finished job's email is sent (all from the settings)."""

    frontend_url: str  # the origin (and path) of the pages its link opens
    max_tries: int  # tries in all before the email is given up
    retry_seconds: int  # the wait after the first failed try, doubled after each later one (at most SQS's 900 s)
    lease_seconds: float  # how long a try is left to the worker that took it
    retention_days: int  # the view link opens the job as long as its results are kept


def process_job(upload_id: str, attempt: int, *, uploads, storage, processing_service, queue, analytics,
                timing: Timing, max_attempts: int) -> str:
    """Take the job's next step: submit it, or look at its task and record what it shows. Returns what was done
    (for the log). A step the provider cannot take now is asked for again later, never waited for."""
    job = uploads.get(upload_id)
    if job is None or job.attempt != attempt or job.confirmed_at is None or job.status not in (
            domain.PENDING, domain.PROCESSING):
        return "stale"  # cancelled, finished, retried since, or never ours: nothing to do
    if job.workflow_run_id is None:
        return _submit(job, uploads=uploads, storage=storage, processing_service=processing_service, queue=queue,
                       analytics=analytics, timing=timing)
    return _follow(job, uploads=uploads, storage=storage, processing_service=processing_service, queue=queue,
                   analytics=analytics, timing=timing, max_attempts=max_attempts)


def _submit(job, *, uploads, storage, processing_service, queue, analytics, timing: Timing) -> str:
    claim = uploads.claim_for_processing(job.id, job.attempt, timing.lease_seconds)
    if claim is None:
        return "claimed elsewhere"
    if claim.started:
        analytics.capture("processing_started", job.id, {"uploadId": job.id, "attempt": job.attempt})
    input_url = storage.presign_get(claim.key, expires_in=timing.input_url_seconds)
    try:
        task_id = processing_service.submit(input_url)
    except ProcessingUnavailable:
        # The claim's lease runs out before this message comes back, so the next delivery may submit.
        queue.send(job.id, job.attempt, delay_seconds=max(timing.poll_seconds, int(timing.lease_seconds) + 1))
        return "submit deferred"
    try:
        recorded = uploads.record_submission(job.id, job.attempt, task_id)
    except Exception:
        # The task exists and the database may not know it (an outage, a lost answer): unless the row names it,
        # cancel it, so that the next delivery's task is the only one.
        _cancel_unless_recorded(job, task_id, uploads=uploads, processing_service=processing_service)
        raise
    if not recorded:
        # Another worker recorded a task first (a lease that ran out under a slow submit): ours is surplus.
        _cancel_quietly(processing_service, task_id)
        return "surplus task cancelled"
    log.info("job submitted", extra={"attempt": job.attempt, "taskId": task_id})
    queue.send(job.id, job.attempt, delay_seconds=timing.poll_seconds)
    return "submitted"


def _follow(job, *, uploads, storage, processing_service, queue, analytics, timing: Timing, max_attempts: int) -> str:
    task_id = job.workflow_run_id
    # Half a poll interval: the chain's own next message always passes, a duplicate beside it does not.
    if not uploads.take_poll(job.id, job.attempt, task_id, timing.poll_seconds / 2):
        return "polled elsewhere"
    try:
        task = processing_service.get(task_id)
        preview_key = job.preview_key
        if task.preview_url and preview_key is None:
            preview_key = _copy_preview(job.id, job.attempt, task.preview_url, storage=storage,
                                        processing_service=processing_service, timing=timing)
        if task.state == processing.SUCCEEDED:
            return _complete(job, task, preview_key, uploads=uploads, storage=storage,
                             processing_service=processing_service, analytics=analytics, timing=timing, queue=queue)
    except BadProcessingOutput:
        return fail_job(job.id, job.attempt, "bad_output", uploads=uploads, analytics=analytics, task_id=task_id,
                        max_attempts=max_attempts, queue=queue)
    except ProcessingUnavailable:
        queue.send(job.id, job.attempt, delay_seconds=timing.poll_seconds)
        return "poll deferred"
    if task.state in (processing.FAILED, processing.CANCELLED):
        reason = "provider_failed" if task.state == processing.FAILED else "provider_cancelled"
        log.warning("processing service ended the task", extra={"taskId": task_id, "taskState": task.state,
                                                                "providerError": task.error})
        return fail_job(job.id, job.attempt, reason, uploads=uploads, analytics=analytics, task_id=task_id,
                        max_attempts=max_attempts, queue=queue)
    uploads.record_progress(job.id, job.attempt, task_id, task.progress, preview_key)
    queue.send(job.id, job.attempt, delay_seconds=timing.poll_seconds)
    return "running"


def _copy_preview(upload_id: str, attempt: int, url: str, *, storage, processing_service, timing: Timing) -> str:
    output = _download(url, processing_service, timing)
    kind = domain.preview_type(output.data)
    if kind is None:
        log.warning("processing preview refused: not an image", extra={"claimedType": output.content_type})
        raise BadProcessingOutput()
    key = domain.result_key(upload_id, attempt, "preview." + domain.PREVIEW_TYPES[kind])
    storage.put(key, output.data, content_type=kind)
    return key


def _complete(job, task, preview_key, *, uploads, storage, processing_service, analytics, timing: Timing,
              queue) -> str:
    if not task.model_url:
        log.warning("processing service succeeded without a model", extra={"taskId": task.id})
        raise BadProcessingOutput()
    output = _download(task.model_url, processing_service, timing)
    if not domain.is_glb(output.data):
        log.warning("processing model refused: not a binary glTF 2.0", extra={"claimedType": output.content_type,
                                                                               "bytes": len(output.data)})
        raise BadProcessingOutput()
    key = domain.result_key(job.id, job.attempt, "model.glb")
    storage.put(key, output.data, content_type="model/gltf-binary")
    finished = uploads.complete(job.id, job.attempt, job.workflow_run_id, key, preview_key)
    if finished is None:
        return "completed elsewhere"
    analytics.capture("processing_completed", job.id, {"uploadId": job.id, "attempt": job.attempt,
                                                       "durationMs": _duration_ms(finished),
                                                       "modelBytes": len(output.data)})
    log.info("job completed", extra={"attempt": job.attempt, "durationMs": _duration_ms(finished)})
    _ask_for_email(job.id, job.attempt, queue=queue)
    return "completed"


def _download(url: str, processing_service, timing: Timing):
    if not domain.allowed_output_host(url, timing.output_hosts):
        log.warning("processing output refused: not on an allowed host", extra={"outputHost": url.split("/")[2:3]})
        raise BadProcessingOutput()
    return processing_service.download(url, timing.max_result_bytes)


def fail_job(upload_id: str, attempt: int, reason: str, *, uploads, analytics, max_attempts: int,
             task_id: str | None = None, queue=None) -> str:
    """Mark the attempt failed with the words its person reads for `reason`, and report it, once; a failure for
    good (no retry left, or none would help) also owes its person the email that says so."""
    for_good = domain.failed_for_good(reason, attempt, max_attempts)
    finished = uploads.fail(upload_id, attempt, reason, domain.failure_message(reason), task_id, for_good)
    if finished is None:
        return "finished elsewhere"
    analytics.capture("processing_failed", upload_id, {"uploadId": upload_id, "attempt": attempt, "reason": reason,
                                                       "durationMs": _duration_ms(finished)})
    log.warning("job failed", extra={"attempt": attempt, "reason": reason, "forGood": for_good})
    if for_good:
        _ask_for_email(upload_id, attempt, queue=queue)
    return "failed"


def _ask_for_email(upload_id: str, attempt: int, *, queue) -> None:
    """The email goes from its own message (a slow mail service holds no processing step); a lost send is found by
    the dispatcher, which offers every email owed and untried."""
    if queue is None:
        return
    try:
        queue.send(upload_id, attempt, notify=True)
    except ProcessingUnavailable:
        log.warning("email request deferred to the dispatcher")


def notify_job(upload_id: str, attempt: int, *, uploads, mailer, queue, analytics, policy: EmailPolicy) -> str:
    """Try once to send the email the job's end owes its person, if this call takes the try (one conditional
    statement). A completed job's email carries a fresh read-only view credential, stored as its digest only.
    A try the mail service did not take is asked for again after a growing wait; after `policy.max_tries` tries,
    or a refusal no later try changes, the email is given up and logged. The job is never touched."""
    if mailer is None:
        return "email off"
    view_token = domain.mint_view_token()
    claim = uploads.claim_email(upload_id, attempt, domain.hash_token(view_token), lease_seconds=policy.lease_seconds,
                                max_tries=policy.max_tries, retention_days=policy.retention_days)
    if claim is None:
        return "no email to send"  # sent, given up, never owed, cleared by retention, or another try holds it
    if claim.status == domain.COMPLETED:
        message = emails.completed_email(to=claim.email, job_id=upload_id, view_token=view_token,
                                         frontend_url=policy.frontend_url, expires_at=claim.view_expires_at)
    else:
        message = emails.failed_email(to=claim.email, error_message=claim.error_message,
                                      frontend_url=policy.frontend_url)
    try:
        mailer.send(message)
    except EmailRejected:
        uploads.give_up_email(upload_id, attempt)
        log.error("email given up: refused by the mail service", extra={"attempt": attempt, "tries": claim.tries})
        return "email given up"
    except EmailUnavailable:
        if claim.tries >= policy.max_tries:
            uploads.give_up_email(upload_id, attempt)
            log.error("email given up after %d tries", claim.tries, extra={"attempt": attempt, "tries": claim.tries})
            return "email given up"
        delay = min(MAX_DELAY_SECONDS, policy.retry_seconds * 2 ** (claim.tries - 1))
        uploads.defer_email(upload_id, attempt, delay)
        try:
            queue.send(upload_id, attempt, delay_seconds=delay, notify=True)
        except ProcessingUnavailable:
            pass  # the dispatcher offers it once the wait is over
        log.warning("email not sent; tried again in %d s", delay, extra={"attempt": attempt, "tries": claim.tries})
        return "email deferred"
    uploads.mark_email_sent(upload_id, attempt)
    analytics.capture("email_sent", upload_id, {"uploadId": upload_id, "attempt": attempt, "kind": claim.status,
                                                "tries": claim.tries})
    log.info("email sent", extra={"attempt": attempt, "kind": claim.status, "tries": claim.tries})
    return "email sent"


def dispatch_jobs(*, uploads, queue, processing_service, analytics, older_than_seconds: float,
                  deadline_seconds: float, max_attempts: int, email_max_tries: int | None = None,
                  batch_size: int = 100) -> dict:
    """Every minute: send again each confirmed job nobody took or looked at within the age (a lost send, a crashed
    worker, a broken polling chain), fail each job processing for longer than the deadline, and (with
    `email_max_tries`, where email is on) ask again for each email owed that no try took within the age."""
    sent = unsent = 0
    for upload_id, attempt in uploads.jobs_to_dispatch(older_than_seconds, batch_size):
        try:
            queue.send(upload_id, attempt)
            sent += 1
        except ProcessingUnavailable:
            unsent += 1  # dispatched_at moved on: the next run tries again
    timed_out = 0
    for upload_id, attempt, task_id in uploads.stuck_jobs(deadline_seconds, batch_size):
        if fail_job(upload_id, attempt, "timed_out", uploads=uploads, analytics=analytics, task_id=task_id,
                    max_attempts=max_attempts, queue=queue) == "failed":
            timed_out += 1
            if task_id and processing_service is not None:
                _cancel_quietly(processing_service, task_id)
    emails_offered = 0
    if email_max_tries is not None:
        for upload_id, attempt in uploads.emails_to_offer(older_than_seconds, email_max_tries, batch_size):
            try:
                queue.send(upload_id, attempt, notify=True)
                emails_offered += 1
            except ProcessingUnavailable:
                unsent += 1  # still owed: the next run offers it again
    summary = {"redispatched": sent, "unsent": unsent, "timedOut": timed_out, "emailsOffered": emails_offered}
    log.info("dispatch finished", extra=summary)
    return summary


def _cancel_unless_recorded(job, task_id: str, *, uploads, processing_service) -> None:
    try:
        current = uploads.get(job.id)
    except Exception:
        current = None  # still unreachable: a task nobody can find is worse than one cancelled for nothing
    if current is None or current.workflow_run_id != task_id:
        _cancel_quietly(processing_service, task_id)


def _cancel_quietly(processing_service, task_id: str) -> None:
    try:
        processing_service.cancel(task_id)
    except UploadError as exc:
        log.warning("processing task not cancelled: %s", type(exc).__name__, extra={"taskId": task_id})


def _duration_ms(finished) -> int | None:
    if finished.started_at is None:
        return None
    return int((finished.finished_at - finished.started_at).total_seconds() * 1000)


