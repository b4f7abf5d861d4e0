"""The analytics wrapper: never breaks a request, flushes only what it queued, within its budget."""

import logging

from chalicelib.analytics import Analytics, DisabledAnalytics, build_analytics


class RecordingClient:
    def __init__(self, fail_capture=False, fail_flush=False):
        self.captured, self.flushes = [], []
        self.fail_capture, self.fail_flush = fail_capture, fail_flush

    def capture(self, event, distinct_id, properties):
        if self.fail_capture:
            raise RuntimeError("queue full")
        self.captured.append((event, distinct_id, properties))

    def flush(self, timeout_seconds):
        if self.fail_flush:
            raise RuntimeError("boom")
        self.flushes.append(timeout_seconds)


def test_events_carry_the_upload_id_as_identity_and_create_no_person():
    client = RecordingClient()
    Analytics(client, budget_seconds=0.8).capture("upload_confirmed", "ck1", {"uploadId": "ck1"})

    assert client.captured == [("upload_confirmed", "ck1", {"uploadId": "ck1", "$process_person_profile": False})]


def test_flush_waits_at_most_the_budget_and_only_when_something_was_queued():
    client = RecordingClient()
    analytics = Analytics(client, budget_seconds=0.8)

    analytics.flush()
    analytics.capture("session_created", "ck1", {})
    analytics.flush()
    analytics.flush()

    assert client.flushes == [0.8]


def test_a_failing_client_never_raises_and_logs_without_the_payload(caplog):
    caplog.set_level(logging.WARNING)
    analytics = Analytics(RecordingClient(fail_capture=True), budget_seconds=1)
    analytics.capture("upload_completed", "ck1", {"uploadId": "ck1", "secret": "s3cr3t"})
    flushing = Analytics(RecordingClient(fail_flush=True), budget_seconds=1)
    flushing.capture("upload_completed", "ck1", {})
    flushing.flush()

    assert [r.getMessage() for r in caplog.records] == [
        "analytics: could not queue upload_completed: RuntimeError",
        "analytics: flush failed: RuntimeError",
    ]


def test_without_a_key_analytics_is_disabled():
    assert isinstance(build_analytics(None, "http://127.0.0.1:9", 1.0), DisabledAnalytics)
