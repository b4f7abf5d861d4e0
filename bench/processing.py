"""`make bench`'s measures of the hand-off: the confirm's queue round trips, the journey from a confirm to
`processing` and to `completed` (the reference processing service answering at once), and the worker's own time
per job beside the time its calls to the database, storage, queue and processing service take."""

from __future__ import annotations

import statistics
import time
import uuid

from bench.delay_proxy import DelayProxy

JOBS = 20


class Timed:
    """A dependency whose every method call adds its duration to `spent` (the bare calls' sum)."""

    def __init__(self, target, spent: list):
        self._target, self._spent = target, spent

    def __getattr__(self, name):
        attribute = getattr(self._target, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._spent.append(time.perf_counter() - started)

        return call


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def uploaded_photo(driver) -> dict:
    """A job whose photo the processing service can read (a real JPEG)."""
    import io
    import json

    from PIL import Image

    import urllib.request

    from bench.run import event

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 80, 40)).save(out, "JPEG")
    photo = out.getvalue()
    status, created = driver.call(event("POST", "/api/upload", body=json.dumps(
        {"email": "bench@example.com", "fileType": "image/jpeg", "fileSize": len(photo)})))
    assert status == 201, created
    request = urllib.request.Request(created["uploadUrl"], data=photo, method="PUT",
                                     headers={"Content-Type": "image/jpeg"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    return created


def queue_round_trips(driver_for, stack, delay: float, n: int = 15) -> list:
    """The confirm's queue calls, through a proxy that delays each way by `delay` (other routes: none)."""
    from chalicelib.queue import JobQueue

    proxy = DelayProxy(stack.sqs.port, delay).start()
    try:
        medians = {}
        for name, port in (("direct", stack.sqs.port), ("sqs", proxy.port)):
            import boto3
            from botocore.config import Config

            driver = driver_for()
            client = boto3.client("sqs", endpoint_url=f"http://127.0.0.1:{port}", config=Config(
                connect_timeout=5, read_timeout=5, retries={"max_attempts": 1, "mode": "standard"}))
            driver.deps.__dict__["queue"] = JobQueue(client, stack.env["JOBS_QUEUE_URL"])
            for _ in range(3):
                driver.confirm(driver.uploaded())
            times = []
            for _ in range(n):
                created = driver.uploaded()
                started = time.perf_counter()
                status, body = driver.confirm(created)
                times.append(time.perf_counter() - started)
                assert status == 200, body
            medians[name] = statistics.median(times)
            driver.deps.database.close()
    finally:
        proxy.stop()
    return [("queue round trips: confirm", round((medians["sqs"] - medians["direct"]) / (2 * delay), 2), 1)]


def journey(driver, stack, app_module, settings) -> list:
    """20 jobs, one after another: confirm, then the worker fed as Lambda feeds it, until completed."""
    from devstack.worker import EventSourceMapping

    name = f"bench-{uuid.uuid4().hex[:8]}"
    queues = stack.sqs.create_job_queues(name, visibility_timeout=30)
    spent: list = []
    deps = driver.deps
    from chalicelib.queue import JobQueue, sqs_client

    deps.__dict__["queue"] = Timed(JobQueue(sqs_client(timeout=5), queues[name]), spent)
    for dependency in ("uploads", "storage", "processing"):
        deps.__dict__[dependency] = Timed(getattr(deps, dependency), spent)
    app_module.deps = deps
    handler_spent: list = []

    def timed_handler(event, context):
        started = time.perf_counter()
        try:
            return app_module.process_job(event, context)
        finally:
            handler_spent.append(time.perf_counter() - started)

    mapping = EventSourceMapping(stack.sqs.client(), queues[name], timed_handler, "process-job")
    stack.processing.control.set(delay=0)
    to_processing, to_completed, handler_time, calls_time = [], [], [], []
    try:
        for _ in range(JOBS):
            created = uploaded_photo(driver)
            confirmed_at = time.perf_counter()
            assert driver.confirm(created)[0] == 200
            seen_processing = None
            job_handler = job_calls = 0.0
            while True:
                spent.clear()
                handler_spent.clear()
                mapping.poll_once(wait_seconds=5)
                job_handler += sum(handler_spent)
                job_calls += sum(spent)
                status = driver.status(created)[1]["status"]
                now = time.perf_counter()
                if status in ("processing", "completed") and seen_processing is None:
                    seen_processing = now - confirmed_at
                if status == "completed":
                    break
                assert status in ("pending", "processing"), status
            to_processing.append(seen_processing)
            to_completed.append(now - confirmed_at)
            handler_time.append(job_handler)
            calls_time.append(job_calls)
    finally:
        stack.processing.control.reset()
    # The floor of the journey: the worker's bare calls plus the delays of the polling messages, which are what
    # the processing service's progress is pulled by (PROCESSING_POLL_SECONDS each), at least one per job.
    poll = settings.processing_poll_seconds
    rows = []
    for label, values in (("confirm to processing visible", to_processing), ("confirm to completed", to_completed)):
        rows.append((f"{label} p50 (s)", round(percentile(values, 0.5), 3), None))
        rows.append((f"{label} p99 (s)", round(percentile(values, 0.99), 3), None))
    rows.append(("confirm to completed p50 beside its bare calls + one poll delay (s)",
                 round(percentile(to_completed, 0.5), 3), round(statistics.median(calls_time) + poll, 3)))
    rows.append(("worker ms per job (its handlers, beside their calls)", round(statistics.median(handler_time) * 1000, 1),
                 round(statistics.median(calls_time) * 1000, 1)))
    return rows
