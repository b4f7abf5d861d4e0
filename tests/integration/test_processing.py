"""The hand-off to processing on real parts: PostgreSQL (also through PgBouncer), SQS over HTTP (moto's server, with
its delays, visibility timeouts and redrive), SeaweedFS and the reference processing service speaking Replicate's
HTTP API. The worker is driven through the very handlers Lambda calls, fed as Lambda's event source mapping feeds
them (devstack/worker.py), one message per invocation; each test has a queue pair of its own."""

import json
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from chalice.test import Client

import app as app_module
from chalicelib import worker
from chalicelib.config import Settings
from chalicelib.deps import Dependencies
from devstack.worker import EventSourceMapping, lambda_event
from tests.helpers import ApiClient, http, put_object
from tests.images import pillow_bytes
from tests.stack_fixtures import pooler_for

PROJECT_DIR = Path(__file__).resolve().parents[2]
PHOTO = pillow_bytes("JPEG", 96, 64)
FRIENDLY = {
    "bad_output": "We couldn't turn this photo into a 3D model. Try again, or upload another photo.",
    "provider_failed": "We couldn't turn this photo into a 3D model. Try again, or upload another photo.",
    "timed_out": "Processing took too long and was stopped. Try again.",
    "undeliverable": "We couldn't process this photo because of a problem on our side. Try again in a few minutes.",
}


class Recorder:
    """Analytics that keeps what it was given."""

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    def capture(self, event, upload_id, properties):
        with self._lock:
            self.events.append((event, upload_id, properties))

    def flush(self):
        pass

    def names(self, upload_id):
        return [event for event, job, _ in self.events if job == upload_id]


