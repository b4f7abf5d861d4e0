"""Failing dependencies: clear errors within a bounded time, nothing lost, recovery without a restart.

The measured times are printed; the assertions only guard against hanging (far above any expected figure).
"""

import time
from dataclasses import replace

import pytest
from chalice.test import Client

import app as app_module
from chalicelib.deps import Dependencies
from tests.helpers import ApiClient, SilentServer, put_object, upload_body
from tests.images import SMALL_PNG

HANG_GUARD_SECONDS = 30


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


def test_postgres_restarted_between_two_requests_the_next_request_succeeds(api, local_stack):
    assert api.create().status == 201

    local_stack.postgres.stop()
    local_stack.postgres.start()
    reply = api.create()

    assert reply.status == 201, reply.body


def test_postgres_down_gives_a_503_json_body_quickly_and_the_first_request_after_it_returns_succeeds(api, local_stack):
    assert api.create().status == 201
    local_stack.postgres.stop()
    try:
        down, seconds = timed(api.create)
    finally:
        local_stack.postgres.start()
    back = api.create()

    print(f"\npostgres down: {down.status} in {seconds * 1000:.0f} ms")
    assert (down.status, down.body["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert seconds < HANG_GUARD_SECONDS
    assert back.status == 201


def with_deps(monkeypatch, live_deps, **changes):
    deps = Dependencies(replace(live_deps.settings, **changes))
    monkeypatch.setattr(app_module, "deps", deps)
    return ApiClient(Client(app_module.app).http), deps


def test_a_hanging_database_is_cut_off_by_the_connect_timeout(monkeypatch, live_deps):
    silent = SilentServer()
    try:
        api, _ = with_deps(monkeypatch, live_deps, database_url=f"postgresql://u@127.0.0.1:{silent.port}/db?sslmode=disable",
                           db_timeout_seconds=1.0)
        reply, seconds = timed(api.create)
    finally:
        silent.close()

    print(f"\nhanging postgres (timeout 1 s): {reply.status} in {seconds * 1000:.0f} ms")
    assert (reply.status, reply.body["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert seconds < HANG_GUARD_SECONDS


@pytest.mark.parametrize("storage", ["down", "hanging"])
def test_storage_failing_during_confirm_is_500_the_job_stays_unconfirmed_and_a_later_confirm_succeeds(
        monkeypatch, live_deps, api, db, storage):
    body = api.create(upload_body(file_size=len(SMALL_PNG))).body
    put_object(body["uploadUrl"], SMALL_PNG, "image/png")
    silent = SilentServer()
    port = silent.port
    if storage == "down":
        silent.close()
    try:
        broken, deps = with_deps(monkeypatch, live_deps, r2_endpoint_url=f"http://127.0.0.1:{port}",
                                 storage_timeout_seconds=1.0)
        deps.__dict__["database"] = live_deps.database
        reply, seconds = timed(lambda: broken.confirm(body["uploadId"], body["sessionToken"]))
    finally:
        silent.close()
    print(f"\nstorage {storage} (timeout 1 s, 2 attempts): {reply.status} in {seconds * 1000:.0f} ms")

    assert (reply.status, reply.body) == (500, {"error": {
        "code": "STORAGE_UNAVAILABLE", "message": "We couldn't verify your upload. Let's try again!"}})
    assert seconds < HANG_GUARD_SECONDS
    assert db.run("SELECT confirmed_at FROM uploads WHERE id = :id", id=body["uploadId"]) == [[None]]
    monkeypatch.setattr(app_module, "deps", live_deps)
    assert api.confirm(body["uploadId"], body["sessionToken"]).status == 200


def test_a_crash_between_the_head_and_the_update_leaves_the_job_confirmable(monkeypatch, api, live_deps, db):
    body = api.create(upload_body(file_size=len(SMALL_PNG))).body
    put_object(body["uploadUrl"], SMALL_PNG, "image/png")

    def crash(*args, **kwargs):
        raise RuntimeError("the container died here")

    with monkeypatch.context() as patch:
        patch.setattr(live_deps.uploads, "mark_confirmed", crash)
        crashed = api.confirm(body["uploadId"], body["sessionToken"])

    assert (crashed.status, crashed.body["error"]["code"]) == (500, "INTERNAL_ERROR")
    assert db.run("SELECT confirmed_at FROM uploads WHERE id = :id", id=body["uploadId"]) == [[None]]
    assert api.confirm(body["uploadId"], body["sessionToken"]).status == 200
