"""The worker's use cases on fakes (no I/O): which step a message leads to, what each step records and reports,
and the processing service's answers read by the Replicate adapter."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib import domain, processing, worker
from chalicelib.errors import BadProcessingOutput, ProcessingUnavailable
from chalicelib.processing import Output, Task
from chalicelib.processing.replicate import Replicate, _outputs, _progress
from chalicelib.queue import parse_message
from chalicelib.repository import Claim, Finished, UploadRecord
from tests.unit.fakes import FakeAnalytics, FakeQueue

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=timezone.utc)
TIMING = worker.Timing(poll_seconds=5, lease_seconds=60, input_url_seconds=600, max_result_bytes=1000,
                       output_hosts=("out",))
GLB = b"glTF" + (2).to_bytes(4, "little") + (24).to_bytes(4, "little") + b"\0" * 12
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 40


def job(status="pending", task=None, attempt=1, preview=None):
    return UploadRecord(id="job1", token_hash="h", key="uploads/job1/original.jpg", file_type="image/jpeg",
                        file_size=10, status=status, created_at=NOW, confirmed_at=NOW, attempt=attempt,
                        workflow_run_id=task, preview_key=preview)


class Jobs:
    """The statements the worker sends, answered as the table would: each returns whether it won."""

    def __init__(self, record, *, claim=True, submitted=True, polled=True, completes=True, fails=True):
        self.record, self.calls = record, []
        self._claim, self._submitted, self._polled = claim, submitted, polled
        self._completes, self._fails = completes, fails

    def get(self, upload_id):
        return self.record

    def claim_for_processing(self, upload_id, attempt, lease_seconds):
        self.calls.append(("claim", attempt, lease_seconds))
        return Claim(self.record.key, self.record.file_type, True) if self._claim else None

    def record_submission(self, upload_id, attempt, task_id):
        self.calls.append(("submission", attempt, task_id))
        return self._submitted

    def take_poll(self, upload_id, attempt, task_id, gap):
        self.calls.append(("poll", attempt, task_id, gap))
        return self._polled

    def record_progress(self, upload_id, attempt, task_id, progress, preview_key):
        self.calls.append(("progress", progress, preview_key))

    def complete(self, upload_id, attempt, task_id, result_key, preview_key):
        self.calls.append(("complete", result_key, preview_key))
        return Finished(NOW, NOW + timedelta(seconds=42)) if self._completes else None

    def fail(self, upload_id, attempt, reason, message, task_id=None, for_good=False):
        self.calls.append(("fail", reason, message, for_good))
        return Finished(NOW, NOW + timedelta(seconds=3)) if self._fails else None


class Provider:
    def __init__(self, task=None, files=None, submit_error=None, get_error=None):
        self.task, self.files = task, files or {}
        self.submit_error, self.get_error = submit_error, get_error
        self.submitted, self.cancelled = [], []

    def submit(self, input_url):
        if self.submit_error:
            raise self.submit_error
        self.submitted.append(input_url)
        return "task1"

    def get(self, task_id):
        if self.get_error:
            raise self.get_error
        return self.task

    def cancel(self, task_id):
        self.cancelled.append(task_id)

    def download(self, url, max_bytes):
        data = self.files[url]
        if isinstance(data, Exception):
            raise data
        return Output(data, "application/octet-stream")


class Bucket:
    def __init__(self):
        self.objects = {}

    def presign_get(self, key, *, expires_in):
        return f"https://storage.test/{key}?ttl={expires_in}"

    def put(self, key, data, *, content_type):
        self.objects[key] = (data, content_type)


def run(jobs, provider, *, queue=None, analytics=None, bucket=None):
    queue, analytics, bucket = queue or FakeQueue(), analytics or FakeAnalytics(), bucket or Bucket()
    outcome = worker.process_job("job1", 1, uploads=jobs, storage=bucket, processing_service=provider, queue=queue,
                                 analytics=analytics, timing=TIMING, max_attempts=3)
    return outcome, queue, analytics, bucket


def test_a_confirmed_job_is_claimed_submitted_with_a_short_lived_link_to_its_photo_and_polled_later():
    jobs, provider = Jobs(job()), Provider()

    outcome, queue, analytics, _ = run(jobs, provider)

    assert outcome == "submitted"
    assert provider.submitted == ["https://storage.test/uploads/job1/original.jpg?ttl=600"]
    assert jobs.calls == [("claim", 1, 60), ("submission", 1, "task1")]
    assert queue.sent == [("job1", 1, 5)]
    assert analytics.events == [("processing_started", "job1", {"uploadId": "job1", "attempt": 1})]


def test_a_job_claimed_by_another_worker_is_left_to_it_without_a_second_task():
    jobs, provider = Jobs(job(), claim=False), Provider()

    outcome, queue, analytics, _ = run(jobs, provider)

    assert (outcome, provider.submitted, queue.sent, analytics.events) == ("claimed elsewhere", [], [], [])


def test_a_task_submitted_after_another_workers_is_cancelled_as_surplus():
    jobs, provider = Jobs(job(), submitted=False), Provider()

    outcome, queue, _, _ = run(jobs, provider)

    assert (outcome, provider.cancelled, queue.sent) == ("surplus task cancelled", ["task1"], [])


def test_a_submit_the_provider_cannot_take_now_is_asked_for_again_after_the_claims_lease():
    jobs, provider = Jobs(job()), Provider(submit_error=ProcessingUnavailable())

    outcome, queue, _, _ = run(jobs, provider)

    assert (outcome, queue.sent) == ("submit deferred", [("job1", 1, 61)])


@pytest.mark.parametrize("record", [
    job(status="completed", task="task1"), job(status="failed"), job(status="cancelled"), job(attempt=2),
    UploadRecord(id="job1", token_hash="h", key="k", file_type="image/jpeg", file_size=10, status="pending",
                 created_at=NOW, confirmed_at=None),
], ids=["completed", "failed", "cancelled", "another attempt", "unconfirmed"])
def test_a_message_for_a_job_that_moved_on_changes_nothing(record):
    jobs, provider = Jobs(record), Provider()

    outcome, queue, analytics, _ = run(jobs, provider)

    assert (outcome, jobs.calls, queue.sent, analytics.events) == ("stale", [], [], [])


def test_a_running_task_records_its_progress_and_its_preview_once_and_is_looked_at_again():
    task = Task("task1", processing.RUNNING, progress=40, preview_url="https://out/preview.jpg")
    jobs, provider = Jobs(job(status="processing", task="task1")), Provider(task, {"https://out/preview.jpg": JPEG})

    outcome, queue, _, bucket = run(jobs, provider)

    assert outcome == "running"
    assert jobs.calls == [("poll", 1, "task1", 2.5), ("progress", 40, "results/job1/1/preview.jpg")]
    assert bucket.objects == {"results/job1/1/preview.jpg": (JPEG, "image/jpeg")}
    assert queue.sent == [("job1", 1, 5)]


def test_a_duplicate_poll_within_half_an_interval_asks_the_provider_nothing():
    jobs, provider = Jobs(job(status="processing", task="task1"), polled=False), Provider(
        get_error=AssertionError("asked"))

    outcome, queue, _, _ = run(jobs, provider)

    assert (outcome, queue.sent) == ("polled elsewhere", [])


def test_a_succeeded_task_is_copied_into_our_bucket_completed_and_reported_once_with_its_duration():
    task = Task("task1", processing.SUCCEEDED, progress=100, preview_url="https://out/p.png",
                model_url="https://out/m.glb")
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 20
    jobs = Jobs(job(status="processing", task="task1"))
    provider = Provider(task, {"https://out/p.png": png, "https://out/m.glb": GLB})

    outcome, queue, analytics, bucket = run(jobs, provider)

    assert outcome == "completed"
    assert queue.sent == [("job1", 1, 0, "notify")]  # the email the page promises
    assert bucket.objects == {"results/job1/1/preview.png": (png, "image/png"),
                              "results/job1/1/model.glb": (GLB, "model/gltf-binary")}
    assert jobs.calls[-1] == ("complete", "results/job1/1/model.glb", "results/job1/1/preview.png")
    assert analytics.events == [("processing_completed", "job1", {"uploadId": "job1", "attempt": 1,
                                                                  "durationMs": 42000, "modelBytes": len(GLB)})]


def test_a_completion_another_worker_recorded_first_is_not_reported_again():
    task = Task("task1", processing.SUCCEEDED, model_url="https://out/m.glb")
    jobs = Jobs(job(status="processing", task="task1", preview="results/job1/preview.jpg"), completes=False)

    outcome, _, analytics, _ = run(jobs, Provider(task, {"https://out/m.glb": GLB}))

    assert (outcome, analytics.events) == ("completed elsewhere", [])


@pytest.mark.parametrize("files, model_url", [
    ({"https://out/m.glb": b"<html>not a model</html>"}, "https://out/m.glb"),
    ({"https://out/m.glb": BadProcessingOutput()}, "https://out/m.glb"),
    ({}, None),
], ids=["not a GLB", "over the ceiling", "no model"])
def test_a_model_that_is_not_what_it_claims_fails_the_job_with_words_a_person_can_read(files, model_url):
    task = Task("task1", processing.SUCCEEDED, model_url=model_url)
    jobs = Jobs(job(status="processing", task="task1", preview="results/job1/preview.jpg"))

    outcome, _, analytics, bucket = run(jobs, Provider(task, files))

    assert outcome == "failed" and bucket.objects == {}
    assert jobs.calls[-1] == ("fail", "bad_output", domain.FAILURE_MESSAGES["bad_output"], False)
    assert [(event, props["reason"]) for event, _, props in analytics.events] == [("processing_failed", "bad_output")]


def test_a_preview_that_is_not_an_image_fails_the_job():
    task = Task("task1", processing.RUNNING, preview_url="https://out/p.jpg")

    outcome, _, _, bucket = run(Jobs(job(status="processing", task="task1")),
                                Provider(task, {"https://out/p.jpg": b"GIF89a" + b"\0" * 20}))

    assert outcome == "failed" and bucket.objects == {}


@pytest.mark.parametrize("state, reason", [(processing.FAILED, "provider_failed"),
                                           (processing.CANCELLED, "provider_cancelled")])
def test_a_task_the_provider_ended_fails_the_job_and_its_own_text_never_reaches_the_person(state, reason):
    task = Task("task1", state, error="CUDA error: out of memory")
    jobs = Jobs(job(status="processing", task="task1"))

    outcome, _, _, _ = run(jobs, Provider(task))

    assert outcome == "failed"
    assert jobs.calls[-1] == ("fail", reason, domain.FAILURE_MESSAGES[reason], False)
    assert "CUDA" not in domain.FAILURE_MESSAGES[reason]


def test_a_poll_the_provider_cannot_answer_is_asked_again_later():
    jobs = Jobs(job(status="processing", task="task1"))

    outcome, queue, _, _ = run(jobs, Provider(get_error=ProcessingUnavailable()))

    assert (outcome, queue.sent) == ("poll deferred", [("job1", 1, 5)])


class Dispatchable(Jobs):
    def __init__(self):
        super().__init__(job())

    def jobs_to_dispatch(self, age, limit):
        return [("job1", 1), ("job2", 2)]

    def stuck_jobs(self, deadline, limit):
        return [("job3", 1, "task3")]


def test_the_dispatcher_sends_again_what_nobody_took_and_fails_and_cancels_what_ran_past_its_deadline():
    jobs, queue, provider, analytics = Dispatchable(), FakeQueue(), Provider(), FakeAnalytics()

    summary = worker.dispatch_jobs(uploads=jobs, queue=queue, processing_service=provider, analytics=analytics,
                                   older_than_seconds=60, deadline_seconds=1800, max_attempts=3)

    assert summary == {"redispatched": 2, "unsent": 0, "timedOut": 1, "emailsOffered": 0}
    assert queue.sent == [("job1", 1, 0), ("job2", 2, 0)]
    assert jobs.calls == [("fail", "timed_out", domain.FAILURE_MESSAGES["timed_out"], False)]
    assert provider.cancelled == ["task3"]


@pytest.mark.parametrize("body, parsed", [
    ('{"uploadId": "job1", "attempt": 2}', ("job1", 2)),
    ('{"uploadId": "job1"}', None), ('{"uploadId": 7, "attempt": 1}', None), ('{"uploadId": "j", "attempt": true}',
                                                                              None),
    ('{"uploadId": "j", "attempt": 0}', None), ("not json", None), ("[]", None),
])
def test_only_a_message_this_service_sends_is_acted_on(body, parsed):
    message = parse_message(body)

    assert (message if message is None else (message.upload_id, message.attempt)) == parsed


@pytest.mark.parametrize("logs, progress", [
    (None, None), ("", None), ("loading weights\n", None), ("  10%|#  | 1/10\n  40%|####  | 4/10", 40),
    ("100%|##########| 10/10", 100), ("disk 250% full", None),
])
def test_progress_is_the_last_percentage_the_model_printed(logs, progress):
    assert _progress(logs) == progress


@pytest.mark.parametrize("output, found", [
    ({"preview": "https://d/p.jpg", "model_file": "https://d/m.glb"}, ("https://d/p.jpg", "https://d/m.glb")),
    ({"model_file": "https://d/m.glb", "color_video": "https://d/v.mp4"}, (None, "https://d/m.glb")),
    (["https://d/render.png", "https://d/mesh.GLB"], ("https://d/render.png", "https://d/mesh.GLB")),
    ("https://d/only.glb", (None, "https://d/only.glb")), (None, (None, None)),
])
def test_the_preview_and_the_model_are_found_in_each_shape_replicate_models_answer_with(output, found):
    assert _outputs(output) == found


class Http:
    """urllib3's request() answered from a table; records what was sent."""

    def __init__(self, status=201, body=None):
        self.status, self.body, self.sent = status, body or {"id": "p1", "status": "starting"}, []

    def request(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs.get("headers"), json.loads(kwargs["body"]) if kwargs.get("body") else None))
        return type("Response", (), {"status": self.status, "data": json.dumps(self.body).encode()})()