class Journey:
    """One test's API, queue pair, worker and processing service."""

    def __init__(self, api, deps, client, queues, name, control):
        self.api, self.deps, self.client, self.control = api, deps, client, control
        self.queue_url, self.dead_url = queues[name], queues[name + "-dead"]
        self.worker = EventSourceMapping(client, self.queue_url, app_module.process_job, "process-job")
        self.dead = EventSourceMapping(client, self.dead_url, app_module.fail_undeliverable, "fail-undeliverable")
        self.analytics = deps.analytics

    def upload(self, photo=PHOTO, file_type="image/jpeg"):
        created = self.api.create(file_type=file_type, file_size=len(photo)).body
        assert put_object(created["uploadUrl"], photo, file_type)[0] == 200
        confirmed = self.api.confirm(created["uploadId"], created["sessionToken"])
        assert confirmed.status == 200, confirmed.body
        return created["uploadId"], created["sessionToken"]

    def status(self, upload_id, token):
        return self.api.status(upload_id, token).body

    def run_until(self, upload_id, token, statuses, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.status(upload_id, token)
            if body.get("status") in statuses:
                return body
            self.worker.poll_once(wait_seconds=1)
        raise AssertionError(f"job never reached {statuses}: {self.status(upload_id, token)}")

    def drain(self, seconds=3):
        """Give every message still in flight (delayed polls included) to the worker."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.worker.poll_once(wait_seconds=1)

    def empty(self):
        """Take every message off the queue without handing it to the worker (SQS allows one purge a minute)."""
        while True:
            messages = self.client.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return
            for message in messages:
                self.client.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def send(self, upload_id, attempt=1):
        self.client.send_message(QueueUrl=self.queue_url,
                                 MessageBody=json.dumps({"uploadId": upload_id, "attempt": attempt}))

    def tasks_for(self, upload_id):
        return self.control.stats()["by_image_path"].get(f"/uploads/uploads/{upload_id}/original.jpg", 0)


@pytest.fixture(params=["direct"])
def route(request):
    return request.param


@pytest.fixture
def journey(request, route, local_stack, live_deps, monkeypatch):
    name = f"jobs-{uuid.uuid4().hex[:10]}"
    # A short visibility timeout: a failed invocation's message comes back (and reaches the dead letters) in seconds.
    queues = local_stack.sqs.create_job_queues(name, visibility_timeout=1)
    settings = replace(live_deps.settings, jobs_queue_url=queues[name], jobs_queue_name=name,
                       dispatch_after_seconds=1)
    with pooler_for(local_stack, pool_size=2) if route == "through PgBouncer" else _nothing() as bouncer:
        if bouncer is not None:
            settings = replace(settings, database_url=bouncer.url())
        deps = Dependencies(settings)
        deps.__dict__["storage"] = live_deps.storage
        deps.__dict__["analytics"] = Recorder()
        if bouncer is None:
            deps.__dict__["database"] = live_deps.database
        monkeypatch.setattr(app_module, "deps", deps)
        # A claimed submission is left to its worker for a second here (a minute in production).
        monkeypatch.setattr(app_module, "worker_timing", lambda: replace(_timing(settings), lease_seconds=1))
        control = local_stack.processing.control
        control.reset()
        try:
            yield Journey(ApiClient(Client(app_module.app).http), deps, local_stack.sqs.client(), queues, name,
                          control)
        finally:
            control.reset()
            if bouncer is not None:
                deps.database.close()


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _timing(settings):
    return worker.Timing(poll_seconds=settings.processing_poll_seconds, lease_seconds=60, input_url_seconds=600,
                         max_result_bytes=settings.max_result_bytes, output_hosts=settings.processing_output_hosts)


def assert_one_task_and_one_set_of_events(journey, upload_id):
    assert journey.tasks_for(upload_id) == 1
    assert journey.analytics.names(upload_id).count("processing_started") == 1
    assert journey.analytics.names(upload_id).count("processing_completed") == 1


def validate_glb(data, tmp_path):
    path = tmp_path / "model.glb"
    path.write_bytes(data)
    report = subprocess.run(["node", str(PROJECT_DIR / "tests" / "js" / "validate_gltf.mjs"), str(path)],
                            capture_output=True, text=True, timeout=60, cwd=PROJECT_DIR)
    assert report.returncode == 0, report.stderr
    return json.loads(report.stdout)["issues"]


@pytest.mark.parametrize("route", ["direct", "through PgBouncer"], indirect=True)
def test_a_confirmed_photo_reaches_completed_with_a_glb_the_validator_accepts_and_a_preview(journey, tmp_path):
    upload_id, token = journey.upload()

    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body = journey.status(upload_id, token)
        seen.append((body["status"], body["progress"]))
        if body["status"] == "completed":
            break
        journey.worker.poll_once(wait_seconds=1)

    assert body["status"] == "completed" and body["progress"] == 100 and body["errorMessage"] is None
    assert ("processing", 0) in seen or any(status == "processing" for status, _ in seen)
    model_status, model = http("GET", body["resultUrl"])
    preview_status, preview = http("GET", body["previewUrl"])
    assert (model_status, model[:4], int.from_bytes(model[4:8], "little")) == (200, b"glTF", 2)
    assert validate_glb(model, tmp_path)["numErrors"] == 0
    assert (preview_status, preview[:3]) == (200, b"\xff\xd8\xff")
    assert journey.analytics.names(upload_id)[-2:] == ["processing_started", "processing_completed"]
    completed = [props for event, _, props in journey.analytics.events if event == "processing_completed"]
    assert completed[0]["durationMs"] >= 0 and completed[0]["attempt"] == 1
    assert journey.tasks_for(upload_id) == 1


def test_before_processing_starts_the_status_has_no_progress_and_no_links(journey):
    upload_id, token = journey.upload()

    body = journey.status(upload_id, token)

    assert (body["status"], body["progress"], body["previewUrl"], body["resultUrl"], body["attempt"]) == (
        "pending", None, None, None, 1)


@pytest.mark.parametrize("route", ["direct", "through PgBouncer"], indirect=True)
def test_the_same_message_delivered_three_times_in_sequence_makes_one_task_and_one_set_of_events(journey):
    upload_id, token = journey.upload()
    for _ in range(3):
        journey.send(upload_id)

    journey.run_until(upload_id, token, {"completed"})
    journey.drain()

    assert_one_task_and_one_set_of_events(journey, upload_id)


@pytest.mark.parametrize("route", ["direct", "through PgBouncer"], indirect=True)
def test_the_same_message_handled_by_three_workers_at_once_makes_one_task_and_one_set_of_events(journey):
    upload_id, token = journey.upload()
    journey.empty()
    message = {"MessageId": "m1", "ReceiptHandle": "r1", "Body": json.dumps({"uploadId": upload_id, "attempt": 1})}
    event = lambda_event(message, "arn:aws:sqs:eu-central-1:123456789012:jobs")
    barrier = threading.Barrier(3)

    def deliver(_):
        barrier.wait()
        app_module.process_job(event, None)

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(deliver, range(3)))
    journey.run_until(upload_id, token, {"completed"})
    journey.drain()

    assert_one_task_and_one_set_of_events(journey, upload_id)


@pytest.mark.parametrize("route", ["direct", "through PgBouncer"], indirect=True)
def test_a_worker_that_died_after_its_claim_and_before_the_submit_is_replaced_by_the_next_delivery(journey):
    upload_id, token = journey.upload()
    journey.empty()
    # What the dead worker did: the claim, and nothing more.
    assert journey.deps.uploads.claim_for_processing(upload_id, 1, 60).started is True
    time.sleep(1.2)  # its lease (1 s here) runs out
    journey.send(upload_id)

    body = journey.run_until(upload_id, token, {"completed"})

    assert body["progress"] == 100
    assert journey.tasks_for(upload_id) == 1


def test_a_worker_that_died_after_the_submit_leaves_a_job_the_dispatcher_finishes_with_no_second_task(
        journey, monkeypatch):
    upload_id, token = journey.upload()
    journey.empty()
    journey.send(upload_id)
    real_send = journey.deps.queue.send

    def crash(*args, **kwargs):
        raise SystemExit("killed after the submit")

    monkeypatch.setattr(journey.deps.queue, "send", crash)
    with pytest.raises(SystemExit):
        journey.worker.poll_once(wait_seconds=2)
    monkeypatch.setattr(journey.deps.queue, "send", real_send)
    journey.empty()  # the crashed invocation's message is lost as well
    assert journey.status(upload_id, token)["status"] == "processing"
    time.sleep(1.2)  # older than DISPATCH_AFTER_SECONDS (1 s here)

    summary = app_module.dispatch_jobs({}, None)
    body = journey.run_until(upload_id, token, {"completed"})

    assert summary["redispatched"] >= 1  # other tests' jobs may be in flight too
    assert body["progress"] == 100
    assert journey.tasks_for(upload_id) == 1


def test_a_confirm_whose_send_fails_is_answered_and_the_dispatcher_sends_the_job(journey, monkeypatch):
    from chalicelib.errors import ProcessingUnavailable

    def refused(*args, **kwargs):
        raise ProcessingUnavailable()

    monkeypatch.setattr(journey.deps.queue, "send", refused)
    upload_id, token = journey.upload()
    monkeypatch.undo()
    monkeypatch.setattr(app_module, "deps", journey.deps)
    monkeypatch.setattr(app_module, "worker_timing", lambda: replace(_timing(journey.deps.settings), lease_seconds=1))
    assert journey.client.get_queue_attributes(QueueUrl=journey.queue_url, AttributeNames=[
        "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] == "0"
    time.sleep(1.2)

    assert app_module.dispatch_jobs({}, None)["redispatched"] >= 1
    assert journey.run_until(upload_id, token, {"completed"})["progress"] == 100


@pytest.mark.parametrize("fault", ["http_500", "http_429"])
def test_a_processing_service_answering_fault_then_recovering_is_retried_with_backoff(journey, fault):
    upload_id, token = journey.upload()
    journey.control.set(mode=fault, count=2, retry_after=1)

    body = journey.run_until(upload_id, token, {"completed"})

    assert body["progress"] == 100
    assert journey.tasks_for(upload_id) == 1


def test_a_processing_service_that_hangs_on_a_poll_is_timed_out_and_asked_again(journey):
    upload_id, token = journey.upload()
    journey.run_until(upload_id, token, {"processing"})
    journey.control.set(mode="hang", count=1, seconds=7)  # longer than PROCESSING_TIMEOUT_SECONDS (5 s here)

    body = journey.run_until(upload_id, token, {"completed"}, timeout=60)

    assert body["progress"] == 100
    assert journey.tasks_for(upload_id) == 1


@pytest.mark.parametrize("mode", ["garbage_model", "huge_model", "garbage_preview"])
@pytest.mark.parametrize("route", ["direct", "through PgBouncer"], indirect=True)
def test_an_output_that_is_not_what_it_claims_fails_the_job_with_a_friendly_message(journey, mode):
    journey.control.set(mode=mode)
    upload_id, token = journey.upload()

    started = time.monotonic()
    body = journey.run_until(upload_id, token, {"failed"}, timeout=60)

    assert (body["errorMessage"], body["resultUrl"]) == (FRIENDLY["bad_output"], None)
    assert time.monotonic() - started < 30, "a 2 GB claim must be refused, not downloaded"
    failed = [props for event, _, props in journey.analytics.events if event == "processing_failed"]
    assert [props["reason"] for props in failed] == ["bad_output"]


def test_a_provider_side_failure_fails_the_job_and_its_own_text_stays_in_the_log(journey, caplog):
    journey.control.set(mode="fail")
    upload_id, token = journey.upload()

    body = journey.run_until(upload_id, token, {"failed"})

    assert body["errorMessage"] == FRIENDLY["provider_failed"]
    assert "CUDA" not in json.dumps(body)
    assert any("CUDA error" in str(getattr(record, "providerError", "")) for record in caplog.records)


def test_a_message_that_fails_five_receives_reaches_the_dead_letters_and_fails_its_job(journey, monkeypatch):
    upload_id, token = journey.upload()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the worker")

    monkeypatch.setattr(worker, "process_job", broken)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not journey.dead.poll_once(wait_seconds=1):
        journey.worker.poll_once(wait_seconds=1)
    body = journey.status(upload_id, token)

    assert (body["status"], body["errorMessage"]) == ("failed", FRIENDLY["undeliverable"])
    assert journey.analytics.names(upload_id)[-1] == "processing_failed"


def test_a_job_processing_past_the_deadline_is_failed_by_the_dispatcher_and_its_task_cancelled(journey, db,
                                                                                                monkeypatch):
    journey.control.set(delay=5)
    upload_id, token = journey.upload()
    journey.run_until(upload_id, token, {"processing"})
    journey.worker.poll_once(wait_seconds=1)
    db.run("UPDATE uploads SET processing_started_at = now() - interval '2 hours' WHERE id = :id", id=upload_id)
    task = db.run("SELECT workflow_run_id FROM uploads WHERE id = :id", id=upload_id)[0][0]

    summary = app_module.dispatch_jobs({}, None)
    body = journey.status(upload_id, token)

    assert summary["timedOut"] == 1
    assert (body["status"], body["errorMessage"]) == ("failed", FRIENDLY["timed_out"])
    if task is not None:
        assert journey.deps.processing.get(task).state == "cancelled"


@pytest.mark.parametrize("route", ["direct", "through PgBouncer"], indirect=True)
def test_a_failed_job_is_retried_by_its_owner_to_completed_and_old_messages_change_nothing(journey):
    journey.control.set(mode="fail")
    upload_id, token = journey.upload()
    journey.run_until(upload_id, token, {"failed"})
    journey.control.set(mode="ok")

    retried = journey.api.request("POST", f"/api/upload/{upload_id}/retry", headers={"x-session-token": token})
    journey.send(upload_id, attempt=1)  # a late message of the first attempt
    body = journey.run_until(upload_id, token, {"completed"})

    assert (retried.status, retried.body) == (202, {"jobId": upload_id, "status": "pending", "attempt": 2})
    assert (body["attempt"], body["errorMessage"], body["progress"]) == (2, None, 100)
    assert journey.tasks_for(upload_id) == 2  # one per attempt


def test_a_retry_of_a_job_that_has_not_failed_is_409_job_not_retryable(journey):
    upload_id, token = journey.upload()

    refused = journey.api.request("POST", f"/api/upload/{upload_id}/retry", headers={"x-session-token": token})

    assert (refused.status, refused.body) == (409, {"error": {
        "code": "JOB_NOT_RETRYABLE", "message": "Only a job whose processing failed can be retried."}})


def test_a_failed_job_tried_as_often_as_allowed_is_409_retry_limit_reached(journey, monkeypatch):
    monkeypatch.setattr(journey.deps, "settings", replace(journey.deps.settings, processing_max_attempts=1))
    journey.control.set(mode="fail")
    upload_id, token = journey.upload()
    journey.run_until(upload_id, token, {"failed"})

    refused = journey.api.request("POST", f"/api/upload/{upload_id}/retry", headers={"x-session-token": token})

    assert (refused.status, refused.body) == (409, {"error": {
        "code": "RETRY_LIMIT_REACHED", "message": "This photo was tried 1 times; upload it again to start over."}})


def test_a_double_click_on_retry_starts_one_new_attempt(journey):
    journey.control.set(mode="fail")
    upload_id, token = journey.upload()
    journey.run_until(upload_id, token, {"failed"})
    journey.control.set(mode="ok")

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda _: journey.api.request("POST", f"/api/upload/{upload_id}/retry",
                                                               headers={"x-session-token": token}), range(2)))
    body = journey.run_until(upload_id, token, {"completed"})

    assert sorted(answer.status for answer in answers)[0] == 202
    assert all(answer.status in (202, 409) for answer in answers)
    assert body["attempt"] == 2


def test_racing_cancel_and_confirm_give_either_a_cancelled_job_with_no_task_or_one_processed_once(journey):
    jobs = []
    for _ in range(8):
        created = journey.api.create(file_type="image/jpeg", file_size=len(PHOTO)).body
        assert put_object(created["uploadUrl"], PHOTO, "image/jpeg")[0] == 200
        with ThreadPoolExecutor(max_workers=2) as pool:
            confirm = pool.submit(journey.api.confirm, created["uploadId"], created["sessionToken"])
            cancel = pool.submit(journey.api.cancel, created["uploadId"], created["sessionToken"])
            outcome = (confirm.result().status, cancel.result().status)
        jobs.append((created["uploadId"], created["sessionToken"], outcome))
    journey.drain(seconds=8)

    for upload_id, token, (confirmed, cancelled) in jobs:
        assert (confirmed == 200) != (cancelled == 204), (confirmed, cancelled)
        if confirmed == 200:
            assert journey.run_until(upload_id, token, {"completed"})["progress"] == 100
            assert journey.tasks_for(upload_id) == 1
        else:
            assert journey.status(upload_id, token)["error"]["code"] == "UPLOAD_CANCELLED"
            assert journey.tasks_for(upload_id) == 0


def test_a_lost_answer_to_the_completion_applies_it_once_and_the_redelivery_changes_nothing(
        journey, local_stack, monkeypatch):
    from tests.fault_proxy import FaultProxy

    proxy = FaultProxy(local_stack.postgres.port)
    try:
        url = journey.deps.settings.database_url.replace(f":{local_stack.postgres.port}/", f":{proxy.port}/")
        deps = Dependencies(replace(journey.deps.settings, database_url=url, db_timeout_seconds=1.0))
        deps.__dict__["storage"] = journey.deps.storage
        deps.__dict__["analytics"] = journey.analytics
        monkeypatch.setattr(app_module, "deps", deps)
        upload_id, token = journey.upload()
        proxy.arm(b"SET status = (E'completed')", "cut")

        body = journey.run_until(upload_id, token, {"completed"})
        journey.drain()

        assert proxy.sent(b"SET status = (E'completed')") == 1
        assert body["progress"] == 100
        assert journey.analytics.names(upload_id).count("processing_completed") <= 1
        assert journey.tasks_for(upload_id) == 1
    finally:
        proxy.close()
        if "database" in deps.__dict__:
            deps.database.close()


def test_results_past_their_retention_are_deleted_by_the_sweep_and_the_status_says_so(journey, db):
    upload_id, token = journey.upload()
    done = journey.run_until(upload_id, token, {"completed"})
    db.run("UPDATE uploads SET updated_at = now() - interval '40 days' WHERE id = :id", id=upload_id)

    summary = app_module.expire_abandoned({}, None)
    body = journey.status(upload_id, token)

    assert summary["resultsDeleted"] >= 1
    assert (body["status"], body["previewUrl"], body["resultUrl"]) == ("completed", None, None)
    assert body["resultsDeletedAt"] is not None
    assert http("GET", done["resultUrl"])[0] == 404


def test_settings_of_the_local_stack_name_a_processing_service_and_its_queue(stack_env):
    settings = Settings.from_env(stack_env)

    assert settings.processing_configured and settings.jobs_queue_url.startswith("http://127.0.0.1:")
