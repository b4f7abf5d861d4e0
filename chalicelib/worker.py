"""Use cases of processing: a confirmed job handed to the processing service, followed to its result.

The queue carries `(upload id, attempt)` and nothing else; each message asks for the job's next step, which this
module works out from the job's row. Every step is one conditional statement in the repository, scoped to the
attempt, so a duplicate message, a redelivery after a crash or two workers on one job change nothing twice: one
task at the provider, one set of events. No function waits for the provider: a task still running is looked at
again through a delayed message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from . import domain, processing
from .errors import BadProcessingOutput, ProcessingUnavailable, UploadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """How the worker paces itself (all from the settings)."""

    poll_seconds: int  # between two looks at a running task
    lease_seconds: float  # how long a claimed submission is left to the worker that claimed it
    input_url_seconds: int  # the life of the presigned GET the provider reads the photo through
    max_result_bytes: int  # the ceiling for any output's bytes


def process_job(upload_id: str, attempt: int, *, uploads, storage, processing_service, queue, analytics,
                timing: Timing) -> str:
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
                   analytics=analytics, timing=timing)


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
    if not uploads.record_submission(job.id, job.attempt, task_id):
        # Another worker recorded a task first (a lease that ran out under a slow submit): ours is surplus.
        _cancel_quietly(processing_service, task_id)
        return "surplus task cancelled"
    log.info("job submitted", extra={"attempt": job.attempt, "taskId": task_id})
    queue.send(job.id, job.attempt, delay_seconds=timing.poll_seconds)
    return "submitted"


def _follow(job, *, uploads, storage, processing_service, queue, analytics, timing: Timing) -> str:
    task_id = job.workflow_run_id
    # Half a poll interval: the chain's own next message always passes, a duplicate beside it does not.
    if not uploads.take_poll(job.id, job.attempt, task_id, timing.poll_seconds / 2):
        return "polled elsewhere"
    try:
        task = processing_service.get(task_id)
        preview_key = job.preview_key
        if task.preview_url and preview_key is None:
            preview_key = _copy_preview(job.id, task.preview_url, storage=storage,
                                        processing_service=processing_service, timing=timing)
        if task.state == processing.SUCCEEDED:
            return _complete(job, task, preview_key, uploads=uploads, storage=storage,
                             processing_service=processing_service, analytics=analytics, timing=timing)
    except BadProcessingOutput:
        return fail_job(job.id, job.attempt, "bad_output", uploads=uploads, analytics=analytics, task_id=task_id)
    except ProcessingUnavailable:
        queue.send(job.id, job.attempt, delay_seconds=timing.poll_seconds)
        return "poll deferred"
    if task.state in (processing.FAILED, processing.CANCELLED):
        reason = "provider_failed" if task.state == processing.FAILED else "provider_cancelled"
        log.warning("processing service ended the task", extra={"taskId": task_id, "taskState": task.state,
                                                                "providerError": task.error})
        return fail_job(job.id, job.attempt, reason, uploads=uploads, analytics=analytics, task_id=task_id)
    uploads.record_progress(job.id, job.attempt, task_id, task.progress, preview_key)
    queue.send(job.id, job.attempt, delay_seconds=timing.poll_seconds)
    return "running"


def _copy_preview(upload_id: str, url: str, *, storage, processing_service, timing: Timing) -> str:
    output = processing_service.download(url, timing.max_result_bytes)
    kind = domain.preview_type(output.data)
    if kind is None:
        log.warning("processing preview refused: not an image", extra={"claimedType": output.content_type})
        raise BadProcessingOutput()
    key = domain.result_key(upload_id, "preview." + domain.PREVIEW_TYPES[kind])
    storage.put(key, output.data, content_type=kind)
    return key


def _complete(job, task, preview_key, *, uploads, storage, processing_service, analytics, timing: Timing) -> str:
    if not task.model_url:
        log.warning("processing service succeeded without a model", extra={"taskId": task.id})
        raise BadProcessingOutput()
    output = processing_service.download(task.model_url, timing.max_result_bytes)
    if not domain.is_glb(output.data):
        log.warning("processing model refused: not a binary glTF 2.0", extra={"claimedType": output.content_type,
                                                                               "bytes": len(output.data)})
        raise BadProcessingOutput()
    key = domain.result_key(job.id, "model.glb")
    storage.put(key, output.data, content_type="model/gltf-binary")
    finished = uploads.complete(job.id, job.attempt, task.id, key, preview_key)
    if finished is None:
        return "completed elsewhere"
    analytics.capture("processing_completed", job.id, {"uploadId": job.id, "attempt": job.attempt,
                                                       "durationMs": _duration_ms(finished),
                                                       "modelBytes": len(output.data)})
    log.info("job completed", extra={"attempt": job.attempt, "durationMs": _duration_ms(finished)})
    return "completed"


def fail_job(upload_id: str, attempt: int, reason: str, *, uploads, analytics, task_id: str | None = None) -> str:
    """Mark the attempt failed with the words its person reads for `reason`, and report it, once."""
    finished = uploads.fail(upload_id, attempt, reason, domain.failure_message(reason), task_id)
    if finished is None:
        return "finished elsewhere"
    analytics.capture("processing_failed", upload_id, {"uploadId": upload_id, "attempt": attempt, "reason": reason,
                                                       "durationMs": _duration_ms(finished)})
    log.warning("job failed", extra={"attempt": attempt, "reason": reason})
    return "failed"


def dispatch_jobs(*, uploads, queue, processing_service, analytics, older_than_seconds: float,
                  deadline_seconds: float, batch_size: int = 100) -> dict:
    """Every minute: send again each confirmed job nobody took or looked at within the age (a lost send, a crashed
    worker, a broken polling chain), and fail each job processing for longer than the deadline."""
    sent = unsent = 0
    for upload_id, attempt in uploads.jobs_to_dispatch(older_than_seconds, batch_size):
        try:
            queue.send(upload_id, attempt)
            sent += 1
        except ProcessingUnavailable:
            unsent += 1  # dispatched_at moved on: the next run tries again
    timed_out = 0
    for upload_id, attempt, task_id in uploads.stuck_jobs(deadline_seconds, batch_size):
        if fail_job(upload_id, attempt, "timed_out", uploads=uploads, analytics=analytics,
                    task_id=task_id) == "failed":
            timed_out += 1
            if task_id and processing_service is not None:
                _cancel_quietly(processing_service, task_id)
    summary = {"redispatched": sent, "unsent": unsent, "timedOut": timed_out}
    log.info("dispatch finished", extra=summary)
    return summary


def _cancel_quietly(processing_service, task_id: str) -> None:
    try:
        processing_service.cancel(task_id)
    except UploadError as exc:
        log.warning("processing task not cancelled: %s", type(exc).__name__, extra={"taskId": task_id})


def _duration_ms(finished) -> int | None:
    if finished.started_at is None:
        return None
    return int((finished.finished_at - finished.started_at).total_seconds() * 1000)