@pytest.mark.parametrize("image_input, extra, expected", [
    ("image", {}, {"image": "https://s/photo.jpg"}),
    ("images", {"generate_model": True}, {"generate_model": True, "images": ["https://s/photo.jpg"]}),
])
def test_a_submission_names_the_model_version_and_the_photo_as_the_model_takes_it(image_input, extra, expected):
    http = Http()
    replicate = Replicate(base_url="https://api.replicate.com/", token="r8_secret", model_version="v1", timeout=5,
                          http=http, image_input=image_input, extra_input=extra)

    assert replicate.submit("https://s/photo.jpg") == "p1"
    [(method, url, headers, body)] = http.sent
    assert (method, url, headers["Authorization"]) == ("POST", "https://api.replicate.com/v1/predictions",
                                                       "Bearer r8_secret")
    assert body == {"version": "v1", "input": expected}


@pytest.mark.parametrize("status, body", [(500, {"detail": "boom"}), (429, {"detail": "slow down"}),
                                          (201, {"status": "starting"}), (200, ["not", "an", "object"])])
def test_an_answer_the_adapter_cannot_use_is_processing_unavailable(status, body):
    replicate = Replicate(base_url="https://api.replicate.com", token="t", model_version="v", timeout=5,
                          http=Http(status, body))

    with pytest.raises(ProcessingUnavailable):
        replicate.submit("https://s/photo.jpg")


