"""The email a finished job sends its person, on in-memory fakes: one per job whatever the duplicates, retried
after a failed send and then given up, none for a cleared address, the failure email only for a failure for good."""

import hashlib
import json
import re

import pytest

from chalicelib import worker
from chalicelib.errors import EmailRejected, EmailUnavailable
from chalicelib.queue import JobMessage, parse_message
from tests.unit.fakes import FakeAnalytics, FakeEmailJobs, FakeMailer, FakeNotifyQueue

JOB = "k" * 24
POLICY = worker.EmailPolicy(frontend_url="https://app.3d-ultra.example", max_tries=3, retry_seconds=5,
                            lease_seconds=30, retention_days=30)
WHY = "You're getting this because you uploaded a photo to 3D Ultra with this address."


@pytest.fixture
def world():
    class World:
        jobs = FakeEmailJobs()
        mailer = FakeMailer()
        queue = FakeNotifyQueue()
        analytics = FakeAnalytics()

        def notify(self, upload_id=JOB, attempt=1):
            return worker.notify_job(upload_id, attempt, uploads=self.jobs, mailer=self.mailer, queue=self.queue,
                                     analytics=self.analytics, policy=POLICY)

    return World()


def test_the_same_notify_message_delivered_three_times_sends_one_email(world):
    world.jobs.add(JOB)

    outcomes = [world.notify() for _ in range(3)]

    assert outcomes == ["email sent", "no email to send", "no email to send"]
    assert [m.to for m in world.mailer.sent] == ["maya@example.com"]
    assert world.analytics.events == [("email_sent", JOB, {"uploadId": JOB, "attempt": 1, "kind": "completed",
                                                           "tries": 1})]
    assert world.queue.sent == []


