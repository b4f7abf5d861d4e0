"""The sweep and migrate functions as Lambda calls them: a manual run, an EventBridge run, and what an escaping
exception leaves in the log (one JSON line naming the function and the invocation)."""

from dataclasses import replace
from types import SimpleNamespace

import pytest

import app as app_module
from tests.unit.fakes import SweepUploads

SCHEDULED = {"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
             "source": "aws.events", "account": "123456789012", "time": "2026-11-28T18:00:00Z",
             "region": "eu-central-1", "resources": ["arn:aws:events:eu-central-1:123456789012:rule/sweep"],
             "detail": {}}


def context(request_id="0f6d-req"):
    return SimpleNamespace(aws_request_id=request_id, function_name="three-d-ultra-upload-prod-expire-abandoned")


@pytest.mark.parametrize("event", [{}, SCHEDULED], ids=["manual, empty event", "EventBridge schedule"])
def test_the_sweep_runs_from_an_empty_manual_event_and_from_its_schedule(deps, json_lines, event):
    deps.uploads = SweepUploads()

    summary = app_module.expire_abandoned(event, context())

    assert summary == {"expired": 7, "objectsDeleted": 0, "emailsCleared": 3, "resultsDeleted": 0}
    finished = [line for line in json_lines() if line["message"] == "sweep finished"]
    assert len(finished) == 1 and finished[0]["SweepHeartbeat"] == 1
    assert finished[0]["requestId"] == "0f6d-req" and finished[0]["function"] == "expire-abandoned"


def test_an_exception_escaping_the_sweep_is_one_json_line_with_the_function_and_request_id(deps, json_lines):
    class Down(SweepUploads):
        def expire_abandoned(self, older_than_seconds):
            raise ConnectionResetError("server closed the connection")

    deps.uploads = Down()

    with pytest.raises(ConnectionResetError):
        app_module.expire_abandoned({}, context("sweep-req-9"))

    [line] = json_lines()
    assert (line["level"], line["message"], line["function"], line["requestId"], line["errorType"]) == (
        "ERROR", "expire-abandoned failed: ConnectionResetError", "expire-abandoned", "sweep-req-9",
        "ConnectionResetError")
    assert "server closed the connection" in line["exception"]


def test_an_exception_escaping_migrate_is_one_json_line_and_the_invocation_still_fails(deps, json_lines,
                                                                                        monkeypatch):
    import chalicelib.migrate

    deps.settings = replace(deps.settings, database_url="postgresql://migrator@db.invalid/uploads")

    def blocked(db):
        raise chalicelib.migrate.MigrationBlocked("waited too long for a table lock")

    monkeypatch.setattr(chalicelib.migrate, "apply_migrations", blocked)

    with pytest.raises(chalicelib.migrate.MigrationBlocked):
        app_module.migrate({}, context("migrate-req-1"))

    [line] = json_lines()
    assert (line["message"], line["function"], line["requestId"]) == (
        "migrate failed: MigrationBlocked", "migrate", "migrate-req-1")


def test_migrate_reads_only_its_database_url_from_ssm(deps, monkeypatch):
    import chalicelib.config
    import chalicelib.migrate

    asked = []
    direct = "/3d-ultra/prod/database-url-direct"
    deps.settings = replace(deps.settings, database_url="", ssm_parameters=(
        ("DATABASE_URL", direct), ("R2_ACCESS_KEY_ID", "/3d-ultra/prod/r2-access-key-id")))
    monkeypatch.setattr(chalicelib.config, "fetch_ssm_parameters",
                        lambda names: asked.append(names) or {direct: "postgresql://owner@direct.invalid/uploads"})
    monkeypatch.setattr(chalicelib.migrate, "apply_migrations", lambda db: ["0001_uploads.sql"])

    assert app_module.migrate({}, context()) == {"applied": ["0001_uploads.sql"], "version": deps.settings.version}
    assert asked == [[direct]]