def test_a_prediction_is_read_into_the_ports_task():
    http = Http(200, {"id": "p1", "status": "processing", "logs": " 70%|#######   | 7/10",
                      "output": {"preview": "https://d/p.jpg"}, "error": None})
    replicate = Replicate(base_url="https://api.replicate.com", token="t", model_version="v", timeout=5, http=http)

    assert replicate.get("p1") == Task("p1", processing.RUNNING, 70, "https://d/p.jpg", None, None)
    assert http.sent[0][:2] == ("GET", "https://api.replicate.com/v1/predictions/p1")


def test_a_glb_is_told_apart_from_other_bytes_by_magic_version_and_length():
    assert domain.is_glb(GLB)
    assert not domain.is_glb(b"glTF" + (1).to_bytes(4, "little") + (24).to_bytes(4, "little") + b"\0" * 12)
    assert not domain.is_glb(GLB + b"extra")
    assert not domain.is_glb(b"<html>")
    assert [domain.preview_type(data) for data in (JPEG, b"\x89PNG\r\n\x1a\n", b"RIFF\0\0\0\0WEBP", b"GIF89a")] == [
        "image/jpeg", "image/png", "image/webp", None]


def test_a_task_whose_recording_failed_is_cancelled_unless_the_row_names_it():
    from chalicelib.errors import DatabaseOutcomeUnknown

    class Lost(Jobs):
        def record_submission(self, upload_id, attempt, task_id):
            raise DatabaseOutcomeUnknown()

    provider = Provider()
    with pytest.raises(DatabaseOutcomeUnknown):
        run(Lost(job()), provider)

    assert provider.cancelled == ["task1"]