def test_the_completed_email_links_to_the_job_with_a_view_credential_in_the_fragment_stored_as_its_digest(world):
    world.jobs.add(JOB)

    world.notify()

    (message,) = world.mailer.sent
    (link,) = re.findall(r"https://\S+", message.text)
    token = link.partition("#view=")[2]
    assert link == f"https://app.3d-ultra.example/processing/{JOB}#view={token}" and len(token) == 43
    assert world.jobs.jobs[JOB]["view_token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert message.subject == "Your 3D model is ready"
    assert message.text == (
        "Your 3D model is ready.\n\nOpen it on any device, look at it from every side and download it:\n"
        f"{link}\n\nThe link works until 3 January 2027; after that the photo and the model are deleted.\n\n{WHY}\n")
    assert f'<a href="{link}">Open your 3D model</a>' in message.html
    assert message.html.count("<a ") == 1 and "<img" not in message.html and WHY in message.html


def test_a_failed_send_is_tried_again_after_a_growing_wait_and_given_up_after_the_last_try(world, json_lines):
    world.jobs.add(JOB)
    world.mailer.failures = [EmailUnavailable(), EmailUnavailable(), EmailUnavailable()]

    first = world.notify()
    early = world.notify()  # a duplicate before the wait is over
    world.jobs.now += 5
    second = world.notify()
    world.jobs.now += 10
    third = world.notify()
    world.jobs.now += 1000
    after = world.notify()

    assert (first, early, second, third, after) == ("email deferred", "no email to send", "email deferred",
                                                    "email given up", "no email to send")
    assert world.queue.sent == [(JOB, 1, 5, True), (JOB, 1, 10, True)]
    assert world.mailer.sent == [] and world.analytics.events == []
    assert world.jobs.jobs[JOB]["given_up"] and world.jobs.jobs[JOB]["status"] == "completed"
    given_up = [line for line in json_lines() if line["message"].startswith("email given up")]
    assert [(line["level"], line["message"], line["tries"]) for line in given_up] == [
        ("ERROR", "email given up after 3 tries", 3)]
    assert "maya@example.com" not in json.dumps(json_lines())


def test_a_send_that_fails_once_goes_out_on_the_next_try(world):
    world.jobs.add(JOB)
    world.mailer.failures = [EmailUnavailable()]

    assert world.notify() == "email deferred"
    world.jobs.now += 5
    assert world.notify() == "email sent"

    assert len(world.mailer.sent) == 1
    assert world.analytics.events[0][2]["tries"] == 2


def test_an_address_the_mail_service_refuses_is_given_up_at_once_and_never_tried_again(world):
    world.jobs.add(JOB)
    world.mailer.failures = [EmailRejected()]

    assert world.notify() == "email given up"
    world.jobs.now += 1000
    assert world.notify() == "no email to send"
    assert world.queue.sent == [] and world.mailer.sent == []


def test_a_job_whose_email_was_cleared_by_retention_sends_none(world):
    world.jobs.add(JOB, email="")

    assert world.notify() == "no email to send"
    assert world.mailer.sent == [] and world.analytics.events == []


def test_without_a_mailer_nothing_is_claimed(world):
    world.jobs.add(JOB)
    world.mailer = None

    assert world.notify() == "email off"
    assert world.jobs.jobs[JOB]["tries"] == 0


def test_a_failure_for_good_asks_for_the_failure_email_and_sends_it_with_the_words_the_person_reads(world):
    world.jobs.add(JOB, status="processing", attempt=3, due=False)

    outcome = worker.fail_job(JOB, 3, "provider_failed", uploads=world.jobs, analytics=world.analytics,
                              max_attempts=3, queue=world.queue)

    assert outcome == "failed" and world.queue.sent == [(JOB, 3, 0, True)]
    assert world.notify(attempt=3) == "email sent"
    (message,) = world.mailer.sent
    assert message.subject == "We couldn't make your 3D model"
    assert message.text == (
        "We couldn't make a 3D model of your photo.\n\n"
        "We couldn't turn this photo into a 3D model. Try again, or upload another photo.\n\n"
        f"Upload another photo:\nhttps://app.3d-ultra.example/\n\n{WHY}\n")
    assert "view=" not in message.text + message.html and world.jobs.jobs[JOB]["view_token_hash"] is None
    assert world.analytics.events[-1] == ("email_sent", JOB, {"uploadId": JOB, "attempt": 3, "kind": "failed",
                                                              "tries": 1})


def test_a_failure_nothing_but_a_retry_can_mend_counts_as_for_good_on_any_attempt(world):
    world.jobs.add(JOB, status="processing", attempt=1, due=False)

    worker.fail_job(JOB, 1, "original_missing", uploads=world.jobs, analytics=world.analytics, max_attempts=3,
                    queue=world.queue)

    assert world.queue.sent == [(JOB, 1, 0, True)] and world.notify() == "email sent"


def test_a_failure_the_person_can_still_retry_sends_no_email(world):
    world.jobs.add(JOB, status="processing", attempt=1, due=False)

    worker.fail_job(JOB, 1, "provider_failed", uploads=world.jobs, analytics=world.analytics, max_attempts=3,
                    queue=world.queue)

    assert world.queue.sent == [] and world.notify() == "no email to send" and world.mailer.sent == []


def test_a_lost_email_request_is_left_to_the_dispatcher_and_the_failure_still_stands(world):
    from chalicelib.errors import ProcessingUnavailable

    world.jobs.add(JOB, status="processing", attempt=3, due=False)
    world.queue.failure = ProcessingUnavailable()

    assert worker.fail_job(JOB, 3, "timed_out", uploads=world.jobs, analytics=world.analytics, max_attempts=3,
                           queue=world.queue) == "failed"
    assert world.jobs.jobs[JOB]["due"]


@pytest.mark.parametrize("body, parsed", [
    ('{"uploadId": "u", "attempt": 2}', JobMessage("u", 2, False)),
    ('{"uploadId": "u", "attempt": 2, "notify": true}', JobMessage("u", 2, True)),
    ('{"uploadId": "u", "attempt": 2, "notify": false}', JobMessage("u", 2, False)),
    ('{"uploadId": "u", "attempt": 2, "notify": 1}', None),
    ('{"uploadId": "u", "attempt": 2, "notify": "yes"}', None),
    ('[1, 2]', None),
])
def test_a_notify_message_is_a_job_message_with_notify_true_and_nothing_else_passes(body, parsed):
    assert parse_message(body) == parsed
