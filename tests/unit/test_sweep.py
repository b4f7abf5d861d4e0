"""The hourly sweep (`expire_abandoned_uploads`): what it asks of the database and of storage, in which order, what
it reports and logs. Against the real database and storage: tests/integration/test_abandoned_uploads.py."""

from types import SimpleNamespace

import pytest

from chalicelib import services
from chalicelib.errors import StorageUnavailable
from tests.unit.fakes import FakeStorage, SweepUploads
from tests.unit.logcapture import records

TTL = 900


@pytest.fixture
def clock(monkeypatch):
    ticks = iter([100.0, 102.34567])
    monkeypatch.setattr(services, "time", SimpleNamespace(monotonic=lambda: next(ticks)))


def sweep(uploads, storage=None, **options):
    return services.expire_abandoned_uploads(uploads=uploads, storage=storage or FakeStorage(),
                                             **{"older_than_seconds": 3600, "url_ttl_seconds": TTL, **options})


def listed(limit, ttl=TTL):
    return ("objects_to_delete", {"limit": limit, "url_ttl_seconds": ttl})


def sweep_line(caplog):
    (record,) = records(caplog, "chalicelib.services")
    return record


def test_the_sweep_deletes_every_object_batch_by_batch_and_records_each_batch(clock):
    uploads, storage = SweepUploads(["k0", "k1", "k2", "k3", "k4"]), FakeStorage()

    result = sweep(uploads, storage, batch_size=2)

    assert result == {"expired": 7, "objectsDeleted": 5}
    assert storage.deleted == ["k0", "k1", "k2", "k3", "k4"]
    assert uploads.calls == [
        ("expire_abandoned", {"older_than_seconds": 3600}),
        listed(2), ("mark_objects_deleted", {"upload_ids": ["id0", "id1"]}),
        listed(2), ("mark_objects_deleted", {"upload_ids": ["id0", "id1"]}),
        listed(2), ("mark_objects_deleted", {"upload_ids": ["id0"]}),
        listed(2)]


def test_with_nothing_to_delete_the_sweep_asks_once_in_batches_of_200_with_the_url_lifetime(clock):
    uploads = SweepUploads([])

    assert sweep(uploads, older_than_seconds=60, url_ttl_seconds=300) == {"expired": 7, "objectsDeleted": 0}
    assert uploads.calls == [("expire_abandoned", {"older_than_seconds": 60}), listed(200, ttl=300)]


def test_a_failed_delete_stops_the_sweep_before_recording_the_batch_so_the_next_run_retries_it(clock):
    uploads, storage = SweepUploads(["k0"]), FakeStorage()
    storage.failure = StorageUnavailable()

    with pytest.raises(StorageUnavailable):
        sweep(uploads, storage)

    assert [name for name, _ in uploads.calls] == ["expire_abandoned", "objects_to_delete"]


def test_a_sweep_forgets_rate_limits_past_the_longest_window_and_clears_old_emails(clock, service_logs):
    uploads, storage = SweepUploads(["k0", "k1"]), FakeStorage()

    summary = sweep(uploads, storage, older_than_seconds=86400, email_retention_days=30,
                    rate_limit_windows=(600, 3600, 60))

    assert summary == {"expired": 7, "objectsDeleted": 2, "emailsCleared": 3}
    assert uploads.calls == [("forget_rate_limits", {"older_than_seconds": 3600}),
                             ("expire_abandoned", {"older_than_seconds": 86400}), listed(200),
                             ("mark_objects_deleted", {"upload_ids": ["id0", "id1"]}), listed(200),
                             ("clear_old_emails", {"older_than_days": 30})]
    assert storage.deleted == ["k0", "k1"]


def test_a_sweep_without_limits_or_retention_neither_forgets_nor_clears(clock, service_logs):
    uploads = SweepUploads()

    summary = sweep(uploads, older_than_seconds=60)

    assert summary == {"expired": 7, "objectsDeleted": 0}
    assert uploads.calls == [("expire_abandoned", {"older_than_seconds": 60}), listed(200)]
    record = sweep_line(service_logs)
    assert (record.EmailsCleared, "emailsCleared" in vars(record)) == (0, False)


def test_a_sweep_ends_with_one_summary_line_that_is_also_its_heartbeat_metric(clock, service_logs, monkeypatch):
    monkeypatch.setattr(services.metrics, "_stage", "prod")
    uploads = SweepUploads(["k0"], emails_cleared=4)

    sweep(uploads, older_than_seconds=60, email_retention_days=30)

    record = sweep_line(service_logs)
    assert (record.levelname, record.getMessage()) == ("INFO", "sweep finished")
    assert {name: getattr(record, name) for name in ("expired", "objectsDeleted", "emailsCleared", "seconds",
                                                     "SweepHeartbeat", "UploadsExpired", "ObjectsDeleted",
                                                     "EmailsCleared", "Stage")} == {
        "expired": 7, "objectsDeleted": 1, "emailsCleared": 4, "seconds": 2.346, "SweepHeartbeat": 1,
        "UploadsExpired": 7, "ObjectsDeleted": 1, "EmailsCleared": 4, "Stage": "prod"}
    (directive,) = record._aws["CloudWatchMetrics"]
    assert directive["Metrics"] == [{"Name": name, "Unit": "Count"} for name in
                                    ("SweepHeartbeat", "UploadsExpired", "ObjectsDeleted", "EmailsCleared")]


def test_a_sweep_starts_no_batch_without_time_for_it_and_the_next_run_goes_on(clock, service_logs):
    uploads, storage = SweepUploads(["k0", "k1", "k2", "k3"]), FakeStorage()
    left = iter([300.0, 31.0, 29.0])

    summary = sweep(uploads, storage, batch_size=2, seconds_left=lambda: next(left))

    assert summary == {"expired": 7, "objectsDeleted": 4, "stoppedEarly": True}
    assert [name for name, _ in uploads.calls].count("objects_to_delete") == 2
    record = sweep_line(service_logs)
    assert (record.stoppedEarly, record.SweepHeartbeat) == (True, 1)


def test_the_scheduled_sweep_reads_the_invocations_remaining_time(deps, monkeypatch):
    import app as app_module

    seen = {}

    def expire(**options):
        seen["left"] = options["seconds_left"]()
        return {"expired": 0, "objectsDeleted": 0}

    monkeypatch.setattr(services, "expire_abandoned_uploads", expire)
    context = SimpleNamespace(aws_request_id="sweep-3", get_remaining_time_in_millis=lambda: 299_500)

    app_module.expire_abandoned({}, context)

    assert seen["left"] == 299.5