def test_a_task_whose_recording_committed_though_its_answer_was_lost_is_kept():
    from chalicelib.errors import DatabaseOutcomeUnknown

    class Committed(Jobs):
        def record_submission(self, upload_id, attempt, task_id):
            self.record = job(status="processing", task=task_id)
            raise DatabaseOutcomeUnknown()

    provider = Provider()
    with pytest.raises(DatabaseOutcomeUnknown):
        run(Committed(job()), provider)

    assert provider.cancelled == []


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "https://evil.example/m.glb",
                                 "http://out/m.glb", "file:///etc/passwd", "https://127.0.0.1:9001/2018-06-01/runtime"])
def test_an_output_on_a_host_not_allowed_is_never_fetched_and_fails_the_job(url):
    task = Task("task1", processing.SUCCEEDED, model_url=url)
    provider = Provider(task, {})
    jobs = Jobs(job(status="processing", task="task1", preview="results/job1/1/preview.jpg"))

    outcome, _, _, _ = run(jobs, provider)

    assert outcome == "failed"
    assert jobs.calls[-1][1] == "bad_output"


@pytest.mark.parametrize("url, hosts, allowed", [
    ("https://replicate.delivery/a/m.glb", ("replicate.delivery", "*.replicate.delivery"), True),
    ("https://pbxt.replicate.delivery/a/m.glb", ("replicate.delivery", "*.replicate.delivery"), True),
    ("https://evilreplicate.delivery/m.glb", ("replicate.delivery", "*.replicate.delivery"), False),
    ("http://replicate.delivery/m.glb", ("replicate.delivery",), False),
    ("http://127.0.0.1:8100/files/x/model.glb", ("127.0.0.1",), True),
    ("http://127.0.0.1:8100/files/x/model.glb", ("replicate.delivery",), False),
])
def test_outputs_are_fetched_over_https_from_the_listed_hosts_only(url, hosts, allowed):
    assert domain.allowed_output_host(url, hosts) is allowed
